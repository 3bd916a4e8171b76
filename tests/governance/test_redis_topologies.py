"""Ogem on a Redis Cluster and behind Redis Sentinel, each of the test's own.

The Cluster: six redis-server nodes (three masters, three replicas), joined with
`redis-cli --cluster create`, and REDIS_URL=redis+cluster://... . Every Lua script of the hot
path touches keys of one hash slot (ogem_site.redis.redis_slot_key), or a Cluster would refuse it
(CROSSSLOT). The Sentinel: a master and a Sentinel monitoring it, REDIS_URL=redis+sentinel://... .
On each, a chat completion through the live server with a virtual key that has rpm, tpm and a
budget is admitted, limited and settled, and its usage and spend reach the database.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from django.db import connection

from billing.models import Budget, RequestLog
from billing.services import budget_periods_reset, usage_drain
from gateway.governance import governance_snapshot_flush
from keys.services import key_create
from ogem_site.redis import redis_client_sync, redis_clients_forget
from tests.factories import TeamFactory
from tests.governance.redis_servers import RedisCluster, RedisSentinel
from tests.live import LiveServer

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server"),
]

MESSAGES = [{"role": "user", "content": "Hello there, how are you today?"}]


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    cluster = RedisCluster(directory=tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    sentinel = RedisSentinel(directory=tmp_path_factory.mktemp("sentinel")).start()
    yield sentinel
    sentinel.stop()


@pytest.fixture
def ogem_on(settings, live_ogem: LiveServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    def point(url: str) -> LiveServer:
        settings.REDIS_URL = url
        settings.OGEM_USAGE_SPOOL_DIR = str(tmp_path / "spool")
        redis_clients_forget()
        governance_snapshot_flush()
        return live_ogem

    yield point
    redis_clients_forget()
    governance_snapshot_flush()


def _governed_requests_checked(live: LiveServer) -> None:
    """Two requests admitted and limited (rpm 2), a third refused; usage and spend recorded."""
    issued = key_create(
        name="topology",
        team=TeamFactory(),
        rpm_limit=2,
        tpm_limit=100_000,
        max_budget=Decimal("5"),
    )
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=issued.secret, max_retries=0)
    served = []
    for remaining in ("1", "0"):
        raw = client.chat.completions.with_raw_response.create(
            model="mock-chat", messages=MESSAGES, max_tokens=50
        )
        assert raw.http_response.status_code == 200
        assert raw.headers["x-ratelimit-limit-requests"] == "2"
        assert raw.headers["x-ratelimit-remaining-requests"] == remaining
        assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
        served.append((raw.headers["x-request-id"], raw.parse().usage))
    with pytest.raises(openai.RateLimitError) as refused:  # the rpm is counted in Redis
        client.chat.completions.create(model="mock-chat", messages=MESSAGES, max_tokens=50)
    assert refused.value.response.json()["error"]["code"] == "rate_limit_exceeded"

    assert usage_drain() == 2
    rows = {row.request_id: row for row in RequestLog.objects.filter(key_id=issued.key.pk)}
    assert sorted(rows) == sorted(request_id for request_id, _ in served)
    expected = Decimal(0)
    for request_id, usage in served:
        cost = Decimal(usage.prompt_tokens) * Decimal("0.000001") + Decimal(
            usage.completion_tokens
        ) * Decimal("0.000002")
        assert rows[request_id].cost == cost
        assert rows[request_id].total_tokens == usage.total_tokens
        expected += cost
    budget_periods_reset()
    assert Budget.objects.get(key=issued.key).spend == expected


def test_a_governed_chat_completion_on_a_redis_cluster(  # type: ignore[no-untyped-def]
    ogem_on, redis_cluster: RedisCluster, settings
) -> None:
    _governed_requests_checked(ogem_on(redis_cluster.url))
    # The scripts' keys (windows, budget counters, leases) share one hash slot.
    redis = redis_client_sync()
    keys = list(redis.scan_iter(match=f"{{{settings.OGEM_CACHE_PREFIX}}}:*"))
    assert any(b":budget:key:" in key for key in keys)
    assert any(key.endswith(b":rpm") for key in keys)
    assert len({redis.keyslot(key) for key in keys}) == 1


def test_a_governed_chat_completion_behind_redis_sentinel(  # type: ignore[no-untyped-def]
    ogem_on, redis_sentinel: RedisSentinel
) -> None:
    _governed_requests_checked(ogem_on(redis_sentinel.url))
    assert redis_sentinel.master is not None
    assert redis_client_sync().connection_pool.get_master_address() == (
        "127.0.0.1",
        redis_sentinel.master.port,
    )


def _django_redis_cache(location: str):  # type: ignore[no-untyped-def]
    from django_redis.cache import RedisCache

    return RedisCache(
        location,
        {
            "KEY_PREFIX": "topology",
            "OPTIONS": {"CLIENT_CLASS": "ogem_site.redis.OgemCacheClient"},
        },
    )


@pytest.mark.parametrize("topology", ["cluster", "sentinel"])
def test_the_django_cache_is_django_redis_on_every_topology(  # type: ignore[no-untyped-def]
    settings, topology: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(f"redis_{topology}")
    settings.REDIS_URL = server.url
    redis_clients_forget()
    try:
        cache = _django_redis_cache(server.url)
        values = {f"entry-{n}": {"n": n} for n in range(20)}  # keys of many hash slots
        cache.set_many(values, timeout=60)
        assert cache.get_many([*values, "absent"]) == values
        assert cache.add("entry-counter", 1)
        assert not cache.add("entry-counter", 5)
        assert cache.incr("entry-counter") == 2
        cache.delete_many(list(values))
        assert cache.get_many(list(values)) == {}
    finally:
        redis_clients_forget()
