"""Budget reservations: concurrency can never overspend, and nothing is refused needlessly."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from billing.counters import budget_counter_key, budget_key
from billing.models import Budget, BudgetMode, BudgetScope
from billing.services import budget_periods_reset, budget_upsert
from gateway.context import Caller, RequestContext, Usage
from gateway.errors import BudgetExceededError, GatewayError, RateLimitError
from gateway.governance import (
    Reservation,
    admission_confirm,
    governance_admit,
    governance_admit_start,
    governance_settle,
    governance_snapshot_flush,
)
from gateway.limits import Rule, Settlement, limiter
from ogem_site.redis import redis_client_sync
from providers.base import Endpoint
from tests.factories import OrganizationFactory, TeamFactory

WORST = 1_000  # cost units (1e-8 USD) one request may spend at most


async def test_300_concurrent_requests_never_overspend(backend: str, tenant: str) -> None:
    key = budget_key(tenant=tenant, scope="key", target_id=1, period=0)
    limit = 100 * WORST
    rng = random.Random(5)
    admitted = 0
    refusals: list[int] = []

    async def request(i: int) -> None:
        nonlocal admitted
        rule = Rule("b", key, limit, WORST, "key:budget")
        await asyncio.sleep(rng.random() * 0.05)
        decision = await limiter().admit([rule], now_ms=int(time.time() * 1000), request_id=f"r{i}")
        if not decision.allowed:
            # Refused only because the unreserved budget could not cover the worst case.
            refusals.append(decision.available[0])
            return
        admitted += 1
        await asyncio.sleep(rng.random() * 0.02)
        actual = rng.randint(WORST // 4, WORST)
        await limiter().settle(
            [Settlement(rule, actual)], request_id=f"r{i}", bucket=decision.bucket, event=b""
        )

    await asyncio.gather(*(request(i) for i in range(300)))
    spent, reserved = await _counters(backend, key)
    assert reserved == 0
    assert spent <= limit
    assert admitted + len(refusals) == 300
    assert admitted >= 100  # the worst case of 100 always fits; real costs are lower
    assert all(available < WORST for available in refusals)
    assert refusals  # the burst really pressed on the budget


async def test_failed_request_releases_its_reservation(backend: str, tenant: str) -> None:
    key = budget_key(tenant=tenant, scope="team", target_id=1, period=0)
    rule = Rule("b", key, 2 * WORST, WORST, "team:budget", seed=500)
    now = int(time.time() * 1000)
    first = await limiter().admit([rule], now_ms=now, request_id="a")
    assert first.allowed and first.available[0] == 2 * WORST - 500
    assert not (await limiter().admit([rule], now_ms=now, request_id="b")).allowed
    await limiter().settle([Settlement(rule, 0)], request_id="a", bucket=first.bucket, event=b"")
    assert await _counters(backend, key) == (500, 0)
    assert (await limiter().admit([rule], now_ms=now, request_id="c")).allowed


async def test_reservation_of_a_crashed_worker_is_released_once(
    backend: str, tenant: str, settings
) -> None:
    if backend != "redis":
        pytest.skip("one process: a crash takes its in-process store with it")
    key = budget_key(tenant=tenant, scope="key", target_id=1, period=0)
    rule = Rule("b", key, 2 * WORST, WORST, "key:budget")
    now = int(time.time() * 1000)
    stale = settings.OGEM_PARALLEL_SLOT_TTL * 1000
    # "dead" is admitted by a worker that is then SIGKILLed: it never settles.
    dead = await limiter().admit([rule], now_ms=now, request_id="dead")
    live = await limiter().admit([rule], now_ms=now + stale // 2, request_id="live")
    assert live.allowed
    # Until the slot lifetime has passed, the dead request's reservation holds its room.
    assert not (await limiter().admit([rule], now_ms=now + stale, request_id="early")).allowed
    later = await limiter().admit([rule], now_ms=now + stale + 1, request_id="later")
    assert later.allowed
    assert await _counters(backend, key) == (0, 2 * WORST)  # "live" and "later"
    # A settle that still comes (a very long request) adds its spend but releases nothing twice.
    await limiter().settle(
        [Settlement(rule, 300)], request_id="dead", bucket=dead.bucket, event=b""
    )
    assert await _counters(backend, key) == (300, 2 * WORST)
    await limiter().settle(
        [Settlement(rule, 200)], request_id="live", bucket=live.bucket, event=b""
    )
    assert await _counters(backend, key) == (500, WORST)


async def test_audit_mode_reports_but_admits(backend: str, tenant: str) -> None:
    key = budget_key(tenant=tenant, scope="key", target_id=2, period=0)
    rule = Rule("b", key, WORST, WORST, "key:budget", audit=True, seed=WORST)
    decision = await limiter().admit([rule], now_ms=int(time.time() * 1000), request_id="a")
    assert decision.allowed
    assert decision.audit_exceeded == [0]


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_a_counter_redis_lost_is_seeded_again_not_recreated_by_a_settle(
    backend: str, tenant: str
) -> None:
    key = budget_key(tenant=tenant, scope="key", target_id=3, period=0)
    rule = Rule("b", key, 10 * WORST, WORST, "key:budget", seed=4 * WORST, ttl_ms=60_000)
    first = await limiter().admit([rule], now_ms=int(time.time() * 1000), request_id="a")
    assert first.allowed
    client = redis_client_sync()
    assert 0 < client.pttl(key) <= 60_000 + 7 * 24 * 3600 * 1000  # the period and a grace
    client.delete(key)  # Redis restarted without its data while "a" was in flight
    await limiter().settle([Settlement(rule, 300)], request_id="a", bucket=first.bucket, event=b"")
    # A settle alone would start the counter at 300 and hide the 4 * WORST already spent.
    assert not client.exists(key)
    second = await limiter().admit([rule], now_ms=int(time.time() * 1000), request_id="b")
    assert second.allowed
    assert await _counters(backend, key) == (4 * WORST, WORST)


async def _counters(backend: str, key: str) -> tuple[int, int]:
    if backend == "redis":
        raw = redis_client_sync().hgetall(key)
        return int(raw.get(b"s", 0)), int(raw.get(b"r", 0))
    from gateway.limits import local_limiter

    counters = local_limiter.budget_counters(key)
    return counters.get("s", 0), counters.get("r", 0)


# ---- through the governance hooks, with Budget rows --------------------------------------------


def _ctx(*, caller: Caller, request_id: str, max_tokens: int = 100) -> RequestContext:
    return RequestContext(
        request_id=request_id,
        endpoint=Endpoint.CHAT,
        caller=caller,
        model="mock-chat",
        max_tokens=max_tokens,
        prompt_tokens_bound=10,
    )


@pytest.mark.django_db(transaction=True)
async def test_team_budget_refuses_with_budget_exceeded(backend: str) -> None:
    from asgiref.sync import sync_to_async

    team = await sync_to_async(TeamFactory)()
    # mock-chat: $1/M in, $2/M out. Worst case of one request: 10 * 1e-6 + 100 * 2e-6 = $0.00021.
    await sync_to_async(budget_upsert)(
        scope=BudgetScope.TEAM, target=team, max_budget=Decimal("0.00042"), duration="1d"
    )
    governance_snapshot_flush()
    caller = Caller(key_id=99, organization_id=team.organization_id, team_id=team.pk)
    admissions = []
    for i in range(2):
        ctx = _ctx(caller=caller, request_id=f"ok{i}")
        admissions.append((ctx, await governance_admit(ctx)))
    with pytest.raises(BudgetExceededError) as refused:
        await governance_admit(_ctx(caller=caller, request_id="over"))
    assert refused.value.status == 429
    assert refused.value.code == "budget_exceeded"
    assert 86000 <= int(refused.value.headers["Retry-After"]) <= 86400
    # The first request settles at 10 in / 20 out ($0.00005): $0.00016 is free again, enough
    # for a request of at most 50 output tokens ($0.00011) but not for another $0.00021.
    ctx, admission = admissions[0]
    ctx.usage = Usage(prompt_tokens=10, completion_tokens=20, total_tokens=30)
    await governance_settle(ctx, admission)
    await governance_settle(ctx, admission)  # a second call is a no-op
    assert isinstance(admission.reservation, Reservation)
    with pytest.raises(BudgetExceededError):
        await governance_admit(_ctx(caller=caller, request_id="still-over"))
    await governance_admit(_ctx(caller=caller, request_id="smaller", max_tokens=50))
    budget = await Budget.objects.aget(team=team)
    snapshot_key = await sync_to_async(_counter_key)(budget)
    spent, reserved = await _counters(backend, snapshot_key)
    assert spent == 5_000
    assert reserved == 21_000 + 11_000


def _counter_key(budget: Budget) -> str:
    from billing.selectors import budget_snapshot_from

    return budget_counter_key(snapshot=budget_snapshot_from(budget=budget))


@pytest.mark.django_db(transaction=True)
async def test_audit_budget_admits_and_spend_is_persisted(backend: str) -> None:
    from asgiref.sync import sync_to_async

    org = await sync_to_async(OrganizationFactory)()
    await sync_to_async(budget_upsert)(
        scope=BudgetScope.ORGANIZATION,
        target=org,
        max_budget=Decimal("0.0001"),
        mode=BudgetMode.AUDIT,
    )
    governance_snapshot_flush()
    caller = Caller(key_id=7, organization_id=org.pk)
    ctx = _ctx(caller=caller, request_id="audit-1", max_tokens=1000)
    admission = await governance_admit(ctx)
    ctx.usage = Usage(prompt_tokens=10, completion_tokens=200, total_tokens=210)
    await governance_settle(ctx, admission)
    assert await sync_to_async(budget_periods_reset)() == 0
    budget = await Budget.objects.aget(organization=org)
    assert budget.spend == Decimal("0.00041000")


@pytest.mark.django_db(transaction=True)
async def test_budget_period_reset_starts_a_new_counter(backend: str) -> None:
    from asgiref.sync import sync_to_async
    from django.utils import timezone

    org = await sync_to_async(OrganizationFactory)()
    budget = await sync_to_async(budget_upsert)(
        scope=BudgetScope.ORGANIZATION, target=org, max_budget=Decimal("1"), duration="1d"
    )
    governance_snapshot_flush()
    ctx = _ctx(caller=Caller(key_id=8, organization_id=org.pk), request_id="p-1")
    admission = await governance_admit(ctx)
    ctx.usage = Usage(prompt_tokens=1000, completion_tokens=0, total_tokens=1000)
    await governance_settle(ctx, admission)
    await Budget.objects.filter(pk=budget.pk).aupdate(reset_at=timezone.now())
    assert await sync_to_async(budget_periods_reset)() == 1
    budget = await Budget.objects.aget(pk=budget.pk)
    assert budget.spend == Decimal("0")
    assert budget.reset_at > timezone.now()
    ctx = _ctx(caller=Caller(key_id=8, organization_id=org.pk), request_id="p-2")
    await governance_settle(ctx, await governance_admit(ctx))
    key = await sync_to_async(_counter_key)(budget)
    assert await _counters(backend, key) == (0, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("backend", ["local"], indirect=True)
async def test_embedded_default_resets_ended_periods_itself(backend: str) -> None:
    from django.utils import timezone

    org = await sync_to_async(OrganizationFactory)()
    budget = await sync_to_async(budget_upsert)(
        scope=BudgetScope.ORGANIZATION, target=org, max_budget=Decimal("1"), duration="1d"
    )
    await Budget.objects.filter(pk=budget.pk).aupdate(reset_at=timezone.now(), spend=Decimal("0.5"))
    governance_snapshot_flush()
    from gateway import governance

    loop = asyncio.get_running_loop()
    for attempt in range(20):  # the reset runs in the background of a request, once per loop
        ctx = _ctx(caller=Caller(key_id=9, organization_id=org.pk), request_id=f"lazy-{attempt}")
        await governance_settle(ctx, await governance_admit(ctx))
        await asyncio.gather(*(t for t in governance._period_tasks if t.get_loop() is loop))
        budget = await Budget.objects.aget(pk=budget.pk)
        if budget.spend == Decimal("0"):
            break
        await asyncio.sleep(0.05)
    assert budget.spend == Decimal("0")
    assert budget.reset_at > timezone.now()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("policy", ["closed", "open"])
async def test_an_unreachable_store_follows_the_failure_policy(settings, policy: str) -> None:
    from gateway.limits import outage_limiter
    from ogem_site.redis import redis_clients_forget, redis_outage

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.OGEM_REDIS_FAILURE_POLICY = policy
    redis_clients_forget()
    outage_limiter.reset()
    caller = Caller(key_id=10, organization_id=None, rpm_limit=5)
    try:
        if policy == "open":
            # Counted by this process alone while Redis is away: the limit still holds.
            for number in range(5):
                ctx = _ctx(caller=caller, request_id=f"down-{number}")
                admission = await governance_admit(ctx)
                assert admission.headers["x-ratelimit-remaining-requests"] == str(4 - number)
                assert isinstance(admission.reservation, Reservation)
                assert admission.reservation.local
            with pytest.raises(RateLimitError):
                await governance_admit(_ctx(caller=caller, request_id="down-5"))
        else:
            with pytest.raises(GatewayError) as refused:
                await governance_admit(_ctx(caller=caller, request_id="down"))
            assert (refused.value.status, refused.value.code) == (503, "governance_unavailable")
            assert "Redis is unavailable" in refused.value.message
            assert refused.value.headers["Retry-After"] == "1"
        assert redis_outage.down  # the next requests go straight to the fallback
    finally:
        redis_clients_forget()
        outage_limiter.reset()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("confirmation", ["never started", "cancelled midway"])
async def test_a_request_ended_before_its_admission_was_confirmed_is_settled(
    backend: str, confirmation: str
) -> None:
    # With Redis the router confirms the admission only once it has chosen a deployment; a
    # request that ends before that (the client left, routing failed), or while the reply is on
    # its way, must still settle, or its parallel slot and reservations would stay taken.
    caller = Caller(key_id=random.randint(10**8, 10**9), max_parallel_requests=1)
    warm = _ctx(caller=caller, request_id=f"warm-{caller.key_id}")
    await governance_settle(warm, await governance_admit(warm))  # Redis connected
    first = _ctx(caller=caller, request_id=f"first-{caller.key_id}")
    admission = await governance_admit_start(first)
    assert (admission.pending is not None) == (backend == "redis")
    if confirmation == "cancelled midway":
        waiter = asyncio.ensure_future(admission_confirm(first, admission))
        await asyncio.sleep(0)  # waiting for Redis's reply
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    await governance_settle(first, admission)
    assert admission.pending is None
    assert isinstance(admission.reservation, Reservation)
    second = _ctx(caller=caller, request_id=f"second-{caller.key_id}")
    held = await governance_admit(second)  # the slot was given back
    with pytest.raises(RateLimitError):
        await governance_admit(_ctx(caller=caller, request_id=f"third-{caller.key_id}"))
    await governance_settle(second, held)
