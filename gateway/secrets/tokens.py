"""Short-lived access tokens of the managers, cached per process until shortly before expiry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_MARGIN = 60.0  # renew this many seconds before expiry
_lock = threading.Lock()
_tokens: dict[str, tuple[str, float]] = {}


def token_get(key: str, fetch: Callable[[], tuple[str, float]]) -> str:
    """The cached token under `key`, or `fetch()`'s (token, lifetime in seconds)."""
    now = time.monotonic()
    with _lock:
        cached = _tokens.get(key)
    if cached is not None and cached[1] > now:
        return cached[0]
    token, lifetime = fetch()
    with _lock:
        _tokens[key] = (token, now + max(lifetime - _MARGIN, lifetime / 2))
    return token


def token_forget(key: str) -> None:
    with _lock:
        _tokens.pop(key, None)


def token_clear() -> None:
    with _lock:
        _tokens.clear()
