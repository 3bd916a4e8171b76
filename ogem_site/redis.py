"""Redis for every layer: the names of every key, stream and channel Ogem writes (`redis_key`)."""

from __future__ import annotations

from django.conf import settings


def redis_key(name: str) -> str:
    """`<OGEM_CACHE_PREFIX>:<name>`: every Redis key, stream and pub/sub channel Ogem writes is
    named here, so installations sharing one Redis never read or drain each other's data."""
    return f"{settings.OGEM_CACHE_PREFIX}:{name}"
