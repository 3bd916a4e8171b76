"""Redis for the data plane: one asyncio connection pool per process (per event loop). Names of
keys, streams and channels come from `ogem_site.redis.redis_key` (re-exported here)."""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from django.conf import settings

from ogem_site.redis import redis_key

__all__ = ["get_redis", "redis_key"]

_client: aioredis.Redis | None = None
# asyncio connections belong to the loop that opened them: a second loop in the same process
# (a test server thread, async_to_sync) gets its own pool instead of another loop's sockets.
_loop_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def _new_client() -> aioredis.Redis:
    # Blocking: in a burst beyond the pool size callers wait for a connection instead of failing
    # (redis-py's default pool raises "Too many connections" past 100).
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.REDIS_URL,
        max_connections=getattr(settings, "OGEM_REDIS_MAX_CONNECTIONS", 200),
        timeout=10,
    )
    return aioredis.Redis(connection_pool=pool)


def get_redis() -> aioredis.Redis:
    global _client
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        if _client is None:
            _client = _new_client()
        return _client
    client = _loop_clients.get(loop)
    if client is None:
        client = _loop_clients[loop] = _new_client()
    return client
