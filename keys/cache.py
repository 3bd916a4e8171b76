"""The Redis tier of the /v1 key cache: where its entries live, and forgetting them.

gateway/auth.py resolves a key through an in-process cache, then these Redis entries (shared by
every worker), then the database. A key change first deletes the key's Redis entries here, in the
process that made the change, then publishes the key's prefixes on the broadcast's "keys" topic
so that every worker drops them from its process cache: no worker can refill from Redis.
"""

from __future__ import annotations

import logging

from django.conf import settings

from ogem_site.broadcast import KEYS, broadcast_publish
from ogem_site.redis import redis_client_sync, redis_key

logger = logging.getLogger(__name__)


def key_cache_entry(digest: str) -> str:
    """A resolved caller, by sha256 of the secret."""
    return redis_key(f"v1:key:{digest}")


def key_cache_index(prefix: str) -> str:
    """The digests cached for one key prefix (a rotated key has two secrets)."""
    return redis_key(f"v1:key:prefix:{prefix}")


def key_cache_invalidate(*, prefixes: list[str]) -> None:
    """Every worker forgets these keys (call after commit)."""
    if settings.REDIS_URL and prefixes:
        try:
            client = redis_client_sync()
            indexes = [key_cache_index(prefix) for prefix in prefixes]
            digests: set[bytes] = set()
            for index in indexes:
                digests.update(client.smembers(index))
            client.delete(*indexes, *(key_cache_entry(digest.decode()) for digest in digests))
        except Exception:
            # The change is committed; with Redis away its entries there expire on their TTL.
            logger.error(
                "key cache: Redis unreachable, %s stay cached there until expiry", prefixes
            )
    broadcast_publish(topic=KEYS, message={"prefixes": prefixes})
