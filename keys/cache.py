"""Invalidation hook for the /v1 key resolver's caches.

The data plane registers the real implementation (in-process cache, Redis, pub/sub broadcast);
until it does, there is nothing to invalidate.
"""

from __future__ import annotations

from collections.abc import Callable

_invalidators: list[Callable[[list[str]], None]] = []


def key_cache_register_invalidator(invalidator: Callable[[list[str]], None]) -> None:
    if invalidator not in _invalidators:
        _invalidators.append(invalidator)


def key_cache_invalidate(*, prefixes: list[str]) -> None:
    for invalidator in _invalidators:
        invalidator(prefixes)
