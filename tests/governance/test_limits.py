"""Rate limits (gateway/limits.py) on the in-process store and on Redis, including two processes."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from gateway.limits import (
    AdmitPacking,
    Decision,
    LocalLimiter,
    RedisLimiter,
    Rule,
    Settlement,
    limiter,
    rule_key,
)
from ogem_site.redis import redis_client_sync, redis_clients_forget

ROOT = Path(__file__).resolve().parents[2]


def rpm(tenant: str, limit: int) -> Rule:
    return Rule("w", rule_key(tenant=tenant, entity="key:1", metric="rpm"), limit, 1, "key:rpm")


async def test_burst_admits_exactly_the_rpm(backend: str, tenant: str) -> None:
    rule = rpm(tenant, 7)
    now = int(time.time() * 1000)
    decisions = await asyncio.gather(
        *(limiter().admit([rule], now_ms=now, request_id=f"r{i}") for i in range(40))
    )
    allowed = [d for d in decisions if d.allowed]
    refused = [d for d in decisions if not d.allowed]
    assert len(allowed) == 7
    assert len(refused) == 33
    assert sorted(d.states[0].remaining for d in allowed) == [0, 1, 2, 3, 4, 5, 6]
    # Everything was admitted in this second: room again when it leaves the 60 s window.
    expected_wait = (now // 1000 + 60) * 1000 - now
    assert {d.retry_after_ms for d in refused} == {expected_wait}
    assert {d.refused for d in refused} == {0}


async def test_admission_from_kept_runs_decides_as_one_encoded_whole(
    backend: str, tenant: str
) -> None:
    """The /v1 admission is written from its rules' fixed arguments encoded once (`AdmitPacking`,
    kept with a caller's rule plan) and only each request's own values: it counts, reserves,
    refuses and reads the cache entry exactly as an admission encoded argument by argument."""
    if backend != "redis":
        pytest.skip("the pipelined connection's command")

    def rules(entity: str, tokens: int, reset_in: int) -> list[Rule]:
        def key(metric: str) -> str:
            return rule_key(tenant=tenant, entity=entity, metric=metric)

        return [
            Rule("w", key("rpm"), 5, 1, "key:rpm"),
            Rule("w", key("tpm"), 100, tokens, "key:tpm"),
            Rule("b", key("budget"), 1_000, 300, "key:budget", False, 50, reset_in),
            Rule("p", key("parallel"), 3, 1, "key:parallel", ttl_ms=60_000),
        ]

    store = limiter()
    now = int(time.time() * 1000)
    await store.admit(rules("warm", 1, 0), now_ms=now, request_id="warm")  # connects
    entry = rule_key(tenant=tenant, entity="cache", metric="entry")
    redis_client_sync().set(entry, b"stored answer", px=60_000)
    packing = AdmitPacking(rules("packed", 10, 86_400_000))
    refusals = []
    for i, tokens in enumerate([10, 40, 30, 50, 1]):
        reset_in = 86_400_000 - i * 1_000
        issued = await store.admit_issue(
            rules("packed", tokens, reset_in),
            now_ms=now + i,
            request_id=f"r{i}",
            fetch=entry,
            packing=packing,
        )
        assert issued is not None
        packed = await issued
        whole = await store.admit(
            rules("whole", tokens, reset_in), now_ms=now + i, request_id=f"r{i}"
        )
        assert (packed.refused, packed.states, packed.available, packed.bucket) == (
            whole.refused,
            whole.states,
            whole.available,
            whole.bucket,
        )
        assert packed.fetched == (b"stored answer" if packed.allowed else None)
        refusals.append(packed.refused)
    # The tpm window refuses the 4th (130 tokens of 100), the budget the 5th (1,250 units of
    # 1,000, from its seed of 50).
    assert refusals == [None, None, None, 1, 2]


async def test_window_slides_per_second(backend: str, tenant: str) -> None:
    rule = rpm(tenant, 2)
    start = 1_800_000_000_000
    assert (await limiter().admit([rule], now_ms=start, request_id="a")).allowed
    assert (await limiter().admit([rule], now_ms=start + 30_000, request_id="b")).allowed
    assert not (await limiter().admit([rule], now_ms=start + 59_999, request_id="c")).allowed
    # The first request's second has left the window 60 s after it began.
    assert (await limiter().admit([rule], now_ms=start + 60_000, request_id="d")).allowed
    assert not (await limiter().admit([rule], now_ms=start + 60_001, request_id="e")).allowed


async def test_refusal_takes_nothing_from_other_rules(backend: str, tenant: str) -> None:
    roomy = Rule("w", rule_key(tenant=tenant, entity="team:1", metric="rpm"), 100, 1, "team:rpm")
    tight = rpm(tenant, 1)
    now = int(time.time() * 1000)
    assert (await limiter().admit([roomy, tight], now_ms=now, request_id="a")).allowed
    refused = await limiter().admit([roomy, tight], now_ms=now, request_id="b")
    assert refused.refused == 1
    after = await limiter().admit([roomy], now_ms=now, request_id="c")
    # Only the admitted requests counted against the team: a and c.
    assert after.states[0].remaining == 98


async def test_tpm_settles_to_actual_tokens(backend: str, tenant: str) -> None:
    key = rule_key(tenant=tenant, entity="key:1", metric="tpm")
    now = int(time.time() * 1000)
    reserved = Rule("w", key, 1000, 600, "key:tpm")
    first = await limiter().admit([reserved], now_ms=now, request_id="a")
    assert first.allowed and first.states[0].remaining == 400
    # Another 600-token reservation does not fit while the first is unsettled ...
    assert not (await limiter().admit([reserved], now_ms=now, request_id="b")).allowed
    # ... and does once the first settles at the 150 tokens it really used.
    await limiter().settle(
        [Settlement(reserved, 150)], request_id="a", bucket=first.bucket, event=b""
    )
    second = await limiter().admit([reserved], now_ms=now, request_id="c")
    assert second.allowed
    assert second.states[0].remaining == 1000 - 150 - 600
    await limiter().settle(
        [Settlement(reserved, 600)], request_id="c", bucket=second.bucket, event=b""
    )
    probe = await limiter().admit([Rule("w", key, 1000, 1, "key:tpm")], now_ms=now, request_id="d")
    assert probe.states[0].remaining == 1000 - 150 - 600 - 1


async def test_parallel_slots_are_released_on_settle(backend: str, tenant: str) -> None:
    rule = Rule(
        "p",
        rule_key(tenant=tenant, entity="key:1", metric="parallel"),
        2,
        1,
        "key:parallel",
        ttl_ms=900_000,
    )
    now = int(time.time() * 1000)
    a = await limiter().admit([rule], now_ms=now, request_id="a")
    b = await limiter().admit([rule], now_ms=now, request_id="b")
    c = await limiter().admit([rule], now_ms=now, request_id="c")
    assert (a.allowed, b.allowed, c.allowed) == (True, True, False)
    await limiter().settle([Settlement(rule, 0)], request_id="a", bucket=a.bucket, event=b"")
    assert (await limiter().admit([rule], now_ms=now, request_id="d")).allowed
    assert not (await limiter().admit([rule], now_ms=now, request_id="e")).allowed


async def test_parallel_slot_of_a_crashed_worker_expires(backend: str, tenant: str) -> None:
    rule = Rule(
        "p",
        rule_key(tenant=tenant, entity="key:1", metric="parallel"),
        1,
        1,
        "key:parallel",
        ttl_ms=5_000,
    )
    now = int(time.time() * 1000)
    assert (await limiter().admit([rule], now_ms=now, request_id="lost")).allowed
    assert not (await limiter().admit([rule], now_ms=now + 4_000, request_id="b")).allowed
    assert (await limiter().admit([rule], now_ms=now + 5_001, request_id="c")).allowed


_CHILD = """
import asyncio, json, os, sys, time
os.environ["DJANGO_SETTINGS_MODULE"] = "ogem_site.settings.test"
import django
django.setup()
from gateway.limits import Rule, limiter

key, limit, count, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])

async def main():
    rule = Rule("w", key, limit, 1, "key:rpm")
    while time.time() < start:
        await asyncio.sleep(0.001)
    results = await asyncio.gather(*(
        limiter().admit([rule], now_ms=int(time.time() * 1000), request_id=f"child{i}")
        for i in range(count)
    ))
    print(json.dumps(sum(1 for r in results if r.allowed)))

asyncio.run(main())
"""


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_rpm_holds_across_two_processes(backend: str, tenant: str) -> None:
    key = rule_key(tenant=tenant, entity=f"key:{uuid.uuid4().hex[:6]}", metric="rpm")
    limit, per_process = 25, 60
    start = time.time() + 2.0
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, key, str(limit), str(per_process), str(start)],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": os.environ["REDIS_URL"]},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rule = Rule("w", key, limit, 1, "key:rpm")
    while time.time() < start:
        await asyncio.sleep(0.001)
    results = await asyncio.gather(
        *(
            limiter().admit([rule], now_ms=int(time.time() * 1000), request_id=f"parent{i}")
            for i in range(per_process)
        )
    )
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    parent_allowed = sum(1 for r in results if r.allowed)
    assert parent_allowed + json.loads(out) == limit


@pytest.mark.parametrize("backend", ["redis"], indirect=True)
async def test_redis_window_decides_as_the_in_process_store(backend: str, tenant: str) -> None:
    # Redis keeps a running sum and reads only the seconds that left the window; the in-process
    # store sums every bucket. The same requests, settlements and clock must get the same answers.
    rng = random.Random(20261127)
    shared, local = RedisLimiter(), LocalLimiter()
    requests = Rule("w", rule_key(tenant=tenant, entity="key:1", metric="rpm"), 40, 1, "key:rpm")
    tokens_key = rule_key(tenant=tenant, entity="key:1", metric="tpm")
    now = 1_900_000_000_000
    for step in range(700):
        now += rng.choice(
            [0, 3, 40, 400, 999, 1_000, 2_500, 9_000, 30_000, 59_000, 61_000, 200_000]
        )
        rules = [requests, Rule("w", tokens_key, 6_000, rng.randint(1, 500), "key:tpm")]
        expected = local.admit_now(rules, now_ms=now, request_id=f"r{step}")
        decided = await shared.admit(rules, now_ms=now, request_id=f"r{step}")
        assert decided == expected, step
        if decided.allowed and rng.random() < 0.8:
            used = rng.randint(0, rules[1].amount * 2)
            settlements = [Settlement(rules[0], 1), Settlement(rules[1], used)]
            local.settle_now(settlements, request_id=f"r{step}", bucket=decided.bucket)
            await shared.settle(
                settlements, request_id=f"r{step}", bucket=decided.bucket, event=b""
            )
    assert step == 699


async def test_an_admission_records_a_free_hits_usage_event(backend: str, tenant: str) -> None:
    """A free response cache hit whose answer is built before its admission has its usage event
    recorded by the admission script once it admits (gateway/governance.py `_hit_event`), never
    for a refusal; its parallel slot is checked, not taken (it holds none once answered)."""
    if backend != "redis":
        pytest.skip("the scripts are Redis's")
    from billing.usage import usage_stream_key
    from ogem_site.redis import redis_lean

    def key(metric: str) -> str:
        return rule_key(tenant=tenant, entity="key:9", metric=metric)

    rules = [
        Rule("w", key("rpm"), 5, 1, "key:rpm"),
        Rule("p", key("parallel"), 1, 1, "key:parallel", ttl_ms=60_000),
    ]
    store = RedisLimiter()
    client = redis_client_sync()
    now = int(time.time() * 1000)
    await redis_lean().execute("PING")  # connected: admit_issue writes without waiting
    packing = AdmitPacking(rules)
    decisions = []
    for i in range(2):  # one slot, two hits: neither holds it
        event = json.dumps({"request_id": f"{tenant}-hit{i}"}).encode()
        issued = await store.admit_issue(
            rules, now_ms=now, request_id=f"hit{i}", packing=packing, event=event
        )
        assert issued is not None
        decisions.append(await issued)
    assert client.zcard(key("parallel")) == 0
    held = await store.admit(rules, now_ms=now, request_id="plain")  # takes the slot
    assert held.allowed
    event = json.dumps({"request_id": f"{tenant}-refused"}).encode()
    issued = await store.admit_issue(rules, now_ms=now, request_id="hit2", event=event)
    assert issued is not None
    decisions.append(await issued)
    assert [decision.refused for decision in decisions] == [None, None, 1]
    assert [state.remaining for state in decisions[1].states] == [3, 0]
    recorded = [
        json.loads(fields[b"e"])["request_id"]
        for _, fields in client.xrange(usage_stream_key())
        if tenant.encode() in fields[b"e"]
    ]
    assert recorded == [f"{tenant}-hit0", f"{tenant}-hit1"]
    assert client.zcard(key("parallel")) == 1  # the plain admission's


async def test_scripts_read_and_write_a_response_cache_entry(backend: str, tenant: str) -> None:
    """The response cache's Redis entry rides in the scripts (gateway/cache.py): the admission
    returns it once it admits (never for a refused request), the settle writes it with its
    expiry, and the settle kept for a replay is the one without the write."""
    if backend != "redis":
        pytest.skip("the scripts are Redis's")
    from gateway.limits import settle_script, settle_unwrite, settle_write
    from ogem_site.redis import redis_client_sync, redis_key, redis_lean
    from ogem_site.redis_pipeline import framed

    store = RedisLimiter()
    entry_key = redis_key(f"cache:{tenant}:-:entry")
    redis_client_sync().set(entry_key, b"stored entry", px=60_000)
    missing_key = redis_key(f"cache:{tenant}:-:missing")
    rule = rpm(tenant, 1)
    now = int(time.time() * 1000)
    await redis_lean().execute("PING")  # connected: admit_issue writes without waiting

    issued = await store.admit_issue([rule], now_ms=now, request_id="r1", fetch=entry_key)
    assert issued is not None
    decision = await issued
    assert (decision.allowed, decision.fetched) == (True, b"stored entry")
    refused = await store.admit_issue([rule], now_ms=now, request_id="r2", fetch=entry_key)
    decision = await refused
    assert (decision.allowed, decision.fetched) == (False, None)
    plain = await (await store.admit_issue([rpm(tenant + "x", 5)], now_ms=now, request_id="r3"))
    assert (plain.allowed, plain.fetched) == (True, None)
    fetched = await store.admit_issue([rpm(tenant + "y", 5)], now_ms=now, request_id="r4",
                                      fetch=missing_key)  # fmt: skip
    assert (await fetched).fetched is None

    keys, args = settle_script(
        [Settlement(rule, 1)], request_id="r1", bucket=now // 1000, event=b""
    )
    plain_keys, plain_args = list(keys), list(args)
    new_key = redis_key(f"cache:{tenant}:-:new")
    settle_write(keys, args, key=new_key, entry=framed(b"new entry", 5_000))
    assert settle_unwrite(keys, args) == (plain_keys, plain_args)
    reply = await store.settle_issue(keys, args, True)
    assert reply is not None
    assert await reply == 1
    client = redis_client_sync()
    assert client.get(new_key) == b"new entry"
    assert 0 < client.pttl(new_key) <= 5_000


async def test_an_admission_takes_a_lease_of_request_allowance(backend: str, tenant: str) -> None:
    """A free hit's admission may ask for units beyond its amount (gateway/governance.py
    `_HitLease`): the same number on every request window it counts against, at most what each
    has room for, none on a token window (amount 0) and none for a refusal. The decision's view
    is the hit's own (its remaining leaves the units out)."""
    if backend != "redis":
        pytest.skip("the scripts are Redis's")
    from ogem_site.redis import redis_lean

    def key(metric: str) -> str:
        return rule_key(tenant=tenant, entity="key:7", metric=metric)

    rules = [
        Rule("w", key("rpm"), 100, 1, "key:rpm"),
        Rule("w", key("tpm"), 1_000, 0, "key:tpm"),
        Rule("w", key("team-rpm"), 8, 1, "team:rpm"),
    ]
    store = RedisLimiter()
    client = redis_client_sync()
    now = int(time.time() * 1000)
    await redis_lean().execute("PING")

    async def admit(units: int) -> Decision:
        issued = await store.admit_issue(
            rules, now_ms=now, request_id=uuid.uuid4().hex, event=b"{}", lease_units=units
        )
        assert issued is not None
        return await issued

    first = await admit(5)
    assert (first.refused, first.leased) == (None, 5)
    assert [state.remaining for state in first.states] == [99, 1_000, 7]
    assert [client.hget(key(m), "t") for m in ("rpm", "team-rpm")] == [b"6", b"6"]
    assert client.exists(key("tpm")) == 0 or client.hget(key("tpm"), "t") == b"0"
    second = await admit(5)  # the team's window has room for one request and one unit more
    assert (second.refused, second.leased) == (None, 1)
    assert [client.hget(key(m), "t") for m in ("rpm", "team-rpm")] == [b"8", b"8"]
    third = await admit(5)
    assert (third.refused, third.leased) == (2, 0)
    assert [client.hget(key(m), "t") for m in ("rpm", "team-rpm")] == [b"8", b"8"]
    plain = await admit(0)  # no lease asked: none taken
    assert (plain.refused, plain.leased) == (2, 0)


async def test_usage_events_written_later_reach_the_stream_once(
    backend: str, usage_stream: str
) -> None:
    """Events of hits admitted on a lease (gateway/spool.py `usage_event_later`) are sent in
    batches, after a short delay or once a batch is full, each once."""
    if backend != "redis":
        pytest.skip("the usage stream is Redis's")
    from gateway import spool

    client = redis_client_sync()
    ids = [f"later-{uuid.uuid4().hex}" for _ in range(spool.LATER_BATCH + 3)]
    for request_id in ids[: spool.LATER_BATCH]:  # a full batch: sent at once
        spool.usage_event_later(request_id, json.dumps({"request_id": request_id}).encode())
    assert not spool._Later.events
    for request_id in ids[spool.LATER_BATCH :]:  # the rest: after the delay
        spool.usage_event_later(request_id, json.dumps({"request_id": request_id}).encode())
    assert len(spool._Later.events) == 3
    await asyncio.sleep(spool.LATER_DELAY_SECONDS * 3)
    while spool._Later.tasks:
        await asyncio.gather(*spool._Later.tasks)
    recorded = [json.loads(fields[b"e"])["request_id"] for _, fields in client.xrange(usage_stream)]
    assert sorted(recorded) == sorted(ids)  # each once (two batches: in either order)
    assert not spool._Later.writing


async def test_usage_events_written_later_are_spooled_when_redis_fails(
    backend: str, usage_stream: str, settings, tmp_path: Path
) -> None:
    """Redis unreachable when the batch is sent: the events go to the usage spool, whose replay
    brings each into the stream once."""
    if backend != "redis":
        pytest.skip("the usage stream is Redis's")
    from gateway import spool
    from ogem_site.redis import redis_outage_reset

    settings.OGEM_USAGE_SPOOL_DIR = str(tmp_path / "spool")
    real = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:9/11"  # the discard port: nothing listens
    redis_clients_forget()
    ids = [f"spooled-{uuid.uuid4().hex}" for _ in range(3)]  # marked once replayed: new ones
    for request_id in ids:
        spool.usage_event_later(request_id, json.dumps({"request_id": request_id}).encode())
    await asyncio.sleep(spool.LATER_DELAY_SECONDS * 3)
    while spool._Later.tasks:
        await asyncio.gather(*spool._Later.tasks)
    records = [
        json.loads(line)
        for path in (tmp_path / "spool").glob("*.spool")
        for line in path.read_text().splitlines()
    ]
    assert [record["a"][0] for record in records] == ids
    settings.REDIS_URL = real
    redis_clients_forget()
    redis_outage_reset()
    with spool._Spool.lock:
        spool._release()
    assert spool.usage_spool_replay() == 3
    assert spool.usage_spool_replay() == 0
    client = redis_client_sync()
    recorded = [json.loads(fields[b"e"])["request_id"] for _, fields in client.xrange(usage_stream)]
    assert recorded == ids


async def test_usage_events_still_waiting_at_exit_are_written(
    backend: str, usage_stream: str
) -> None:
    """The process exits before the delay has passed: its exit hook writes them (once: the
    timer then finds nothing left)."""
    if backend != "redis":
        pytest.skip("the usage stream is Redis's")
    from gateway import spool

    ids = [f"exit-{uuid.uuid4().hex}" for _ in range(2)]
    for request_id in ids:
        spool.usage_event_later(request_id, json.dumps({"request_id": request_id}).encode())
    spool.usage_events_later_exit()
    await asyncio.sleep(spool.LATER_DELAY_SECONDS * 3)
    assert not spool._Later.tasks
    client = redis_client_sync()
    recorded = [json.loads(fields[b"e"])["request_id"] for _, fields in client.xrange(usage_stream)]
    assert recorded == ids
