"""ogem_site.caching.LocalCache: bounded, per-entry TTLs, negative caching, stale reads, tags and
the generation guard that keeps an invalidated value from being put back."""

from __future__ import annotations

import threading

import pytest

from ogem_site import caching
from ogem_site.caching import LocalCache

MISS = object()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(caching, "_clock", lambda: now[0])
    return now


def test_entries_expire_after_their_own_ttl(clock: list[float]) -> None:
    cache: LocalCache[str, str | None] = LocalCache(maxsize=10, ttl=60)
    cache.set("found", "caller")
    cache.set("absent", None, ttl=10)  # "no such key", remembered briefly
    assert cache.get("found", MISS) == "caller"
    assert cache.get("absent", MISS) is None
    assert cache.get("never", MISS) is MISS
    clock[0] += 10.5
    assert cache.get("absent", MISS) is MISS
    assert cache.get("found", MISS) == "caller"
    clock[0] += 50
    assert cache.get("found", MISS) is MISS


def test_stale_entries_stay_readable_until_dropped(clock: list[float]) -> None:
    cache: LocalCache[str, int] = LocalCache(maxsize=10, ttl=5)
    cache.set("a", 1)
    cache.set("b", 2, ttl=100)
    assert cache.peek("a") == (1, True)
    clock[0] += 6
    assert cache.peek("a") == (1, False)  # served while a refresh runs
    assert cache.expired() == ["a"]
    cache.prune()
    assert cache.peek("a") is None
    assert cache.peek("b") == (2, True)


def test_the_size_is_bounded_under_key_churn() -> None:
    cache: LocalCache[int, int] = LocalCache(maxsize=100, ttl=60)
    for key in range(10_000):
        cache.set(key, key, tag=key % 7)
    assert len(cache) == 100
    assert [cache.get(key) for key in (9_899, 9_900, 9_999)] == [None, 9_900, 9_999]
    assert sum(len(keys) for keys in cache._tags.values()) == 100  # the index shrinks too
    cache.set(9_900, -1)  # rewriting an entry makes it the newest
    cache.set(10_000, 10_000)
    assert (cache.get(9_900), cache.get(9_901)) == (-1, None)


def test_tags_drop_their_entries() -> None:
    cache: LocalCache[str, str] = LocalCache(maxsize=10, ttl=60)
    cache.set("digest-1", "one", tag="sk-abc")
    cache.set("digest-2", "two", tag="sk-abc")
    cache.set("digest-3", "three", tag="sk-xyz")
    cache.drop_tags(["sk-abc", "sk-unknown"])
    assert [cache.get(d) for d in ("digest-1", "digest-2", "digest-3")] == [None, None, "three"]


@pytest.mark.parametrize(
    "invalidate",
    [
        lambda cache: cache.drop_tags(["sk-abc"]),
        lambda cache: cache.pop("digest"),
        lambda cache: cache.clear(),
    ],
)
def test_a_value_read_before_an_invalidation_is_not_stored(invalidate) -> None:  # type: ignore[no-untyped-def]
    cache: LocalCache[str, str] = LocalCache(maxsize=10, ttl=60)
    generation = cache.generation  # a lookup starts, reads the database ...
    invalidate(cache)  # ... while the key is revoked
    cache.set("digest", "the revoked key's caller", tag="sk-abc", generation=generation)
    assert cache.get("digest") is None
    cache.set("digest", "fresh", tag="sk-abc", generation=cache.generation)
    assert cache.get("digest") == "fresh"


def test_threads_share_a_cache() -> None:
    cache: LocalCache[int, int] = LocalCache(maxsize=500, ttl=60)

    def write(offset: int) -> None:
        for key in range(offset, offset + 2_000):
            cache.set(key, key, tag=key % 3)
            cache.get(key - 1)
            if key % 100 == 0:
                cache.drop_tags([key % 3])

    threads = [threading.Thread(target=write, args=(n * 1_000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) <= 500
    indexed = set().union(*cache._tags.values())
    assert indexed == set(cache._entries)
