"""Redis for every layer: the names of every key, stream and channel Ogem writes (`redis_key`)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings


def redis_key(name: str) -> str:
    """`<OGEM_CACHE_PREFIX>:<name>`: every Redis key, stream and pub/sub channel Ogem writes is
    named here, so installations sharing one Redis never read or drain each other's data."""
    return f"{settings.OGEM_CACHE_PREFIX}:{name}"


_sync_client: Any = None
_sync_client_pid: int | None = None


def redis_sync() -> Any:
    """A synchronous client for code outside the event loop (publishing an invalidation after a
    commit, Celery, management code): one per process, a forked worker opens its own."""
    global _sync_client, _sync_client_pid
    # Imported on first use: redis-py takes about 0.4 s to import (its cluster and telemetry
    # modules), which processes that never talk to Redis (migrate, most commands) do not pay.
    import redis

    if _sync_client is None or _sync_client_pid != os.getpid():
        _sync_client = redis.Redis.from_url(settings.REDIS_URL)
        _sync_client_pid = os.getpid()
    return _sync_client
