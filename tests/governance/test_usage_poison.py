"""A usage event the database refuses (or nobody can read) never blocks the drain: it goes to the
dead-letter stream, the rest of its batch is recorded, and no later drain retries it."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from prometheus_client import REGISTRY

from billing.models import RequestLog
from billing.services import usage_drain
from billing.usage import (
    usage_buffer_append,
    usage_buffer_size,
    usage_dead_stream,
    usage_event_decode,
    usage_event_encode,
    usage_stream_key,
)
from gateway.limits import limiter
from ogem_site.redis import redis_client_sync
from tests.governance.test_accounting import _event

pytestmark = pytest.mark.django_db(transaction=True)

# What af9939d's mock answered to `"n": -1`, and what the drain then failed on for good.
NEGATIVE = _event("poison-negative", completion_tokens=-5, total_tokens=6)
# Too big for the database's integer columns.
HUGE = _event("poison-huge", prompt_tokens=2**40, total_tokens=2**40 + 7)


def _dead_letters() -> float:
    return REGISTRY.get_sample_value("ogem_usage_dead_letters_total") or 0.0


async def _emit(backend: str, payload: bytes, request_id: str) -> None:
    """As the gateway emits a usage event: in the settle script (Redis), else into the buffer."""
    if backend == "redis":
        await limiter().settle([], request_id=request_id, bucket=0, event=payload)
    else:
        usage_buffer_append(payload)


async def test_poison_events_go_to_the_dead_letters_and_the_good_ones_are_recorded(
    backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    poison = {
        "poison-negative": usage_event_encode(NEGATIVE),
        "poison-huge": usage_event_encode(HUGE),
        "poison-unreadable": b'{"request_id": "poison-unreadable", "ts":',
    }
    sequence = [
        ("good-1", usage_event_encode(_event("good-1"))),
        ("poison-negative", poison["poison-negative"]),
        ("good-2", usage_event_encode(_event("good-2", prompt_tokens=40, total_tokens=47))),
        ("poison-unreadable", poison["poison-unreadable"]),
        ("poison-huge", poison["poison-huge"]),
        ("good-3", usage_event_encode(_event("good-3", cost="0.00100000"))),
    ]
    for request_id, payload in sequence:
        await _emit(backend, payload, request_id)
    before = _dead_letters()
    with caplog.at_level(logging.ERROR, logger="billing.services"):
        assert await sync_to_async(usage_drain)() == 3

    rows = {row.request_id: row async for row in RequestLog.objects.all()}
    assert sorted(rows) == ["good-1", "good-2", "good-3"]
    assert (rows["good-1"].prompt_tokens, rows["good-1"].completion_tokens) == (11, 7)
    assert (rows["good-2"].prompt_tokens, rows["good-2"].total_tokens) == (40, 47)
    assert rows["good-3"].cost == Decimal("0.001")
    assert rows["good-1"].cost == Decimal("0.000025")
    # Each poison event is counted for the alert and logged at ERROR with its payload.
    assert _dead_letters() - before == 3
    # billing.services' only: asyncio logs at ERROR when it collects a client an earlier test
    # left unclosed, which may happen meanwhile.
    errors = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.ERROR and r.name == "billing.services"
    ]
    assert len(errors) == 3
    for request_id in poison:
        assert sum(request_id in message for message in errors) == 1

    if backend == "redis":
        client = redis_client_sync()
        dead = client.xrange(usage_dead_stream())
        assert [fields[b"e"] for _, fields in dead] == [
            poison["poison-negative"],
            poison["poison-unreadable"],
            poison["poison-huge"],
        ]
        reasons = [fields[b"error"].decode() for _, fields in dead]
        assert reasons[0].startswith("refused by the database")
        assert reasons[1].startswith("unreadable")
        assert usage_event_decode(dead[2][1][b"e"])["prompt_tokens"] == 2**40
        assert client.xlen(usage_stream_key()) == 0
    else:
        assert usage_buffer_size() == 0

    # The next drains find nothing to retry, and record the next good event at once.
    assert await sync_to_async(usage_drain)() == 0
    await _emit(backend, usage_event_encode(_event("good-4")), "good-4")
    assert await sync_to_async(usage_drain)() == 1
    assert await RequestLog.objects.acount() == 4
    assert _dead_letters() - before == 3
    if backend == "redis":
        assert redis_client_sync().xlen(usage_dead_stream()) == 3
        redis_client_sync().delete(usage_dead_stream())


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
def test_the_metrics_show_the_dead_letters(backend: str, live_ogem) -> None:  # type: ignore[no-untyped-def]
    import httpx

    client = redis_client_sync()
    try:
        for number in range(2):
            client.xadd(usage_dead_stream(), {"e": b"{}", "error": "unreadable", "id": str(number)})
        text = httpx.get(f"{live_ogem.url}/metrics").text
    finally:
        client.delete(usage_dead_stream())
    assert "\nogem_usage_dead_letter_backlog 2\n" in text
