"""Celery tasks of keys: thin wrappers over its services (scheduled by beat)."""

from __future__ import annotations

from celery import shared_task

from keys.cache import key_cache_invalidations_flush as invalidations_flush


@shared_task(name="keys.tasks.key_cache_invalidations_flush", ignore_result=True)
def key_cache_invalidations_flush() -> int:
    """Key changes whose Redis key-cache entries Redis missed (keys/cache.py)."""
    return invalidations_flush()
