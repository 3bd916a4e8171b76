"""A generic webhook (LiteLLM's `generic_api`): the events POSTed as JSON to an endpoint of one's
own, signed like Ogem's budget alerts (billing/alerts.py): `X-Ogem-Timestamp` and
`X-Ogem-Signature: sha256=<hex>`, HMAC-SHA256 over `<timestamp>.<body>` with the secret, so the
receiver checks origin and freshness.

Settings: `generic_logger_endpoint` (required), `generic_logger_headers` (a JSON object, or
LiteLLM's `Name=value,Name=value`), `generic_logger_secret` (signs when set),
`generic_logger_log_format`: `json_array` (default: a JSON array of events) or `ndjson` (one
event a line). In LiteLLM's callback_settings they are `endpoint`, `headers`, `secret`,
`log_format`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from typing import ClassVar

import httpx
import orjson

from gateway.callbacks.base import CallbackEvent, status_check
from gateway.callbacks.common import events_array, events_ndjson, json_bytes
from gateway.callbacks.poster import Poster

EVENT = "callback.events"


def _signature(secret: str, timestamp: str, body: bytes) -> str:
    """billing.alerts.alert_signature's (the tests compare them), written here: the delivery
    process (dispatcher.py) does not load Django's models."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def _headers(text: str) -> dict[str, str]:
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError("generic_logger_headers is not a JSON object") from exc
        if not isinstance(parsed, dict):
            raise ValueError("generic_logger_headers is not a JSON object")
        return {str(k): str(v) for k, v in parsed.items()}
    headers = {}
    for pair in text.split(","):
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError("generic_logger_headers: expected Name=value,Name=value")
        headers[name.strip()] = value.strip()
    return headers


class WebhookSink:
    name: ClassVar[str] = "generic_api"
    # Up to 500 events and 1 MB (a common receiver's limit) a post. 2,000 made fewer posts, but
    # /v1 at concurrency 50 looked slower with it in quiet runs (docs/benchmark.md, 7 December).
    max_batch: ClassVar[int] = 500
    max_bytes: ClassVar[int] = 1_000_000
    environment: ClassVar[tuple[str, ...]] = (
        "GENERIC_LOGGER_ENDPOINT",
        "GENERIC_LOGGER_HEADERS",
        "GENERIC_LOGGER_SECRET",
        "GENERIC_LOGGER_LOG_FORMAT",
    )

    def __init__(self, settings: Mapping[str, str]) -> None:
        url = settings.get("generic_logger_endpoint")
        if not url or not url.startswith(("http://", "https://")):
            raise ValueError("the webhook needs GENERIC_LOGGER_ENDPOINT, an http(s) URL")
        self.url = url
        self.headers = _headers(settings.get("generic_logger_headers") or "")
        self.secret = settings.get("generic_logger_secret") or ""
        self.ndjson = settings.get("generic_logger_log_format") == "ndjson"
        if settings.get("generic_logger_log_format") not in (None, "", "json_array", "ndjson"):
            raise ValueError("generic_logger_log_format is json_array or ndjson")
        self._fixed = {
            **self.headers,
            "Content-Type": "application/x-ndjson" if self.ndjson else "application/json",
            "User-Agent": "Ogem-Callbacks",
            "X-Ogem-Event": EVENT,
        }
        # Its own kept-alive connection (poster.py): lighter per post than the shared client's.
        self.poster = Poster(url)

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        await self.send_encoded([json_bytes(event) for event in events], client=client)

    async def send_encoded(self, encoded: Sequence[bytes], *, client: httpx.AsyncClient) -> None:
        """The events as JSON already (deliver.py encodes an event once for all such sinks)."""
        body = events_ndjson(encoded) if self.ndjson else events_array(encoded)
        timestamp = str(int(time.time()))
        headers = {**self._fixed, "X-Ogem-Timestamp": timestamp}
        if self.secret:
            headers["X-Ogem-Signature"] = _signature(self.secret, timestamp, body)
        status, answer = await self.poster.post(body, headers)
        if not 200 <= status < 300:
            status_check(status, self.poster.host, answer.decode(errors="replace"))

    async def close(self) -> None:
        await self.poster.close()
