"""One asyncio Redis connection pool per process, for the data plane."""

from __future__ import annotations

import redis.asyncio as aioredis
from django.conf import settings

_client: aioredis.Redis | None = None


def get_redis() -> aioredis.Redis:
    global _client
    if _client is None:
        _client = aioredis.Redis.from_url(settings.REDIS_URL, decode_responses=False)
    return _client
