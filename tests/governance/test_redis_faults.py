"""Redis that stops answering, refuses connections, or dies mid-run: through the live server.

Ogem points at a Redis of the test's own (tests/governance/redis_servers.py), never the shared
one. While it is away, no /v1 request waits longer than the configured timeout plus 50 ms, the
answer follows OGEM_REDIS_FAILURE_POLICY (open: served; closed: an OpenAI-shaped 503), and the
health endpoints say what is degraded. Once it is back, the usage recorded in the database is
exactly the usage served (nothing lost, nothing counted twice), and so is the budget's spend.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.db import connection

from billing.models import Budget, RequestLog
from billing.services import budget_periods_reset, usage_drain
from gateway.governance import governance_snapshot_flush
from gateway.limits import outage_limiter
from keys.services import IssuedKey, key_create
from ogem_site.redis import redis_clients_forget
from tests.factories import TeamFactory
from tests.governance.redis_servers import FaultProxy, RedisProcess
from tests.live import LiveServer, wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]

BODY = {
    "model": "mock-chat",
    "messages": [{"role": "user", "content": "Hello there, how are you today?"}],
    "max_tokens": 50,
}
# mock-chat's shipped price: $1 per million prompt tokens, $2 per million completion tokens.
PROMPT_PRICE, COMPLETION_PRICE = Decimal("0.000001"), Decimal("0.000002")


@dataclass
class Served:
    """Every answer the test got, and how long each took."""

    ok: dict[str, dict[str, Any]] = field(default_factory=dict)  # request id -> usage of a 200
    during: list[tuple[int, float, dict[str, Any]]] = field(default_factory=list)
    healthy: list[float] = field(default_factory=list)  # seconds each request took with Redis up
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cost(self) -> Decimal:
        return sum(
            (
                Decimal(usage["prompt_tokens"]) * PROMPT_PRICE
                + Decimal(usage["completion_tokens"]) * COMPLETION_PRICE
                for usage in self.ok.values()
            ),
            Decimal(0),
        )


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(directory=tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def ogem_on(settings, tmp_path: Path, live_ogem: LiveServer):  # type: ignore[no-untyped-def]
    """Point the live server at a URL with a failure policy; forget it all afterwards."""

    def point(url: str, *, policy: str) -> LiveServer:
        settings.REDIS_URL = url
        settings.OGEM_REDIS_FAILURE_POLICY = policy
        settings.OGEM_REDIS_PROBE_INTERVAL = 0.25
        settings.OGEM_USAGE_SPOOL_DIR = str(tmp_path / "spool")
        redis_clients_forget()
        outage_limiter.reset()
        governance_snapshot_flush()
        return live_ogem

    yield point
    redis_clients_forget()
    outage_limiter.reset()
    governance_snapshot_flush()


def _key() -> IssuedKey:
    return key_create(
        name="faults",
        team=TeamFactory(),
        rpm_limit=10_000,
        tpm_limit=10_000_000,
        max_budget=Decimal("100"),
    )


def _ask(client: httpx.Client, served: Served, *, outage: bool) -> tuple[int, float]:
    started = time.perf_counter()
    response = client.post("/v1/chat/completions", json=BODY)
    took = time.perf_counter() - started
    body = response.json()
    with served.lock:
        if response.status_code == 200:
            served.ok[response.headers["x-request-id"]] = body["usage"]
        if outage:
            served.during.append((response.status_code, took, body))
        else:
            served.healthy.append(took)
    return response.status_code, took


def _client(live: LiveServer, secret: str) -> httpx.Client:
    return httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


def _outage_checked(live: LiveServer, served: Served, *, policy: str, timeout: float) -> None:
    """What every request of the outage got, and what health said meanwhile."""
    assert served.during
    for status, took, body in served.during:
        _wait_checked(took, served, timeout=timeout)
        if policy == "open":
            assert status == 200, body
        else:
            _refusal_checked(status, body)
    _health_checked(live, policy=policy)


def _wait_checked(took: float, served: Served, *, timeout: float) -> None:
    """A request waits for Redis once, at most one command timeout, besides what it costs with
    Redis up (the median such request on this machine: one in flight at a kill waited too),
    with a margin for a busy CPU. Waiting twice, or a connect timeout and then a command
    timeout, would add at least another 0.25 s."""
    bound = timeout + statistics.median(served.healthy) + 0.15
    assert took <= bound, f"a request waited {took:.3f} s while Redis was away (bound {bound:.3f})"


def _refusal_checked(status: int, body: dict[str, Any]) -> None:
    assert status == 503, body
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert (body["error"]["type"], body["error"]["code"]) == ("api_error", "governance_unavailable")
    assert "Redis is unavailable" in body["error"]["message"]


def _health_checked(live: LiveServer, *, policy: str) -> None:
    live_body = httpx.get(f"{live.url}/health/live").json()
    assert live_body["status"] == "ok"
    assert live_body["degraded"]["redis"]["failure_policy"] == policy
    assert live_body["degraded"]["redis"]["since"]
    ready = httpx.get(f"{live.url}/health/ready", timeout=10)
    assert ready.status_code == (200 if policy == "open" else 503)
    body = ready.json()
    assert body["status"] == ("degraded" if policy == "open" else "unavailable")
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["cache"].startswith("failed")
    assert body["degraded"]["redis"]["seconds"] > 0


def _recovered(live: LiveServer, spool: Path) -> None:
    """Health says Redis is back, and the spool has been replayed into it."""

    def back() -> bool:
        return "degraded" not in httpx.get(f"{live.url}/health/live").json()

    wait_for(back, timeout=30, what="the breaker to close")
    wait_for(
        lambda: not list(spool.glob("*.spool")) if spool.exists() else True,
        timeout=30,
        what="the usage spool to be replayed",
    )
    ready = httpx.get(f"{live.url}/health/ready", timeout=10)
    assert (ready.status_code, ready.json()["status"]) == (200, "ok")


def _usage_checked(issued: IssuedKey, served: Served) -> None:
    """Recorded usage and spend equal what was served: each request once."""
    while usage_drain():
        pass
    rows = list(RequestLog.objects.filter(key_id=issued.key.pk))
    assert sorted(row.request_id for row in rows) == sorted(served.ok)
    recorded = sum((row.cost for row in rows), Decimal(0))
    assert recorded == served.cost()
    budget_periods_reset()
    budget = Budget.objects.get(key=issued.key)
    assert budget.spend == served.cost()


@pytest.mark.parametrize("policy", ["open", "closed"])
@pytest.mark.parametrize("fault", ["black hole", "refused port"])
def test_redis_away_then_back(  # type: ignore[no-untyped-def]
    fault: str, policy: str, redis_server: RedisProcess, ogem_on, settings, tmp_path: Path
) -> None:
    proxy = FaultProxy(redis_server.port)
    try:
        live = ogem_on(proxy.url, policy=policy)
        issued = _key()
        served = Served()
        with _client(live, issued.secret) as client:
            for _ in range(3):
                assert _ask(client, served, outage=False)[0] == 200
            proxy.blackhole() if fault == "black hole" else proxy.refuse()
            for _ in range(8):
                _ask(client, served, outage=True)
            _outage_checked(live, served, policy=policy, timeout=settings.OGEM_REDIS_TIMEOUT)
            proxy.heal()
            _recovered(live, Path(settings.OGEM_USAGE_SPOOL_DIR))
            for _ in range(3):
                assert _ask(client, served, outage=False)[0] == 200
        _usage_checked(issued, served)
    finally:
        proxy.close()


@pytest.mark.parametrize("policy", ["open", "closed"])
def test_redis_killed_mid_run_and_restarted(  # type: ignore[no-untyped-def]
    policy: str, redis_server: RedisProcess, ogem_on, settings
) -> None:
    live = ogem_on(redis_server.url, policy=policy)
    issued = _key()
    served = Served()
    state = {"outage": False, "stop": False}
    errors: list[BaseException] = []

    def load() -> None:
        try:
            with _client(live, issued.secret) as client:
                while not state["stop"]:
                    _ask(client, served, outage=state["outage"])
        except BaseException as exc:
            errors.append(exc)

    with _client(live, issued.secret) as client:
        assert _ask(client, served, outage=False)[0] == 200  # the key is cached, Redis warm
    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        wait_for(lambda: len(served.ok) >= 20, timeout=30, what="traffic before the kill")
        redis_server.kill()  # with requests in flight
        state["outage"] = True
        wait_for(lambda: len(served.during) >= 10, timeout=30, what="traffic during the outage")
        _health_checked(live, policy=policy)
        state["outage"] = False
        redis_server.start()  # on the same port, with its data (append-only, fsynced)
        _recovered(live, Path(settings.OGEM_USAGE_SPOOL_DIR))
        count = len(served.ok)
        wait_for(lambda: len(served.ok) >= count + 10, timeout=30, what="traffic after")
    finally:
        state["stop"] = True
        for worker in workers:
            worker.join(30)
    assert not errors
    _outage_checked_killed(served, policy=policy, timeout=settings.OGEM_REDIS_TIMEOUT)
    _usage_checked(issued, served)


def _outage_checked_killed(served: Served, *, policy: str, timeout: float) -> None:
    # Requests in flight at the kill were admitted before it (200 either way); the rest follow
    # the policy.
    statuses = [status for status, _, _ in served.during]
    assert set(statuses) <= ({200} if policy == "open" else {200, 503})
    for status, took, body in served.during:
        _wait_checked(took, served, timeout=timeout)
        if status == 503:
            _refusal_checked(status, body)
    if policy == "closed":
        assert statuses.count(503) >= len(statuses) - 3  # at most those in flight at the kill


def test_hits_on_a_lease_are_spooled_while_redis_is_away_and_recorded_once(  # type: ignore[no-untyped-def]
    redis_server: RedisProcess, ogem_on, settings
) -> None:
    """Free L1 hits admitted on their worker's lease of request allowance (gateway/governance.py
    `_HitLease`) need no Redis: when it refuses connections, their usage events, which could not
    be written, go to the usage spool and are recorded once it is back, as those of hits admitted
    while it is away (once something opened the breaker, by the outage path: not leased)."""
    from dataclasses import replace

    from gateway.cache import cache_local_clear
    from gateway.config import watch as config_watch
    from gateway.config.types import CacheSettings
    from gateway.registry import registry_get

    registry_get()  # the first load installs its configuration: before this test's
    previous = config_watch._current
    proxy = FaultProxy(redis_server.port)
    try:
        live = ogem_on(proxy.url, policy="open")
        config_watch._current = replace(previous, cache=CacheSettings(type="local"))
        issued = _key()  # rpm 10,000: leases of up to 16
        ids = []
        with _client(live, issued.secret) as client:

            def ask() -> str:
                response = client.post("/v1/chat/completions", json=BODY)
                assert response.status_code == 200, response.text
                ids.append(response.headers["x-request-id"])
                return response.headers["x-ogem-cache"]

            assert ask() == "miss"
            time.sleep(1 - time.time() % 1 + 0.01)  # a second's start: its hits share its lease
            # Its 1st hit asks for no lease, its 2nd for one unit, its 4th for three.
            assert [ask() for _ in range(4)] == ["hit"] * 4
            proxy.refuse()
            assert [ask() for _ in range(3)] == ["hit"] * 3  # on the lease, or by the outage path
        spool = Path(settings.OGEM_USAGE_SPOOL_DIR)

        def spooled() -> list[str]:
            return [
                json.loads(line)["a"][0]
                for path in spool.glob("*.spool")
                for line in path.read_text().splitlines()
            ]

        wait_for(lambda: set(ids[-3:]) <= set(spooled()), timeout=10, what="the events spooled")
        proxy.heal()
        _recovered(live, spool)
        while usage_drain():
            pass
        rows = list(RequestLog.objects.filter(key_id=issued.key.pk))
        assert sorted(row.request_id for row in rows) == sorted(ids)
        assert [row.cache_hit for row in rows].count(True) == 7
    finally:
        config_watch._current = previous
        cache_local_clear()
        proxy.close()
