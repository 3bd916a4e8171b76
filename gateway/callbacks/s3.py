"""Log files in an S3-compatible bucket (AWS S3, MinIO, R2, ...): each batch one JSON Lines
object, `<s3_path>/<YYYY-MM-DD>/<unix ms>-<uuid>.jsonl`, one event a line.

Settings (LiteLLM's `s3_callback_params`): `s3_bucket_name` (required), `s3_path`,
`s3_region_name`, `s3_endpoint_url`, `s3_aws_access_key_id`, `s3_aws_secret_access_key`,
`s3_aws_session_token` (without keys, botocore's own chain: AWS_ACCESS_KEY_ID, a role, ...).
botocore is synchronous: a put runs in a worker thread of the delivery loop, and is imported
only when an S3 callback sends.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from gateway.callbacks.base import CallbackEvent, SinkRejected, SinkRetryable
from gateway.callbacks.common import events_ndjson, json_bytes

TIMEOUT = 10.0


class S3Sink:
    name: ClassVar[str] = "s3"
    max_batch: ClassVar[int] = 1000
    # Read from s3_callback_params; botocore reads AWS_* itself when no key is given.
    environment: ClassVar[tuple[str, ...]] = ()
    environment_prefixes: ClassVar[tuple[str, ...]] = ("S3_CALLBACK_",)

    def __init__(self, settings: Mapping[str, str]) -> None:
        bucket = settings.get("s3_bucket_name")
        if not bucket:
            raise ValueError("s3 needs s3_bucket_name in s3_callback_params")
        self.bucket = bucket
        self.prefix = (settings.get("s3_path") or "").strip("/")
        self.settings = dict(settings)
        self._client: Any = None

    def _client_get(self) -> Any:
        if self._client is None:
            import boto3  # on use: 0.3-0.5 s to load
            from botocore.config import Config

            settings = self.settings
            self._client = boto3.session.Session().client(
                "s3",
                region_name=settings.get("s3_region_name") or None,
                endpoint_url=settings.get("s3_endpoint_url") or None,
                aws_access_key_id=settings.get("s3_aws_access_key_id") or None,
                aws_secret_access_key=settings.get("s3_aws_secret_access_key") or None,
                aws_session_token=settings.get("s3_aws_session_token") or None,
                config=Config(
                    connect_timeout=TIMEOUT,
                    read_timeout=TIMEOUT,
                    retries={"mode": "standard", "total_max_attempts": 1},
                ),
            )
        return self._client

    def object_key(self, now: float) -> str:
        day = datetime.datetime.fromtimestamp(now, tz=datetime.UTC).strftime("%Y-%m-%d")
        name = f"{day}/{int(now * 1000)}-{uuid.uuid4().hex}.jsonl"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _put(self, body: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client_get().put_object(
                Bucket=self.bucket,
                Key=self.object_key(time.time()),
                Body=body,
                ContentType="application/x-ndjson",
            )
        except ClientError as exc:
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            code = exc.response.get("Error", {}).get("Code", "")
            if status in (408, 429) or status >= 500 or code in ("SlowDown", "RequestTimeout"):
                raise SinkRetryable(f"s3: {code or status}") from exc
            raise SinkRejected(f"s3 refused the object: {code or status}") from exc
        except BotoCoreError as exc:  # connection refused, timeouts, no credentials
            raise SinkRetryable(f"s3: {type(exc).__name__}") from exc

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        await self.send_encoded([json_bytes(event) for event in events], client=client)

    async def send_encoded(self, encoded: Sequence[bytes], *, client: httpx.AsyncClient) -> None:
        """The events as JSON already (deliver.py encodes an event once for all such sinks)."""
        body = events_ndjson(encoded)
        await asyncio.to_thread(self._put, body)
