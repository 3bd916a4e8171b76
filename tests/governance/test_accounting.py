"""Usage recording exactly once: settle emits one event, the drain writes it once."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from billing.models import RequestLog
from billing.services import usage_drain, usage_events_record
from billing.usage import (
    USAGE_GROUP,
    usage_buffer_size,
    usage_event_encode,
    usage_stream_key,
)
from gateway.context import Caller, RequestContext, Usage
from gateway.governance import governance_admit, governance_settle
from ogem_site.redis import redis_client_sync
from providers.base import Deployment, Endpoint

pytestmark = pytest.mark.django_db(transaction=True)


def _event(request_id: str, **extra: object) -> dict[str, object]:
    return {
        "request_id": request_id,
        "ts": 1_790_000_000.5,
        "organization_id": 1,
        "team_id": 2,
        "key_id": 3,
        "user_id": None,
        "end_customer": "cust-9",
        "endpoint": "chat/completions",
        "model": "mock-chat",
        "provider": "mock",
        "deployment": "config:mock-chat:0",
        "status_code": 200,
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "total_tokens": 18,
        "cost": "0.00002500",
        "latency_ms": 12,
        "stream": True,
        "cancelled": False,
        "tags": ["a"],
        **extra,
    }


def test_same_events_twice_give_the_same_rows() -> None:
    events = [_event(f"req-{i}") for i in range(5)]
    assert usage_events_record(events=events) == 5
    assert usage_events_record(events=[*events, events[0]]) == 5
    assert RequestLog.objects.count() == 5
    row = RequestLog.objects.get(request_id="req-3")
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (11, 7, 18)
    assert row.cost == Decimal("0.000025")
    assert (row.stream, row.cancelled, row.end_customer, row.tags) == (True, False, "cust-9", ["a"])
    assert row.created_at.timestamp() == 1_790_000_000.5


async def test_settle_emits_one_event_that_the_drain_records(backend: str) -> None:
    ctx = RequestContext(
        request_id="settle-1",
        endpoint=Endpoint.CHAT,
        caller=Caller(key_id=41, organization_id=5, team_id=6, user_id=7, tags=("t1",)),
        model="mock-chat",
        stream=True,
        end_customer="acme",
        tags=["t0"],
    )
    admission = await governance_admit(ctx)
    ctx.deployment = Deployment(
        id="config:mock-chat:0", model_name="mock-chat", provider="mock", upstream_model="mock-chat"
    )
    ctx.usage = Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500)
    ctx.cancelled = True
    await governance_settle(ctx, admission)
    await governance_settle(ctx, admission)
    assert await sync_to_async(usage_drain)() == 1
    assert await sync_to_async(usage_drain)() == 0
    row = await RequestLog.objects.aget(request_id="settle-1")
    assert (row.organization_id, row.team_id, row.key_id, row.user_id) == (5, 6, 41, 7)
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (1000, 500, 1500)
    # mock-chat: $1/M input, $2/M output.
    assert row.cost == Decimal("0.002")
    assert (row.provider, row.deployment, row.model) == ("mock", "config:mock-chat:0", "mock-chat")
    assert (row.stream, row.cancelled, row.end_customer) == (True, True, "acme")
    assert row.tags == ["t0", "t1"]
    assert await RequestLog.objects.acount() == 1


def test_drain_writes_the_buffer_in_batches(backend: str) -> None:
    if backend == "redis":
        client = redis_client_sync()
        for i in range(7):
            client.xadd(usage_stream_key(), {"e": usage_event_encode(_event(f"b-{i}"))})
    else:
        from billing.usage import usage_buffer_append

        for i in range(7):
            usage_buffer_append(usage_event_encode(_event(f"b-{i}")))
    assert usage_drain(batch_size=3) == 7
    assert RequestLog.objects.count() == 7
    assert usage_buffer_size() == 0


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_entries_of_a_dead_consumer_are_claimed(backend: str, usage_stream: str) -> None:
    client = redis_client_sync()
    for i in range(4):
        client.xadd(usage_stream, {"e": usage_event_encode(_event(f"d-{i}"))})
    client.xgroup_create(usage_stream, USAGE_GROUP, id="0")
    # A drain read them, wrote two rows, and died before acknowledging anything.
    read = client.xreadgroup(USAGE_GROUP, "dead-worker", {usage_stream: ">"}, count=10)
    assert len(read[0][1]) == 4
    usage_events_record(events=[_event("d-0"), _event("d-1")])
    # Not idle long enough yet: another drain leaves them alone.
    assert usage_drain(consumer="live", claim_idle_ms=60_000) == 0
    assert client.xpending(usage_stream, USAGE_GROUP)["pending"] == 4
    time.sleep(0.05)
    assert usage_drain(consumer="live", claim_idle_ms=10) == 4
    assert client.xpending(usage_stream, USAGE_GROUP)["pending"] == 0
    assert client.xlen(usage_stream) == 0
    assert sorted(RequestLog.objects.values_list("request_id", flat=True)) == [
        "d-0",
        "d-1",
        "d-2",
        "d-3",
    ]


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
@pytest.mark.parametrize(("maxlen", "kept"), [(0, 250), (100, range(100, 250))])
async def test_the_usage_stream_is_trimmed_only_under_a_configured_cap(
    backend: str, usage_stream: str, settings, maxlen: int, kept: object
) -> None:
    from gateway.limits import limiter

    # By default nothing undrained is ever dropped: the drain deletes what it has written.
    settings.OGEM_USAGE_STREAM_MAXLEN = maxlen
    for number in range(250):
        event = usage_event_encode(_event(f"trim-{number}"))
        await limiter().settle([], request_id=f"trim-{number}", bucket=0, event=event)
    length = redis_client_sync().xlen(usage_stream)
    assert length == kept if isinstance(kept, int) else length in kept


def test_the_metrics_show_the_undrained_usage(live_ogem, settings) -> None:
    import httpx

    if not settings.REDIS_URL:
        pytest.skip("REDIS_URL is not set")
    settings.OGEM_USAGE_STREAM = f"test-usage:{time.time_ns()}"
    stream = usage_stream_key()
    client = redis_client_sync()
    try:
        for number in range(7):
            client.xadd(stream, {"e": usage_event_encode(_event(f"backlog-{number}"))})
        text = httpx.get(f"{live_ogem.url}/metrics").text
    finally:
        client.delete(stream)
    assert "\nogem_usage_stream_backlog 7\n" in text
