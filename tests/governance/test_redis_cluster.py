"""Ogem on a Redis Cluster: six redis-server nodes of the test's own (three masters, three
replicas), joined with `redis-cli --cluster create`, and REDIS_URL=redis+cluster://... .

Every Lua script of the hot path touches keys of one hash slot (ogem_site.redis.redis_slot_key),
or a Cluster would refuse it (CROSSSLOT): a chat completion through the live server with a
virtual key that has rpm, tpm and a budget is admitted, limited and settled there, and its usage
reaches the database through the drain.
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
from tests.governance.redis_servers import RedisCluster
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


@pytest.fixture
def on_cluster(  # type: ignore[no-untyped-def]
    settings, redis_cluster: RedisCluster, live_ogem: LiveServer, tmp_path: Path
) -> Iterator[LiveServer]:
    settings.REDIS_URL = redis_cluster.url
    settings.OGEM_USAGE_SPOOL_DIR = str(tmp_path / "spool")
    redis_clients_forget()
    governance_snapshot_flush()
    yield live_ogem
    redis_clients_forget()
    governance_snapshot_flush()


def test_a_governed_chat_completion_on_a_redis_cluster(  # type: ignore[no-untyped-def]
    on_cluster: LiveServer, settings
) -> None:
    issued = key_create(
        name="cluster",
        team=TeamFactory(),
        rpm_limit=2,
        tpm_limit=100_000,
        max_budget=Decimal("5"),
    )
    client = openai.OpenAI(base_url=f"{on_cluster.url}/v1", api_key=issued.secret, max_retries=0)
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
    with pytest.raises(openai.RateLimitError) as refused:  # the rpm counts across the cluster
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
    # The scripts' keys (windows, budget counters, leases) share one hash slot.
    redis = redis_client_sync()
    keys = list(redis.scan_iter(match=f"{{{settings.OGEM_CACHE_PREFIX}}}:*"))
    assert any(b":budget:key:" in key for key in keys)
    assert any(key.endswith(b":rpm") for key in keys)
    assert len({redis.keyslot(key) for key in keys}) == 1
