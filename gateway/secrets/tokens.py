"""Short-lived access tokens of the managers, cached per process until shortly before expiry."""

from __future__ import annotations

from collections.abc import Callable

from ogem_site.caching import LocalCache

_MARGIN = 60.0  # renew this many seconds before expiry
_tokens: LocalCache[str, str] = LocalCache(maxsize=256, ttl=0)


def token_get(key: str, fetch: Callable[[], tuple[str, float]]) -> str:
    """The cached token under `key`, or `fetch()`'s (token, lifetime in seconds)."""
    cached = _tokens.get(key)
    if cached is not None:
        return cached
    token, lifetime = fetch()
    _tokens.set(key, token, ttl=max(lifetime - _MARGIN, lifetime / 2))
    return token


def token_forget(key: str) -> None:
    _tokens.pop(key)


def token_clear() -> None:
    _tokens.clear()
