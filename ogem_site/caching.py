"""`LocalCache`: the one in-process cache of the apps (keys, JWTs, budget snapshots, prices,
JWKS, secrets, circuits), bounded, with per-entry TTLs.

- Bounded: a write past `maxsize` entries evicts the least recently written one, so key churn
  cannot grow a process without limit.
- A value may be None, and is then cached like any other ("no such key" is worth remembering);
  `get` tells a miss by returning its `default`.
- An expired entry is a miss for `get`, but `peek` still returns it with its freshness, for
  callers that serve a stale value while refreshing it, or when a refresh fails.
- `generation` is bumped by every invalidation (`pop`, `drop_tags`, `clear`): a value computed
  before one is not stored (`set(..., generation=g)`), so a reader racing an invalidation cannot
  put back what was just dropped. `tag` groups entries for `drop_tags` (a key's prefix, say).
- Reads take no lock and cost one dict lookup and a clock comparison; writes take `lock`, so
  threads may share a cache. cachetools' TTLCache/TLRUCache do the same job in pure Python: a hit
  there costs ~14,000 instructions against ~950 here (callgrind, CPython 3.11), and the /v1 path
  reads several caches per request (docs/benchmark.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

_clock = time.monotonic


class LocalCache(Generic[K, V]):
    __slots__ = ("_entries", "_tags", "generation", "lock", "maxsize", "ttl")

    def __init__(self, *, maxsize: int, ttl: float) -> None:
        self.maxsize = maxsize
        self.ttl = ttl  # seconds, unless `set` says otherwise
        self.lock = threading.Lock()
        self.generation = 0
        # key -> (value, monotonic deadline, tag); dict order is write order.
        self._entries: dict[K, tuple[V, float, Hashable]] = {}
        self._tags: dict[Hashable, set[K]] = {}

    def get(self, key: K, default: D = None) -> V | D:  # type: ignore[assignment]
        """The fresh value under `key`, else `default`."""
        entry = self._entries.get(key)
        if entry is None or entry[1] < _clock():
            return default
        return entry[0]

    def peek(self, key: K) -> tuple[V, bool] | None:
        """(value, still fresh) even past its TTL, or None when nothing is cached."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        return entry[0], entry[1] >= _clock()

    def set(
        self,
        key: K,
        value: V,
        *,
        ttl: float | None = None,
        tag: Hashable = None,
        generation: int | None = None,
    ) -> None:
        """Cache `value` for `ttl` seconds (the cache's by default); nothing when `generation`
        (read before computing the value) is no longer current."""
        deadline = _clock() + (self.ttl if ttl is None else ttl)
        with self.lock:
            if generation is not None and generation != self.generation:
                return
            self._remove(key)
            while len(self._entries) >= self.maxsize:
                self._remove(next(iter(self._entries)))
            self._entries[key] = (value, deadline, tag)
            if tag is not None:
                self._tags.setdefault(tag, set()).add(key)

    def pop(self, key: K) -> None:
        with self.lock:
            self.generation += 1
            self._remove(key)

    def drop_tags(self, tags: Iterable[Hashable]) -> None:
        """Forget every entry set with one of `tags`."""
        with self.lock:
            self.generation += 1
            for tag in tags:
                for key in self._tags.pop(tag, ()):
                    self._entries.pop(key, None)

    def clear(self) -> None:
        with self.lock:
            self.generation += 1
            self._entries.clear()
            self._tags.clear()

    def expired(self) -> list[K]:
        """The keys past their TTL (still cached: `peek` returns them)."""
        now = _clock()
        with self.lock:
            return [key for key, entry in self._entries.items() if entry[1] < now]

    def prune(self) -> None:
        """Forget the entries past their TTL."""
        now = _clock()
        with self.lock:
            for key in [k for k, entry in self._entries.items() if entry[1] < now]:
                self._remove(key)

    def __len__(self) -> int:
        return len(self._entries)

    def _remove(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry[2] is not None:
            keys = self._tags.get(entry[2])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tags[entry[2]]


class BytesLRU:
    """An in-process cache of byte strings bounded by their total size, least recently used out
    first, each entry with its own deadline (the response cache's L1, gateway/cache.py).

    Reads move the entry to the end under `lock` (an LRU needs it), so threads may share one."""

    __slots__ = ("_entries", "holds", "lock", "max_bytes", "size")

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.lock = threading.Lock()
        # key -> (value, monotonic deadline); dict order is use order, oldest first.
        self._entries: dict[Hashable, tuple[bytes, float]] = {}
        # Whether an entry, live or expired, is held: one C call, where `get` is a Python one
        # (a caller that mostly finds nothing asks this first).
        self.holds: Callable[[Hashable], bool] = self._entries.__contains__

    def get(self, key: Hashable) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        with self.lock:
            if entry[1] < _clock():
                self._remove(key)
                return None
            if key in self._entries:
                self._entries[key] = self._entries.pop(key)
        return entry[0]

    def set(self, key: Hashable, value: bytes, *, ttl: float) -> None:
        """Keep `value` for `ttl` seconds; a value larger than the whole bound is not kept."""
        size = len(value)
        if size > self.max_bytes or ttl <= 0:
            return
        entry = (value, _clock() + ttl)
        with self.lock:
            entries = self._entries
            if key in entries:  # the common new key costs no call
                self._remove(key)
            total = self.size + size
            if total > self.max_bytes:
                while entries and self.size + size > self.max_bytes:
                    self._remove(next(iter(entries)))
                total = self.size + size
            entries[key] = entry
            self.size = total

    def pop(self, key: Hashable) -> None:
        with self.lock:
            self._remove(key)

    def clear(self) -> None:
        with self.lock:
            self._entries.clear()
            self.size = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _remove(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self.size -= len(entry[0])
