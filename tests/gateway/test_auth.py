"""Keys on /v1: the three headers, the resolver's caches, revocation, expiry, zero queries."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import openai
import orjson
import pytest
from django.db.backends.utils import CursorWrapper
from django.utils import timezone

from billing.pricing import price_overrides_load
from keys.models import VirtualKey
from keys.services import key_revoke, key_rotate, key_update
from tests.live import broadcast_listening

BODY = {"model": "mock-chat", "messages": [{"role": "user", "content": "Hi"}]}


def _chat(live_ogem, headers: dict[str, str]) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(f"{live_ogem.url}/v1/chat/completions", json=BODY, headers=headers)


@pytest.mark.parametrize(
    "header",
    [
        lambda key: {"Authorization": f"Bearer {key}"},
        lambda key: {"api-key": key},
        lambda key: {"x-api-key": key},
    ],
    ids=["bearer", "api-key", "x-api-key"],
)
def test_three_headers_for_master_and_virtual_keys(live_ogem, master_key, make_key, header) -> None:  # type: ignore[no-untyped-def]
    assert _chat(live_ogem, header(master_key)).status_code == 200
    assert _chat(live_ogem, header(make_key())).status_code == 200
    assert _chat(live_ogem, header("sk-" + "Z" * 48)).status_code == 401


@pytest.fixture
def queries_by_server(settings) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    """Every SQL statement executed by a thread other than the test's own.

    Usage accounting writes its events in batches (one INSERT per batch of up to 500 requests,
    from a background task, not per request): those batch writes are left out.
    """
    settings.OGEM_USAGE_AUTOFLUSH = False
    # Price overrides are re-read in the background every OGEM_PRICE_OVERRIDE_TTL (30 s), by
    # design: a fresh load now keeps that refresh out of the test's steady-state window.
    price_overrides_load()
    seen: list[str] = []
    original = CursorWrapper._execute_with_wrappers
    test_thread = threading.current_thread()

    def counting(self, sql, params, many, executor):  # type: ignore[no-untyped-def]
        batch_write = "billing_requestlog" in sql or sql in ("BEGIN", "COMMIT")
        if threading.current_thread() is not test_thread and not batch_write:
            seen.append(sql)
        return original(self, sql, params, many, executor)

    CursorWrapper._execute_with_wrappers = counting  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        CursorWrapper._execute_with_wrappers = original  # type: ignore[method-assign]


def test_steady_state_makes_zero_database_queries(live_ogem, make_key, queries_by_server) -> None:  # type: ignore[no-untyped-def]
    key = make_key()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=key, max_retries=0)
    client.chat.completions.create(**BODY)  # warms the resolver's cache
    assert len(queries_by_server) >= 1  # the first request did read the key
    queries_by_server.clear()
    for _ in range(20):
        client.chat.completions.create(**BODY)
    stream = client.chat.completions.create(**BODY, stream=True)
    assert list(stream)
    client.embeddings.create(model="mock-embed", input="x")
    client.models.list()
    assert queries_by_server == []


def test_unknown_key_is_cached_negatively(live_ogem, queries_by_server) -> None:  # type: ignore[no-untyped-def]
    unknown = {"Authorization": "Bearer sk-" + "Q" * 48}
    assert _chat(live_ogem, unknown).status_code == 401
    first = len(queries_by_server)
    assert first >= 1
    for _ in range(5):
        assert _chat(live_ogem, unknown).status_code == 401
    assert len(queries_by_server) == first


def test_revoked_key_refused_within_one_second(live_ogem, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = make_key()
    headers = {"Authorization": f"Bearer {secret}"}
    assert _chat(live_ogem, headers).status_code == 200
    key_revoke(key=VirtualKey.objects.get(prefix=secret[3:11]))
    deadline = time.monotonic() + 1.0
    while _chat(live_ogem, headers).status_code != 401:
        assert time.monotonic() < deadline, "revoked key still accepted after one second"
        time.sleep(0.02)


def test_update_takes_effect_within_one_second(live_ogem, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = make_key()
    headers = {"Authorization": f"Bearer {secret}"}
    assert _chat(live_ogem, headers).status_code == 200
    key_update(key=VirtualKey.objects.get(prefix=secret[3:11]), allowed_models=["mock-embed"])
    deadline = time.monotonic() + 1.0
    while _chat(live_ogem, headers).status_code != 403:
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_rotation_refuses_old_secret(live_ogem, make_key) -> None:  # type: ignore[no-untyped-def]
    old = make_key()
    assert _chat(live_ogem, {"Authorization": f"Bearer {old}"}).status_code == 200
    issued = key_rotate(key=VirtualKey.objects.get(prefix=old[3:11]))
    # No wait: the live server shares this process, whose caches drop the key as the rotation
    # commits (broadcast_publish applies it here first); other workers are the pub/sub tests'.
    assert _chat(live_ogem, {"Authorization": f"Bearer {old}"}).status_code == 401
    assert _chat(live_ogem, {"Authorization": f"Bearer {issued.secret}"}).status_code == 200


def test_expiry_checked_on_every_request(live_ogem, make_key, queries_by_server) -> None:  # type: ignore[no-untyped-def]
    secret = make_key(expires_at=timezone.now() + timedelta(seconds=1))
    headers = {"Authorization": f"Bearer {secret}"}
    assert _chat(live_ogem, headers).status_code == 200
    queries_by_server.clear()
    time.sleep(1.1)
    response = _chat(live_ogem, headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "expired_api_key"
    assert queries_by_server == [], queries_by_server  # refused from the cached expiry


def test_already_expired_key_refused(live_ogem, make_key) -> None:  # type: ignore[no-untyped-def]
    secret = make_key(expires_at=timezone.now() - timedelta(seconds=1))
    assert _chat(live_ogem, {"Authorization": f"Bearer {secret}"}).status_code == 401


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (pub/sub)")
def test_invalidation_reaches_workers_through_redis_pubsub(live_ogem, make_key) -> None:  # type: ignore[no-untyped-def]
    """Another process's invalidation arrives only through Redis: nothing here touches this
    process's cache directly (the row is changed with a bare UPDATE, not key_revoke)."""
    import redis
    from django.conf import settings

    from ogem_site.broadcast import KEYS, broadcast_channel
    from ogem_site.redis import redis_key

    secret = make_key()
    headers = {"Authorization": f"Bearer {secret}"}
    assert _chat(live_ogem, headers).status_code == 200
    broadcast_listening()  # it starts with the first request, and with a clean cache
    assert _chat(live_ogem, headers).status_code == 200
    prefix = secret[3:11]
    VirtualKey.objects.filter(prefix=prefix).update(revoked_at=timezone.now())
    assert _chat(live_ogem, headers).status_code == 200  # still cached, as expected
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        for stored in client.scan_iter(match=redis_key("v1:key:*")):
            client.delete(stored)
        client.publish(broadcast_channel(), orjson.dumps({"topic": KEYS, "prefixes": [prefix]}))
    finally:
        client.close()
    deadline = time.monotonic() + 1.0
    while _chat(live_ogem, headers).status_code != 401:
        assert time.monotonic() < deadline, "pub/sub invalidation did not arrive within 1 s"
        time.sleep(0.02)


def _redis_unreachable(settings) -> None:  # type: ignore[no-untyped-def]
    """Point this process's Redis clients at a port nobody listens on (the live server shares
    them: it runs in a thread of this process)."""
    import socket

    from ogem_site.redis import redis_clients_forget

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    redis_clients_forget()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_a_key_revoked_while_redis_is_away_is_not_served_from_redis_later(  # type: ignore[no-untyped-def]
    live_ogem, make_key, settings
) -> None:
    """The revocation cannot delete the key's Redis entry (Redis is away) and its broadcast is
    lost; the outbox row it leaves is flushed (beat's task) once Redis answers, which deletes the
    entry and tells the workers: the key is refused instead of living on for the entry's TTL."""
    import redis

    from keys.cache import key_cache_entry, key_cache_invalidations_flush
    from keys.models import KeyCacheInvalidation
    from ogem_site.redis import redis_clients_forget

    secret = make_key()
    headers = {"Authorization": f"Bearer {secret}"}
    assert _chat(live_ogem, headers).status_code == 200
    entry = key_cache_entry(hashlib.sha256(secret.encode()).hexdigest())
    reachable = settings.REDIS_URL
    client = redis.Redis.from_url(reachable)
    try:
        assert client.exists(entry)
        _redis_unreachable(settings)
        key_revoke(key=VirtualKey.objects.get(prefix=secret[3:11]))
        assert list(KeyCacheInvalidation.objects.values_list("prefix", flat=True)) == [secret[3:11]]
        settings.REDIS_URL = reachable
        redis_clients_forget()
        assert client.exists(entry)  # what Redis missed

        assert key_cache_invalidations_flush() == 1
        assert not client.exists(entry)
        assert not KeyCacheInvalidation.objects.exists()
        deadline = time.monotonic() + 1.0
        while _chat(live_ogem, headers).status_code != 401:
            assert time.monotonic() < deadline, "revoked key still accepted after the flush"
            time.sleep(0.02)
    finally:
        client.close()


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")
def test_a_worker_flushes_missed_invalidations_before_it_reads_redis_again(  # type: ignore[no-untyped-def]
    live_ogem, make_key, settings
) -> None:
    import asyncio

    import redis

    from keys.cache import key_cache_entry
    from keys.models import KeyCacheInvalidation
    from ogem_site import redis as ogem_redis

    secret = make_key()
    assert _chat(live_ogem, {"Authorization": f"Bearer {secret}"}).status_code == 200
    entry = key_cache_entry(hashlib.sha256(secret.encode()).hexdigest())
    reachable = settings.REDIS_URL
    _redis_unreachable(settings)
    key_revoke(key=VirtualKey.objects.get(prefix=secret[3:11]))
    settings.REDIS_URL = reachable
    ogem_redis.redis_clients_forget()
    settings.OGEM_REDIS_PROBE_INTERVAL = 0.01

    client = redis.Redis.from_url(reachable)
    seen: list[tuple[bool, int]] = []

    async def after_the_flush() -> None:  # registered after gateway/auth.py's step
        seen.append((ogem_redis.redis_outage.down, client.exists(entry)))

    ogem_redis.redis_recovery_register(after_the_flush, before_reopening=True)
    try:

        async def outage_then_probe() -> None:
            ogem_redis.redis_outage.down = True  # as the first failed command leaves it
            await ogem_redis._probe()
            await ogem_redis.redis_clients_close()

        asyncio.run(outage_then_probe())
    finally:
        ogem_redis._reopening.remove(after_the_flush)
        ogem_redis.redis_outage_reset()
        client.close()
    # Still considered away (the hot path on its fallbacks) while the entry was already gone.
    assert seen == [(True, 0)]
    assert not ogem_redis.redis_outage.down
    assert not KeyCacheInvalidation.objects.exists()
