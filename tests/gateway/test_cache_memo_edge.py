"""A memo'd response cache hit answered at the lean edge without Django's request or response
(gateway/asgi.py `_memo_request`, gateway/relay.py `relay_memo_hit`), through the live server:
the same answer as the relay's hit, and everything the relay's path would see still seen."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest

from gateway.cache import cache_local_clear
from gateway.config import watch as config_watch
from gateway.config.types import CacheSettings
from gateway.registry import registry_get
from tests.live import LiveServer

pytestmark = pytest.mark.django_db(transaction=True)

# Per request: its id, its overhead, its trace, and the rate limit's figures as they count down.
_PER_REQUEST = {"date", "x-request-id", "x-ogem-overhead-ms", "x-ogem-trace-id"}


@pytest.fixture
def local_cache(settings: Any) -> Iterator[None]:
    registry_get()  # the first load installs its configuration: before this test's
    previous = config_watch._current
    config_watch._current = replace(previous, cache=CacheSettings(type="local"))
    yield
    config_watch._current = previous
    cache_local_clear()


@pytest.fixture
def edge_hits(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The request ids the edge answered from a memo (the live server runs in this process)."""
    from gateway import asgi

    answered: list[str] = []
    original = asgi.relay_memo_hit

    async def counted(**options: Any) -> Any:
        done = await original(**options)
        if done is not None:
            answered.append(options["request_id"])
        return done

    monkeypatch.setattr(asgi, "relay_memo_hit", counted)
    return answered


def _post(live: LiveServer, secret: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{live.url}/v1/chat/completions",
        content=body,
        headers={
            "Authorization": f"Bearer {secret}",
            "Content-Type": "application/json",
            **headers,
        },
        timeout=30,
    )


def _body() -> bytes:
    question = f"What is the answer? {uuid.uuid4().hex}"
    return orjson.dumps({"model": "mock-chat", "messages": [{"role": "user", "content": question}]})


def _shape(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    """The headers in order, per-request values blanked."""
    return [
        (name, b"" if name.decode().lower() in _PER_REQUEST or b"ratelimit" in name else value)
        for name, value in response.headers.raw
    ]


@pytest.mark.parametrize("limits", [{}, {"rpm_limit": 1000, "tpm_limit": 10_000_000}])
def test_an_edge_hit_answers_as_the_relays_hit(  # type: ignore[no-untyped-def]
    local_cache, edge_hits, make_key, live_ogem, limits: dict[str, Any]
) -> None:
    secret = make_key(**limits)
    body = _body()
    miss = _post(live_ogem, secret, body)
    relayed = _post(live_ogem, secret, body)  # the relay's hit, which keeps the memo
    edge = _post(live_ogem, secret, body)
    assert (miss.status_code, relayed.status_code, edge.status_code) == (200, 200, 200)
    assert [r.headers["x-ogem-cache"] for r in (miss, relayed, edge)] == ["miss", "hit", "hit"]
    assert edge_hits == [edge.headers["x-request-id"]]
    assert edge.content == relayed.content == miss.content
    assert _shape(edge) == _shape(relayed)
    assert edge.headers["x-ogem-cache-age"] == "0"
    assert len(edge.headers["x-ogem-trace-id"]) == 32
    if limits:
        left = [int(r.headers["x-ratelimit-remaining-requests"]) for r in (relayed, edge)]
        assert left[1] < left[0] < 1000  # the edge's hit counted against the rpm
    # The client's request id is kept, as the relay keeps it; a bad one is replaced.
    named = _post(live_ogem, secret, body, **{"X-Request-Id": "client-id.1"})
    assert named.headers["x-request-id"] == "client-id.1"
    bad = _post(live_ogem, secret, body, **{"X-Request-Id": "no spaces"})
    assert bad.headers["x-request-id"] != "no spaces"
    assert edge_hits[1:] == ["client-id.1", bad.headers["x-request-id"]]
    # The client's traceparent names the trace.
    trace = "0af7651916cd43dd8448eb211c80319c"
    traced = _post(live_ogem, secret, body, traceparent=f"00-{trace}-b7ad6b7169203331-01")
    assert traced.headers["x-ogem-trace-id"] == trace
    assert traced.headers["x-ogem-cache"] == "hit"


def test_what_the_relay_would_see_still_counts_at_the_edge(  # type: ignore[no-untyped-def]
    local_cache, edge_hits, make_key, live_ogem
) -> None:
    """Cache-Control, a purge, an expired or revoked key: each is seen on a memo'd body."""
    from keys.models import VirtualKey
    from keys.services import key_revoke

    secret = make_key()
    body = _body()
    assert [_post(live_ogem, secret, body).headers["x-ogem-cache"] for _ in range(3)] == [
        "miss",
        "hit",
        "hit",
    ]
    assert len(edge_hits) == 1
    no_cache = _post(live_ogem, secret, body, **{"Cache-Control": "no-cache"})
    assert no_cache.headers["x-ogem-cache"] == "bypass"
    too_old = _post(live_ogem, secret, body, **{"Cache-Control": "max-age=0"})
    assert too_old.status_code == 200
    assert len(edge_hits) == 1  # neither was the memo's
    cache_local_clear()  # a purge: the memo stays, its entry is gone (the relay's miss)
    purged = _post(live_ogem, secret, body)
    assert purged.headers["x-ogem-cache"] == "miss"
    assert _post(live_ogem, secret, body).headers["x-ogem-cache"] == "hit"
    assert len(edge_hits) == 2
    # Another key of the same team shares the entry but not the memo: the relay answers it.
    other = make_key(team=VirtualKey.objects.get(prefix=secret[3:11]).team)
    assert _post(live_ogem, other, body).headers["x-ogem-cache"] == "hit"
    assert len(edge_hits) == 2
    key_revoke(key=VirtualKey.objects.get(prefix=secret[3:11]))
    revoked = _post(live_ogem, secret, body)
    assert revoked.status_code == 401
    assert revoked.json()["error"]["type"] == "authentication_error"
    assert len(edge_hits) == 2


def test_an_expired_key_is_refused_on_a_memod_body(  # type: ignore[no-untyped-def]
    local_cache, edge_hits, make_key, live_ogem
) -> None:
    from datetime import UTC, datetime, timedelta

    secret = make_key(expires_at=datetime.now(UTC) + timedelta(seconds=2))
    body = _body()
    assert [_post(live_ogem, secret, body).headers["x-ogem-cache"] for _ in range(3)] == [
        "miss",
        "hit",
        "hit",
    ]
    assert len(edge_hits) == 1
    time.sleep(2.1)
    expired = _post(live_ogem, secret, body)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "expired_api_key"
    assert len(edge_hits) == 1


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_a_hit_refused_at_the_edge_is_the_relays_refusal(  # type: ignore[no-untyped-def]
    local_cache, edge_hits, make_key, live_ogem
) -> None:
    secret = make_key(rpm_limit=3)
    body = _body()
    answers = [_post(live_ogem, secret, body) for _ in range(3)]
    assert [r.headers["x-ogem-cache"] for r in answers] == ["miss", "hit", "hit"]
    refused = _post(live_ogem, secret, body)
    assert refused.status_code == 429
    assert refused.headers["x-ogem-cache"] == "miss"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["content-type"] == "application/json"
    assert len(refused.headers["x-ogem-trace-id"]) == 32
    assert refused.headers["x-request-id"]
    assert edge_hits == [answers[2].headers["x-request-id"]]


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="an L2-only cache needs Redis")
def test_without_an_l1_tier_the_edge_leaves_hits_to_the_relay(  # type: ignore[no-untyped-def]
    settings, make_key, live_ogem, monkeypatch
) -> None:
    """`local_max_bytes: 0` (Redis alone): the edge has no entry to answer from, so it does not
    try (each try built a context for nothing: a tenth of an L2 hit's instructions); the relay
    answers every hit from Redis."""
    from gateway import asgi

    tried: list[str] = []
    original = asgi.relay_memo_hit

    async def counted(**options: Any) -> Any:
        tried.append(options["request_id"])
        return await original(**options)

    monkeypatch.setattr(asgi, "relay_memo_hit", counted)
    registry_get()
    previous = config_watch._current
    config_watch._current = replace(previous, cache=CacheSettings(type="redis", local_max_bytes=0))
    try:
        secret = make_key()
        body = _body()
        answers = [_post(live_ogem, secret, body) for _ in range(4)]
        assert [r.headers["x-ogem-cache"] for r in answers] == ["miss", "hit", "hit", "hit"]
        assert tried == []
    finally:
        config_watch._current = previous
        cache_local_clear()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="an L1 + L2 cache needs Redis")
def test_an_entry_gone_from_l1_is_read_from_redis_without_an_edge_try(  # type: ignore[no-untyped-def]
    settings, make_key, live_ogem, monkeypatch
) -> None:
    """L1 + Redis: a memo'd body whose entry this worker's L1 no longer holds (evicted, or written
    by another worker) goes straight to the relay, which reads Redis and promotes the entry; the
    next one is the edge's."""
    from gateway import asgi

    tried: list[str] = []
    original = asgi.relay_memo_hit

    async def counted(**options: Any) -> Any:
        done = await original(**options)
        tried.append(f"{options['request_id']} {'answered' if done else 'fell back'}")
        return done

    monkeypatch.setattr(asgi, "relay_memo_hit", counted)
    registry_get()
    previous = config_watch._current
    config_watch._current = replace(previous, cache=CacheSettings(type="redis"))
    try:
        secret = make_key()
        body = _body()
        # A miss (written to Redis), a hit read from Redis (promoted, its memo kept), an edge hit.
        answers = [_post(live_ogem, secret, body) for _ in range(3)]
        cache_local_clear()
        answers += [_post(live_ogem, secret, body) for _ in range(2)]
        assert [r.headers["x-ogem-cache"] for r in answers] == ["miss", *["hit"] * 4]
        assert tried == [f"{answers[n].headers['x-request-id']} answered" for n in (2, 4)]
    finally:
        config_watch._current = previous
        cache_local_clear()
