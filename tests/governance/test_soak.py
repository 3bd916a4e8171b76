"""The issue's exactly-once soak: 5,000 requests, a web worker and a Celery worker SIGKILLed.

Two web worker processes (the uvicorn command of `make run`, one process each) share PostgreSQL
and Redis in front of the OpenAI emulator, whose ledger records the usage it reported for every
request. 5,000 chat completions go out 50 at a time over both workers; every tenth is a stream
the client abandons after its first chunk. Half-way, one web worker is SIGKILLed: the requests in
flight on it fail at the client. Then a real Celery worker drains the usage stream and is
SIGKILLed while it writes; another one finishes.

The accounting rule (docs/governance.md): a request is recorded when the gateway settled it
(one XADD, in the same Lua script as its budget and limits). A request whose worker died before
settling is not recorded (its usage was never known to Ogem), so the comparison runs over the
settled set S, which must include every request the client got an answer from on either worker
and every abandoned stream on the surviving worker. When the client leaves, the gateway cancels
the upstream and records the last usage the upstream reported: the streams ask for vLLM's
`continuous_usage_stats` (usage so far in every chunk), and the emulator holds each stream after
its first content chunk until the gateway has gone, so that report is known exactly.

Asserted: S was emitted once per request; RequestLog has exactly one row per id in S and no
other; its tokens equal the emulator's ledger for those ids; the key's live budget spend, the
persisted Budget.spend and the sum of RequestLog.cost are the same amount, the ledger's tokens
at the model's price. Needs real PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum

from billing.counters import budget_counter_key
from billing.models import Budget, BudgetScope, RequestLog
from billing.selectors import budget_snapshot_from
from billing.services import budget_live_spend, budget_periods_reset
from billing.usage import USAGE_GROUP, usage_event_decode
from keys.services import key_create
from ogem_site.redis import redis_client_sync
from tests.emulators.openai_api import OpenAIEmulator, Reported
from tests.factories import TeamFactory
from tests.governance.cluster import (
    MODEL,
    Process,
    celery_worker_start,
    cluster_env,
    governance_counters_clear,
    web_worker_start,
)
from tests.live import wait_for

REQUESTS = 5000
CONCURRENCY = 50
KILL_WEB_AFTER = REQUESTS // 2  # finished requests before the SIGKILL of web worker "b"
DRAIN_BATCH = 50
# gpt-4o-mini in billing/prices/prices.yaml, USD per token.
INPUT_PRICE = Decimal("0.15") / 1_000_000
OUTPUT_PRICE = Decimal("0.60") / 1_000_000

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Tasks go to the real worker through the broker; the test settings' eager mode is moot.
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
    pytest.mark.skipif(
        connection.vendor != "postgresql" or not os.environ.get("REDIS_URL"),
        reason="needs PostgreSQL and Redis",
    ),
]


@dataclass
class Outcome:
    request_id: str
    worker: str
    stream: bool
    answered: bool  # non-stream: the whole answer; stream: its first chunk, then abandoned
    error: str = ""


def _content(request_id: str, number: int) -> str:
    # Prompts (and the emulator's echoed replies) of varied length, streams' long enough to be
    # abandoned mid-way; the id comes first so the emulator's ledger can be matched to it.
    words = 3 + number % 37 + (30 if number % 10 == 0 else 0)
    return " ".join([request_id, *(f"w{j}" for j in range(words))])


async def _one(
    session: aiohttp.ClientSession,
    *,
    url: str,
    worker: str,
    secret: str,
    request_id: str,
    number: int,
) -> Outcome:
    stream = number % 10 == 0
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": _content(request_id, number)}],
        "max_tokens": 100,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"continuous_usage_stats": True}
    headers = {"Authorization": f"Bearer {secret}", "x-request-id": request_id}
    outcome = Outcome(request_id=request_id, worker=worker, stream=stream, answered=False)
    try:
        async with session.post(f"{url}/v1/chat/completions", json=body, headers=headers) as resp:
            if resp.status != 200:
                outcome.error = f"HTTP {resp.status}: {await resp.text()}"
                return outcome
            if not stream:
                payload = await resp.json()
                outcome.answered = payload["usage"]["total_tokens"] > 0
                return outcome
            async for line in resp.content:
                if line.startswith(b"data: {") and b'"content":"Emulated' in line:
                    outcome.answered = True
                    resp.close()  # abandon the stream mid-way: the connection is dropped
                    return outcome
            outcome.error = "the stream ended before the client could abandon it"
    except (aiohttp.ClientError, TimeoutError) as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    return outcome


async def _drive(*, web: dict[str, Process], secret: str, run: str) -> list[Outcome]:
    """Send REQUESTS requests, CONCURRENCY at a time, alternating between the live workers;
    SIGKILL worker "b" once KILL_WEB_AFTER requests have been answered."""
    routes = ["a", "b"]
    numbers = iter(range(REQUESTS))
    outcomes: list[Outcome] = []
    connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2)
    timeout = aiohttp.ClientTimeout(total=60)

    async def client(session: aiohttp.ClientSession) -> None:
        for number in numbers:
            worker = routes[number % len(routes)]
            outcome = await _one(
                session,
                url=web[worker].url,
                worker=worker,
                secret=secret,
                request_id=f"{run}-{number}",
                number=number,
            )
            outcomes.append(outcome)
            if len(outcomes) == KILL_WEB_AFTER:
                routes.remove("b")  # no new request goes to "b"; those in flight on it fail
                web["b"].kill()

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(CONCURRENCY)))
    return outcomes


def _stream_events(stream: str) -> list[dict[str, Any]]:
    return [usage_event_decode(fields[b"e"]) for _, fields in redis_client_sync().xrange(stream)]


def _ledger_by_id(emulator: OpenAIEmulator) -> dict[str, list[Reported]]:
    entries: dict[str, list[Reported]] = {}
    for entry in emulator.ledger:
        request_id = entry.recorded.json["messages"][-1]["content"].split()[0]
        entries.setdefault(request_id, []).append(entry)
    return entries


def test_soak_records_every_settled_request_exactly_once(
    openai_emulator: OpenAIEmulator, usage_stream: str, tmp_path
) -> None:
    run = f"soak{uuid.uuid4().hex[:8]}"
    client = redis_client_sync()
    governance_counters_clear()
    # Each stream waits after its role and first content chunks until the gateway cancels it.
    openai_emulator.stream_hold_after = 2
    team = TeamFactory()
    issued = key_create(
        name="soak",
        team=team,
        max_budget=Decimal("1000"),
        rpm_limit=1_000_000,
        tpm_limit=1_000_000_000,
    )
    queue = f"{run}-drain"
    env = cluster_env(
        tmp=tmp_path,
        emulator_url=openai_emulator.url,
        usage_stream=settings.OGEM_USAGE_STREAM,
        OGEM_USAGE_BATCH_SIZE=str(DRAIN_BATCH),
        OGEM_USAGE_CLAIM_IDLE_MS="500",
    )
    processes: list[Process] = []
    try:
        web: dict[str, Process] = {}
        for name in ("a", "b"):
            web[name] = web_worker_start(env, name=name)
            processes.append(web[name])

        # -- traffic, with web worker "b" SIGKILLed half-way ---------------------------------
        outcomes = asyncio.run(_drive(web=web, secret=issued.secret, run=run))
        assert len(outcomes) == REQUESTS
        assert not web["b"].alive() and web["a"].alive()
        failed = [o for o in outcomes if not o.answered]
        assert failed, "the SIGKILL hit no request in flight"
        assert {o.worker for o in failed} == {"b"}, failed[:5]
        must_settle = {
            o.request_id for o in outcomes if o.answered and (o.worker == "a" or not o.stream)
        }

        # Worker "a" settles its abandoned streams once it has seen their clients leave.
        def all_settled() -> bool:
            return must_settle <= {e["request_id"] for e in _stream_events(usage_stream)}

        wait_for(all_settled, timeout=60, what="worker a to settle every answered request")
        events = _stream_events(usage_stream)
        settled = {e["request_id"] for e in events}
        assert len(events) == len(settled), "a request was settled twice"
        assert must_settle <= settled
        # What the killed worker settled before dying is recorded too; nothing else is.
        assert settled <= {o.request_id for o in outcomes}

        # -- the drain: a real Celery worker, SIGKILLed while it writes ---------------------
        from ogem_site.celery import app

        pending_at_kill = []
        for cycle in range(5):
            target = RequestLog.objects.count() + 500
            doomed = celery_worker_start(env, name=f"doomed{cycle}", queue=queue)
            processes.append(doomed)
            app.send_task("billing.tasks.usage_drain", queue=queue)
            wait_for(
                lambda doomed=doomed, target=target: (
                    RequestLog.objects.count() >= target or not doomed.alive()
                ),
                timeout=60,
                what="the Celery drain to write",
            )
            assert doomed.alive(), "the Celery worker died on its own"
            doomed.kill()
            pending_at_kill.append(client.xpending(usage_stream, USAGE_GROUP)["pending"])
            if pending_at_kill[-1]:
                break
        assert pending_at_kill[-1] > 0, pending_at_kill  # it died holding a batch
        assert RequestLog.objects.count() < len(settled)

        survivor = celery_worker_start(env, name="survivor", queue=queue)
        processes.append(survivor)

        def drained() -> bool:
            assert survivor.alive(), "the surviving Celery worker died"
            if (
                client.xlen(usage_stream) == 0
                and not client.xpending(usage_stream, USAGE_GROUP)["pending"]
            ):
                return True
            if not client.llen(queue):
                app.send_task("billing.tasks.usage_drain", queue=queue)
            return False

        wait_for(drained, timeout=60, what="the surviving Celery worker to drain the stream")
    finally:
        for process in processes:
            process.kill()
        # The queue and kombu's bindings of it; the killed workers' unacked messages stay in
        # kombu's `unacked` hash and come back, harmless, to a queue nobody consumes.
        client.delete(usage_stream, *client.scan_iter(match=f"*{queue}*"))

    # -- the books ----------------------------------------------------------------------------
    rows = list(
        RequestLog.objects.values_list(
            "request_id", "prompt_tokens", "completion_tokens", "stream", "cancelled", "cost"
        )
    )
    assert len(rows) == len(settled)
    assert {row[0] for row in rows} == settled
    ledger = _ledger_by_id(openai_emulator)
    expected_cost = Decimal(0)
    for request_id, prompt, completion, _, _, cost in rows:
        (reported,) = ledger[request_id]  # the upstream was called once for it
        assert reported.complete != reported.stream, request_id  # streams were cut short
        assert (prompt, completion) == (reported.prompt_tokens, reported.completion_tokens)
        assert cost == prompt * INPUT_PRICE + completion * OUTPUT_PRICE
        expected_cost += cost
    # Every stream was abandoned by its client, and recorded so.
    assert [row[0] for row in rows if row[3] != row[4]] == []
    totals = RequestLog.objects.aggregate(
        prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), cost=Sum("cost")
    )
    assert totals["prompt"] == sum(ledger[i][0].prompt_tokens for i in settled)
    assert totals["completion"] == sum(ledger[i][0].completion_tokens for i in settled)
    assert totals["cost"] == expected_cost
    assert RequestLog.objects.filter(stream=True).count() == sum(
        1 for o in outcomes if o.stream and o.request_id in settled
    )

    budget = Budget.objects.get(scope=BudgetScope.KEY, key=issued.key)
    assert budget_live_spend(budget=budget) == totals["cost"]
    budget_periods_reset()
    budget.refresh_from_db()
    assert budget.spend == totals["cost"]
    # What stays reserved is held by requests the killed worker admitted and never settled (the
    # budget releases them once older than OGEM_PARALLEL_SLOT_TTL: see test_budgets.py).
    counter = client.hgetall(budget_counter_key(snapshot=budget_snapshot_from(budget=budget)))
    held = {
        field.decode()[2:]: int(value.split(b":")[0])
        for field, value in counter.items()
        if field.startswith(b"q:")
    }
    assert set(held) <= {o.request_id for o in outcomes if o.worker == "b"} - settled
    assert int(counter.get(b"r", 0)) == sum(held.values())
