"""Invalidation hook for the data plane's budget and limit snapshots.

The gateway registers the real implementation (its in-process snapshots, and the broadcast that
reaches every worker); until it does, there is nothing to invalidate.
"""

from __future__ import annotations

from collections.abc import Callable

_invalidators: list[Callable[[], None]] = []


def budget_cache_register_invalidator(invalidator: Callable[[], None]) -> None:
    if invalidator not in _invalidators:
        _invalidators.append(invalidator)


def budget_cache_invalidate() -> None:
    for invalidator in _invalidators:
        invalidator()
