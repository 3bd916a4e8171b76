"""The Redis tier of the /v1 key cache: where its entries live, and forgetting them.

gateway/auth.py resolves a key through an in-process cache, then these Redis entries (shared by
every worker), then the database. A key change records the key's prefixes in an outbox
(`KeyCacheInvalidation`) in its own transaction; after commit it deletes the key's Redis entries,
then the outbox rows, and publishes the prefixes on the broadcast's "keys" topic so that every
worker drops them from its process cache: no worker can refill from Redis. When Redis cannot be
reached the rows stay, and `key_cache_invalidations_flush` finishes the job once it answers.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from keys.models import KeyCacheInvalidation
from ogem_site.broadcast import KEYS, broadcast_publish
from ogem_site.redis import redis_client_sync, redis_key

logger = logging.getLogger(__name__)

FLUSH_BATCH = 500


def key_cache_entry(digest: str) -> str:
    """A resolved caller, by sha256 of the secret."""
    return redis_key(f"v1:key:{digest}")


def key_cache_index(prefix: str) -> str:
    """The digests cached for one key prefix (a rotated key has two secrets)."""
    return redis_key(f"v1:key:prefix:{prefix}")


def key_cache_invalidation_record(*, prefixes: list[str]) -> None:
    """Every worker forgets these keys once the current transaction commits."""
    if not prefixes:
        return
    pending: list[int] = []
    if settings.REDIS_URL:
        rows = KeyCacheInvalidation.objects.bulk_create(
            [KeyCacheInvalidation(prefix=prefix) for prefix in prefixes]
        )
        pending = [row.pk for row in rows]
    transaction.on_commit(lambda: key_cache_invalidate(prefixes=prefixes, pending=pending))


def key_cache_invalidate(*, prefixes: list[str], pending: list[int] | None = None) -> None:
    """Delete the Redis entries of these key prefixes, then their outbox rows, and tell every
    worker to drop them from its process cache (after commit)."""
    if settings.REDIS_URL and prefixes:
        try:
            _redis_entries_delete(prefixes)
        except Exception:
            logger.error(
                "key cache: Redis unreachable, %s wait in the outbox until it answers", prefixes
            )
        else:
            if pending:
                KeyCacheInvalidation.objects.filter(pk__in=pending).delete()
    broadcast_publish(topic=KEYS, message={"prefixes": prefixes})


def key_cache_invalidations_flush() -> int:
    """Finish the invalidations that Redis missed; returns how many outbox rows were done.
    Raises when Redis still cannot be reached (the rows stay)."""
    if not settings.REDIS_URL:
        return 0
    done = 0
    while rows := list(KeyCacheInvalidation.objects.values_list("pk", "prefix")[:FLUSH_BATCH]):
        prefixes = sorted({prefix for _, prefix in rows})
        _redis_entries_delete(prefixes)
        KeyCacheInvalidation.objects.filter(pk__in=[pk for pk, _ in rows]).delete()
        broadcast_publish(topic=KEYS, message={"prefixes": prefixes})
        logger.warning("key cache: %d invalidations missed by Redis are now done", len(rows))
        done += len(rows)
    return done


def _redis_entries_delete(prefixes: list[str]) -> None:
    client = redis_client_sync()
    indexes = [key_cache_index(prefix) for prefix in prefixes]
    digests: set[bytes] = set()
    for index in indexes:
        digests.update(client.smembers(index))
    client.delete(*indexes, *(key_cache_entry(digest.decode()) for digest in digests))
