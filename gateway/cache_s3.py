"""The response cache's object-store tier (L3): large answers in an S3-compatible bucket
(docs/caching.md, "Tiers").

boto3 is synchronous: every call runs in a small thread pool of its own, off the event loop, with
one attempt and `timeout` seconds to connect and to read, and the caller stops waiting after
`_deadline` (both timeouts). A failure is a miss (or a lost write), counted in
`ogem_cache_s3_errors_total`, never an error to the caller; after one, the tier rests for
`_REST` seconds (L1 and Redis still answer), so an S3 that is down costs one timeout per worker
and rest period, not one per request.

Nothing here is imported unless a configuration has an S3 tier (boto3 loads on first use).
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateway.config.types import S3CacheSettings
from ogem_site.metrics import cache_s3_error_record

logger = logging.getLogger(__name__)

_REST = 5.0  # seconds the tier is not tried after a failure
_META_EXPIRES = "ogem-expires"  # object metadata: the entry's deadline (Unix seconds)

_executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="ogem-cache-s3")
_clients: dict[S3CacheSettings, Any] = {}
_clients_lock = threading.Lock()
_resting_until = 0.0


def s3_object_key(config: S3CacheSettings, key: str) -> str:
    """An entry's object key: the configured prefix, then the entry's Redis key name (tenant
    scope, namespace and hash, so a purge selects objects as it selects Redis keys)."""
    return f"{config.prefix}{key}"


def s3_client(config: S3CacheSettings) -> Any:
    """The boto3 client of these settings (made once; boto3 clients are thread-safe)."""
    client = _clients.get(config)
    if client is not None:
        return client
    with _clients_lock:
        client = _clients.get(config)
        if client is None:
            # Imported on use: boto3 and botocore take 0.3-0.5 s to load, and only a
            # configuration with an S3 tier needs them.
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "s3",
                region_name=config.region,
                endpoint_url=config.endpoint_url,
                aws_access_key_id=config.access_key_id,
                aws_secret_access_key=config.secret_access_key,
                aws_session_token=config.session_token,
                config=Config(
                    connect_timeout=config.timeout,
                    read_timeout=config.timeout,
                    retries={"mode": "standard", "total_max_attempts": 1},
                ),
            )
            _clients[config] = client
    return client


def s3_resting() -> bool:
    return time.monotonic() < _resting_until


def _failed(exc: BaseException, *, operation: str, config: S3CacheSettings) -> None:
    global _resting_until
    _resting_until = time.monotonic() + _REST
    cache_s3_error_record(operation=operation)
    # The bucket and the error's class only: never the client's settings (credentials).
    logger.warning(
        "response cache: S3 %s on bucket %s failed (%s); served without the tier",
        operation,
        config.bucket,
        type(exc).__name__,
    )


def _deadline(config: S3CacheSettings) -> float:
    return 2 * config.timeout + 0.5


def _get(config: S3CacheSettings, key: str) -> bytes | None:
    client = s3_client(config)
    try:
        found = client.get_object(Bucket=config.bucket, Key=s3_object_key(config, key))
    except client.exceptions.NoSuchKey:
        return None
    expires = found.get("Metadata", {}).get(_META_EXPIRES)
    body = found["Body"]
    try:
        if expires is not None and float(expires) <= time.time():
            return None  # expired: a bucket lifecycle rule deletes it (docs/caching.md)
        return body.read()
    finally:
        body.close()


def _put(config: S3CacheSettings, key: str, raw: bytes, expires: float) -> None:
    s3_client(config).put_object(
        Bucket=config.bucket,
        Key=s3_object_key(config, key),
        Body=raw,
        ContentType="application/json",
        Metadata={_META_EXPIRES: f"{expires:.3f}"},
    )


async def s3_get(config: S3CacheSettings, key: str) -> tuple[bytes | None, bool]:
    """The entry's bytes (None: absent or expired) and whether the tier failed."""
    if s3_resting():
        return None, True
    loop = asyncio.get_running_loop()
    try:
        raw = await asyncio.wait_for(
            loop.run_in_executor(_executor, _get, config, key), _deadline(config)
        )
    except Exception as exc:
        _failed(exc, operation="get", config=config)
        return None, True
    return raw, False


async def s3_put(config: S3CacheSettings, key: str, raw: bytes, expires: float) -> None:
    if s3_resting():
        return
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(
            loop.run_in_executor(_executor, _put, config, key, raw, expires), _deadline(config)
        )
    except Exception as exc:
        _failed(exc, operation="put", config=config)


def s3_purge(config: S3CacheSettings, patterns: list[str]) -> int:
    """Delete the objects whose keys match these Redis SCAN patterns (synchronous: the purge
    service runs in the management API). Returns how many went."""
    client = s3_client(config)
    deleted = 0
    for pattern in patterns:
        wanted = s3_object_key(config, pattern)
        prefix = wanted.split("*", 1)[0]
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=config.bucket, Prefix=prefix
        )
        for page in pages:
            keys = [
                {"Key": item["Key"]}
                for item in page.get("Contents") or ()
                if fnmatch.fnmatchcase(item["Key"], wanted)
            ]
            if keys:  # at most 1000 a page, as delete_objects takes
                answer = client.delete_objects(
                    Bucket=config.bucket, Delete={"Objects": keys, "Quiet": True}
                )
                deleted += len(keys) - len(answer.get("Errors") or ())
    return deleted


def s3_rest_end() -> None:
    """Try the tier again at once (tests)."""
    global _resting_until
    _resting_until = 0.0
