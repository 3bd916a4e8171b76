"""Rate limits and admission through two web worker processes sharing PostgreSQL and Redis.

The issue's acceptance: with an RPM of N across two worker processes, exactly N requests of a
burst succeed; TPM counts settle to the real token usage; and a request refused at admission
(budget, rate limit, authentication) records no usage and no spend. Needs real PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from django.db import connection

from billing.counters import budget_counter_key
from billing.models import Budget, BudgetScope, RequestLog
from billing.selectors import budget_snapshot_from
from billing.services import usage_drain
from gateway.limits import rule_key
from keys.services import key_create
from ogem_site.redis import redis_client_sync, redis_slot_key
from tests.emulators.openai_api import OpenAIEmulator
from tests.factories import TeamFactory
from tests.governance.cluster import (
    MODEL,
    Process,
    cluster_env,
    governance_counters_clear,
    web_worker_start,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"),
        reason="needs PostgreSQL and Redis",
    ),
]

MESSAGES = [{"role": "user", "content": "Count the tokens of this prompt, please."}]


@dataclass
class Cluster:
    workers: list[Process]
    stream: str

    @property
    def urls(self) -> list[str]:
        return [worker.url for worker in self.workers]


@pytest.fixture(scope="module")
def cluster(
    django_db_setup: None,
    _emulator_server: OpenAIEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    if connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"):
        pytest.skip("needs PostgreSQL and Redis")
    stream = f"test-usage:{uuid.uuid4().hex}"
    env = cluster_env(
        tmp=tmp_path_factory.mktemp("two-workers"),
        emulator_url=_emulator_server.url,
        usage_stream=stream,
    )
    workers: list[Process] = []
    try:
        for name in ("a", "b"):
            workers.append(web_worker_start(env, name=name))
        yield Cluster(workers=workers, stream=stream)
    finally:
        for worker in workers:
            worker.kill()
        redis_client_sync().delete(redis_slot_key(stream))


@pytest.fixture
def usage(cluster: Cluster, settings) -> str:  # type: ignore[no-untyped-def]
    """This process drains the cluster's usage stream (into this test's database)."""
    settings.REDIS_URL = os.environ["REDIS_URL"]
    settings.OGEM_USAGE_STREAM = cluster.stream
    governance_counters_clear()
    usage_drain()
    RequestLog.objects.all().delete()  # rows of earlier tests' leftovers, if any
    return cluster.stream


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


async def _post(url: str, secret: str, body: bytes) -> Answer:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/v1/chat/completions", data=body, headers=headers) as resp:
            raw = await resp.read()
            if resp.content_type == "text/event-stream":
                payload: Any = [
                    orjson.loads(line[6:])
                    for line in raw.split(b"\n")
                    if line.startswith(b"data: {")
                ]
            else:
                payload = orjson.loads(raw)
            return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, payload)


def _body(**extra: Any) -> bytes:
    return orjson.dumps({"model": MODEL, "messages": MESSAGES, **extra})


def test_rpm_of_n_admits_exactly_n_of_a_burst_across_two_workers(
    cluster: Cluster, usage: str, openai_emulator: OpenAIEmulator
) -> None:
    n = 20
    issued = key_create(name="rpm", team=TeamFactory(), rpm_limit=n)
    body = _body(max_tokens=20)

    async def burst() -> list[Answer]:
        return await asyncio.gather(
            *(_post(cluster.urls[i % 2], issued.secret, body) for i in range(3 * n))
        )

    answers = asyncio.run(burst())
    served = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status != 200]
    assert len(served) == n, [(a.status, a.body) for a in refused[:2]]
    assert len(refused) == 2 * n
    for answer in refused:
        assert answer.status == 429
        error = answer.body["error"]
        assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
        assert 1 <= int(answer.headers["retry-after"]) <= 60
        assert answer.headers["x-ratelimit-limit-requests"] == str(n)
        assert answer.headers["x-ratelimit-remaining-requests"] == "0"
        assert answer.headers["x-ratelimit-reset-requests"].endswith("s")
    assert sorted(int(a.headers["x-ratelimit-remaining-requests"]) for a in served) == list(
        range(n)
    )
    # Refused requests never reached the upstream, nor the request log.
    assert len(openai_emulator.requests) == n
    usage_drain()
    assert RequestLog.objects.filter(key_id=issued.key.pk).count() == n


def test_tpm_settles_to_the_real_usage_across_two_workers(
    cluster: Cluster, usage: str, openai_emulator: OpenAIEmulator
) -> None:
    limit = 10_000
    issued = key_create(name="tpm", team=TeamFactory(), tpm_limit=limit)
    max_tokens = 200
    bodies = [
        _body(max_tokens=max_tokens),
        _body(max_tokens=max_tokens, stream=True, stream_options={"include_usage": True}),
        _body(max_tokens=max_tokens),
        _body(max_tokens=max_tokens, stream=True, stream_options={"include_usage": True}),
    ]
    used = 0
    for number, body in enumerate(bodies):
        answer = asyncio.run(_post(cluster.urls[number % 2], issued.secret, body))
        assert answer.status == 200
        # Admission reserved the estimate (a token per 4 bytes of body, plus max_tokens) on top
        # of what earlier requests, on either worker, really used.
        estimate = len(body) // 4 + max_tokens
        assert answer.headers["x-ratelimit-limit-tokens"] == str(limit)
        assert answer.headers["x-ratelimit-remaining-tokens"] == str(limit - used - estimate)
        stream = isinstance(answer.body, list)
        reported = answer.body[-1]["usage"] if stream else answer.body["usage"]
        assert reported["total_tokens"] == (
            openai_emulator.ledger[number].prompt_tokens
            + openai_emulator.ledger[number].completion_tokens
        )
        used += reported["total_tokens"]
    # What the window holds is the real usage, not the estimates.
    key = rule_key(
        tenant=f"o:{issued.key.organization_id}", entity=f"key:{issued.key.pk}", metric="tpm"
    )
    window = redis_client_sync().hgetall(key)
    buckets = {field: int(count) for field, count in window.items() if field.isdigit()}
    assert sum(buckets.values()) == used
    assert int(window[b"t"]) == used  # the running sum the admission reads


def test_refused_at_admission_records_no_usage_and_no_spend(
    cluster: Cluster, usage: str, openai_emulator: OpenAIEmulator
) -> None:
    a, b = cluster.urls
    body = _body(max_tokens=100)
    # Budget: the worst case of 100 output tokens ($0.00006) does not fit in $0.00001.
    poor = key_create(name="poor", team=TeamFactory(), max_budget=Decimal("0.00001"))
    limited = key_create(name="rpm1", team=TeamFactory(), rpm_limit=1)
    answers = {
        "budget": [asyncio.run(_post(url, poor.secret, body)) for url in (a, b)],
        "rate": [asyncio.run(_post(url, limited.secret, body)) for url in (a, b, a)],
        "auth": [asyncio.run(_post(url, "sk-not-a-key", body)) for url in (a, b)],
    }
    assert [x.body["error"]["code"] for x in answers["budget"]] == ["budget_exceeded"] * 2
    assert [x.status for x in answers["rate"]] == [200, 429, 429]
    assert [x.body["error"]["code"] for x in answers["rate"][1:]] == ["rate_limit_exceeded"] * 2
    assert [x.status for x in answers["auth"]] == [401, 401]
    assert len(openai_emulator.requests) == 1  # only the admitted one reached the upstream

    usage_drain()
    logs = list(RequestLog.objects.values_list("request_id", "key_id"))
    assert logs == [(answers["rate"][0].headers["x-request-id"], limited.key.pk)]
    # The refused budget reserved nothing and spent nothing.
    budget = Budget.objects.get(scope=BudgetScope.KEY, key=poor.key)
    counter = redis_client_sync().hgetall(
        budget_counter_key(snapshot=budget_snapshot_from(budget=budget))
    )
    assert {k: int(v) for k, v in counter.items()} in ({}, {b"s": 0}, {b"s": 0, b"r": 0})
    assert budget.spend == Decimal(0)
