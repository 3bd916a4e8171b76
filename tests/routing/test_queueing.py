"""Request queuing when every deployment of a group is cooling down."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from gateway.health import HealthPolicy, health_failure, health_store
from ogem_site.metrics import ROUTING_QUEUE_WAIT
from tests.routing.conftest import queued, served_by


@pytest.fixture
def cool(openai_emulator, install_deployments, deployment, router_settings, chat):
    """Call to rate-limit both deployments upstream for 3 s: later requests must wait (longer
    than a busy machine takes to queue two of them)."""
    router_settings(queue_timeout=30.0, queue_depth=10)
    install_deployments(deployment("only-a", priority=0), deployment("only-b", priority=1))

    def apply():
        openai_emulator.inject(status=429, headers={"Retry-After": "3"})
        openai_emulator.inject(status=429, headers={"Retry-After": "3"})
        assert chat().status_code == 429  # both cooled down by their 429s
        openai_emulator.requests.clear()
        return openai_emulator

    return apply


def _post(url: str, key: str, results: dict, name: str) -> None:
    response = httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": "group", "messages": [{"role": "user", "content": name}]},
        timeout=30,
    )
    results[name] = (response.status_code, time.monotonic())


def test_requests_wait_for_a_deployment_and_leave_by_priority(cool, live_ogem, make_key) -> None:
    low = make_key(metadata={"priority": 200})
    high = make_key(metadata={"priority": 1})
    cooling = cool()
    waited_before = ROUTING_QUEUE_WAIT.labels(model="group", outcome="served")._sum.get()
    results: dict = {}
    started = time.monotonic()
    first = threading.Thread(target=_post, args=(live_ogem.url, low, results, "low"))
    first.start()
    queued("group", 1)  # the low-priority request is queued first ...
    second = threading.Thread(target=_post, args=(live_ogem.url, high, results, "high"))
    second.start()
    first.join(30)
    second.join(30)
    assert results["low"][0] == results["high"][0] == 200
    assert results["low"][1] - started >= 1.0  # it waited for the cooldown instead of failing
    # ... but the high-priority one reached the upstream first.
    contents = [r.json["messages"][0]["content"] for r in cooling.requests]
    assert contents == ["high", "low"]
    assert ROUTING_QUEUE_WAIT.labels(model="group", outcome="served")._sum.get() > waited_before


def test_a_full_queue_refuses_at_once(cool, router_settings, chat) -> None:
    cooling = cool()
    router_settings(queue_timeout=30.0, queue_depth=1)
    results: dict = {}
    waiting = threading.Thread(target=lambda: results.setdefault("first", chat()))
    waiting.start()
    queued("group", 1)
    started = time.monotonic()
    refused = chat()
    assert time.monotonic() - started < 5.0  # not the queue's 30 s
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "upstream_unavailable"
    assert int(refused.headers["retry-after"]) >= 1
    waiting.join(30)
    assert results["first"].status_code == 200
    assert served_by(cooling) == ["only-a"]


def test_waiting_gives_up_at_the_queue_timeout(cool, router_settings, chat) -> None:
    cooling = cool()
    router_settings(queue_timeout=0.5, queue_depth=10)
    started = time.monotonic()
    response = chat()
    elapsed = time.monotonic() - started
    assert elapsed >= 0.5  # it waited in the queue ...
    # ... and gave up: had it waited for the cooldown's end (3 s), a deployment would have served.
    assert response.status_code == 503
    assert served_by(cooling) == []


def test_a_waiter_passes_over_a_deployment_another_request_is_probing(
    openai_emulator, install_deployments, deployment, router_settings, chat, tag
) -> None:
    router_settings(queue_timeout=5.0, queue_depth=10)
    only_a, only_b = deployment("only-a", priority=0), deployment("only-b", priority=1)
    install_deployments(only_a, only_b)
    policy = HealthPolicy()

    async def cool_down() -> None:
        # only-a turns half-open first, but another request holds its probe; only-b later.
        await health_failure(only_a, policy=policy, forced=0.3)
        await health_failure(only_b, policy=policy, forced=1.2)
        assert await health_store().probe_claim(only_a.id, seconds=30)

    started = time.monotonic()
    asyncio.run(cool_down())
    response = chat()
    assert response.status_code == 200
    assert response.headers["x-ogem-deployment"] == f"{tag}:only-b"
    assert time.monotonic() - started >= 1.1  # it kept its place until only-b could serve
    assert served_by(openai_emulator) == ["only-b"]
