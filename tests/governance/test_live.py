"""End to end through the live server and the official SDK: limits, budgets, recorded usage."""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any

import openai
import pytest
from django.test import TestCase

from billing.models import Budget, BudgetScope, RequestLog
from billing.services import usage_drain
from gateway.governance import governance_snapshot_flush
from keys.services import key_create
from tests.factories import TeamFactory
from tests.live import LiveServer, broadcast_listening

MESSAGES = [{"role": "user", "content": "Hello there, how are you today?"}]


def _client(live: LiveServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=secret, max_retries=0)


def test_rpm_limit_admits_exactly_three(live: LiveServer) -> None:
    secret = key_create(name="rpm", team=TeamFactory(), rpm_limit=3).secret
    client = _client(live, secret)
    remaining = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(model="mock-chat", messages=MESSAGES)
        assert raw.http_response.status_code == 200
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="mock-chat", messages=MESSAGES)
    response = refused.value.response
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["x-ratelimit-limit-requests"] == "3"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    assert response.headers["x-ratelimit-reset-requests"].endswith("s")
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")


def test_tiny_budget_is_refused_with_budget_exceeded(live: LiveServer) -> None:
    # mock-chat's worst case without max_tokens is 4096 output tokens at $2/M: over $0.008.
    secret = key_create(name="budget", team=TeamFactory(), max_budget=Decimal("0.001")).secret
    client = _client(live, secret)
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="mock-chat", messages=MESSAGES)
    response = refused.value.response
    assert response.json()["error"]["code"] == "budget_exceeded"
    assert int(response.headers["Retry-After"]) >= 1
    # A request whose worst case fits is served.
    ok = client.chat.completions.create(model="mock-chat", messages=MESSAGES, max_tokens=50)
    assert ok.usage is not None


def test_usage_rows_after_the_drain_match_the_upstream(live: LiveServer) -> None:
    team = TeamFactory()
    issued = key_create(name="usage", team=team)
    client = _client(live, issued.secret)
    plain = client.chat.completions.with_raw_response.create(model="mock-chat", messages=MESSAGES)
    chunks = list(
        client.chat.completions.create(
            model="mock-chat",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
            user="customer-7",
        )
    )
    streamed_usage = chunks[-1].usage
    assert streamed_usage is not None
    assert usage_drain() == 2
    assert usage_drain() == 0
    rows = {row.request_id: row for row in RequestLog.objects.all()}
    assert len(rows) == 2
    first = rows[plain.headers["x-request-id"]]
    usage = plain.parse().usage
    assert (first.prompt_tokens, first.completion_tokens, first.total_tokens) == (
        usage.prompt_tokens,
        usage.completion_tokens,
        usage.total_tokens,
    )
    assert first.cost == (
        Decimal(usage.prompt_tokens) * Decimal("0.000001")
        + Decimal(usage.completion_tokens) * Decimal("0.000002")
    )
    assert (first.key_id, first.team_id, first.organization_id) == (
        issued.key.pk,
        team.pk,
        team.organization_id,
    )
    assert (first.status_code, first.stream, first.provider) == (200, False, "mock")
    second = next(row for row in rows.values() if row.stream)
    assert (second.prompt_tokens, second.completion_tokens) == (
        streamed_usage.prompt_tokens,
        streamed_usage.completion_tokens,
    )
    assert second.end_customer == "customer-7"


async def test_300_concurrent_requests_never_overspend_a_budget(
    live: LiveServer,
    install_deployments,  # type: ignore[no-untyped-def]
) -> None:
    import httpx
    import orjson
    from asgiref.sync import sync_to_async

    from billing.pricing import cost_worst_case, price_table
    from tests.emulators.fixtures import slow_mock

    # A slow upstream keeps every admitted request in flight while the rest arrive. On a loaded
    # machine 300 admissions can outlast it, and a request that settles early rightly frees room
    # for one more: a burst whose last decision came near its first answer is run again, slower
    # (a refusal is decided when it arrives, an answer the upstream's latency before).
    body = orjson.dumps({"model": "slow-mock-chat", "messages": MESSAGES, "max_tokens": 200})
    price = price_table().prices[("mock", "mock-chat")]
    # The gateway bounds a prompt at a token per byte of body.
    worst = cost_worst_case(price=price, prompt_tokens=len(body), max_tokens=200)
    budget = worst * 100
    for latency_ms in (6000, 30000):
        install_deployments(
            slow_mock("slow-mock-chat", latency_ms=latency_ms, upstream_model="mock-chat")
        )
        issued = await sync_to_async(key_create)(name="c300", team=None, max_budget=budget)
        headers = {"Authorization": f"Bearer {issued.secret}", "Content-Type": "application/json"}
        arrived = await _burst(live, body=body, headers=headers, count=300)
        first_answer = min((at for at, r in arrived if r.status_code == 200), default=math.inf)
        wait = latency_ms / 1000
        decided = max(at - wait if r.status_code == 200 else at for at, r in arrived)
        if decided < first_answer - 0.5:
            break
    responses = [response for _, response in arrived]
    statuses = [r.status_code for r in responses]
    refused = [r.json()["error"]["code"] for r in responses if r.status_code == 429]
    assert set(statuses) <= {200, 429}
    assert set(refused) <= {"budget_exceeded"}
    # The worst case of 100 requests always fits; the other 200 found no unreserved room.
    assert statuses.count(200) == 100
    assert len(refused) == 200
    await sync_to_async(usage_drain)()
    logs = RequestLog.objects.filter(key_id=issued.key.pk)
    spent = sum([row.cost async for row in logs], Decimal(0))
    assert await logs.acount() == 100
    assert 0 < spent <= budget
    # Settled at real usage, the room comes back: the next request is served.
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
        again = await client.post("/v1/chat/completions", content=body, headers=headers)
    assert again.status_code == 200


async def _burst(
    live: LiveServer, *, body: bytes, headers: dict[str, str], count: int
) -> list[tuple[float, Any]]:
    """`count` chat completions at once: each response with the moment it arrived."""
    import asyncio

    import httpx

    arrived: list[tuple[float, httpx.Response]] = []
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)

    async def ask(client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/chat/completions", content=body, headers=headers)
        arrived.append((time.monotonic(), response))

    async with httpx.AsyncClient(base_url=live.url, limits=limits, timeout=90) as client:
        await asyncio.gather(*(ask(client) for _ in range(count)))
    return arrived


def _limits_set(live: LiveServer, master_key: str, body: dict) -> None:
    import httpx

    response = httpx.post(
        f"{live.url}/api/v1/budgets",
        json=body,
        headers={"Authorization": f"Bearer {master_key}"},
    )
    assert response.status_code in (200, 201), response.text
    assert response.json()["rpm_limit"] == body["rpm_limit"]


def test_a_team_rate_limit_set_through_the_api_holds_across_its_keys(
    live: LiveServer, master_key: str
) -> None:
    team = TeamFactory()
    first = _client(live, key_create(name="one", team=team).secret)
    second = _client(live, key_create(name="two", team=team).secret)
    _limits_set(live, master_key, {"scope": "team", "team": team.pk, "rpm_limit": 2})
    governance_snapshot_flush()  # the live server shares this process: no wait for the TTL
    assert first.chat.completions.create(model="mock-chat", messages=MESSAGES).usage
    assert second.chat.completions.create(model="mock-chat", messages=MESSAGES).usage
    for client in (first, second):
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="mock-chat", messages=MESSAGES)
        assert "team: 2 requests per minute" in refused.value.response.json()["error"]["message"]


@pytest.mark.parametrize(("on_key", "on_budget", "admitted"), [(5, 3, 3), (3, 5, 3)])
def test_a_key_limited_twice_counts_each_request_once_at_the_stricter_limit(
    live: LiveServer, master_key: str, on_key: int, on_budget: int, admitted: int
) -> None:
    issued = key_create(name="twice", team=TeamFactory(), rpm_limit=on_key)
    _limits_set(live, master_key, {"scope": "key", "key": issued.key.pk, "rpm_limit": on_budget})
    governance_snapshot_flush()
    client = _client(live, issued.secret)
    for _ in range(admitted):
        raw = client.chat.completions.with_raw_response.create(model="mock-chat", messages=MESSAGES)
        assert raw.headers["x-ratelimit-limit-requests"] == str(admitted)
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="mock-chat", messages=MESSAGES)


def test_a_budget_change_in_another_process_reaches_this_worker_at_once(
    live: LiveServer, settings
) -> None:
    import orjson
    import redis

    from ogem_site.broadcast import GOVERNANCE, broadcast_channel

    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set (the broadcast goes through Redis pub/sub)")
    team = TeamFactory()
    client = _client(live, key_create(name="lim", team=team).secret)
    assert client.chat.completions.create(model="mock-chat", messages=MESSAGES).usage
    broadcast_listening()  # the listener starts with the first request
    # Another process (admin, API, Celery beat) limits the team: a bare UPDATE here, so only the
    # broadcast can make this worker drop the snapshot it holds for the next 10 s.
    Budget.objects.create(scope=BudgetScope.TEAM, team=team, rpm_limit=1)
    assert client.chat.completions.create(model="mock-chat", messages=MESSAGES).usage
    sync = redis.Redis.from_url(settings.REDIS_URL)
    try:
        sync.publish(broadcast_channel(), orjson.dumps({"topic": GOVERNANCE}))
    finally:
        sync.close()
    deadline = time.monotonic() + 1.0
    while True:
        try:
            client.chat.completions.create(model="mock-chat", messages=MESSAGES)
        except openai.RateLimitError:
            break
        assert time.monotonic() < deadline, "the broadcast did not arrive within 1 s"
        time.sleep(0.02)


def test_budget_services_broadcast_the_change(settings, db) -> None:  # type: ignore[no-untyped-def]
    import orjson
    import redis

    from billing.services import EntityLimits, budget_upsert
    from ogem_site.broadcast import GOVERNANCE, broadcast_channel

    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set")
    listener = redis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    listener.subscribe(broadcast_channel())
    try:
        listener.get_message(timeout=1.0)  # the subscription confirmation
        with TestCase.captureOnCommitCallbacks(execute=True):
            budget = budget_upsert(
                scope=BudgetScope.TEAM,
                target=TeamFactory(),
                max_budget=Decimal("5"),
                limits=EntityLimits(rpm_limit=7, max_parallel_requests=2),
            )
        message = listener.get_message(timeout=2.0)
        again = listener.get_message(timeout=0.5)
    finally:
        listener.close()
    assert message is not None and orjson.loads(message["data"]) == {"topic": GOVERNANCE}
    assert again is None  # budget and limits in one save, one broadcast
    budget.refresh_from_db()
    assert (budget.rpm_limit, budget.tpm_limit, budget.max_parallel_requests) == (7, None, 2)
