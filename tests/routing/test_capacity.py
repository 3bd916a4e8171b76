"""A deployment's own rpm/tpm: enforced by the router, skipped when full, queued when all are."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings

from gateway.capacity import capacity_reset
from ogem_site.metrics import ROUTING_QUEUE_DEPTH, ROUTING_QUEUE_WAIT
from tests.factories import TeamFactory
from tests.routing.conftest import queued, served_by

WINDOW = 2  # seconds: the deployments' windows roll quickly in these tests ...
BURST_WINDOW = 6  # ... but a burst must all arrive inside one, however busy the machine,
LONG_WINDOW = 30  # and a wait for room this long is one no test should see


@pytest.fixture(autouse=True)
def short_window(request, settings) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """The window of `@pytest.mark.window(seconds)`, else WINDOW."""
    marker = request.node.get_closest_marker("window")
    settings.OGEM_DEPLOYMENT_LIMIT_WINDOW = marker.args[0] if marker else WINDOW
    capacity_reset()
    yield
    capacity_reset()


def _waits(outcome: str) -> float:
    """How many requests left the `group` queue with this outcome so far."""
    for metric in ROUTING_QUEUE_WAIT.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count") and sample.labels == {
                "model": "group",
                "outcome": outcome,
            }:
                return sample.value
    return 0.0


def _post(
    url: str, key: str, content: str = "Hello there", model: str = "group"
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {key}"},
        json={"model": model, "messages": [{"role": "user", "content": content}]},
        timeout=30,
    )
    return response, time.monotonic() - started


def _burst(url: str, key: str, count: int) -> list[tuple[httpx.Response, float]]:
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: _post(url, key), range(count)))


@pytest.mark.window(BURST_WINDOW)
def test_a_burst_waits_for_the_window_when_every_deployment_is_full(
    openai_emulator, install_deployments, deployment, router_settings, live_ogem, master_key
) -> None:
    router_settings(queue_timeout=30.0, queue_depth=100)
    install_deployments(
        deployment("a", rpm=5), deployment("b", rpm=5), deployment("warm", model="warm-up")
    )
    # Warm up the server and the rest of the path on another group: a and b's windows stay empty.
    _post(live_ogem.url, master_key, model="warm-up")
    openai_emulator.requests.clear()
    served_before, timeouts_before = _waits("served"), _waits("timeout")
    depths: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            depths.append(ROUTING_QUEUE_DEPTH.labels(model="group")._value.get())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        results = _burst(live_ogem.url, master_key, 15)
    finally:
        done.set()
        watcher.join()
    assert [r.status_code for r, _ in results] == [200] * 15
    # Ten fit the two windows at once; five waited in the queue until a window rolled.
    assert _waits("served") - served_before == 5
    assert _waits("timeout") - timeouts_before == 0
    assert max(depths) == 5
    assert ROUTING_QUEUE_DEPTH.labels(model="group")._value.get() == 0
    # A window frees room seconds after it filled: the five waited that long.
    durations = sorted(seconds for _, seconds in results)
    assert durations[10] - durations[9] > BURST_WINDOW / 4
    counts = Counter(served_by(openai_emulator))
    assert sum(counts.values()) == 15
    # No deployment was called past its limit: nothing came back as the upstream's 429.
    assert set(counts) == {"a", "b"}


def test_a_full_deployment_is_skipped(
    openai_emulator, install_deployments, deployment, router_settings, chat, tag
) -> None:
    install_deployments(
        deployment("small", rpm=2, priority=0), deployment("large", rpm=100, priority=1)
    )
    headers = [chat().headers["x-ogem-deployment"] for _ in range(5)]
    assert headers == [f"{tag}:small"] * 2 + [f"{tag}:large"] * 3
    assert served_by(openai_emulator) == ["small", "small", "large", "large", "large"]


@pytest.mark.window(LONG_WINDOW)  # far longer than the queue's patience: they can only give up
def test_waiters_give_up_at_the_queue_timeout_with_429(
    openai_emulator, install_deployments, deployment, router_settings, live_ogem, master_key
) -> None:
    router_settings(queue_timeout=0.5, queue_depth=100)
    install_deployments(deployment("a", rpm=1), deployment("b", rpm=1))
    timeouts_before = _waits("timeout")
    results = _burst(live_ogem.url, master_key, 4)
    statuses = sorted(r.status_code for r, _ in results)
    assert statuses == [200, 200, 429, 429]
    for response, seconds in results:
        if response.status_code == 429:
            assert 0.5 <= seconds < 10  # at the queue timeout, not the window's end
            error = response.json()["error"]
            assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
            assert error["message"] == "Every deployment of `group` is at its rate limit."
            assert 1 <= int(response.headers["retry-after"]) <= LONG_WINDOW
    assert _waits("timeout") - timeouts_before == 2
    assert sorted(served_by(openai_emulator)) == ["a", "b"]


@pytest.mark.window(LONG_WINDOW)
def test_without_a_queue_a_full_group_is_429_at_once(
    openai_emulator, install_deployments, deployment, router_settings, chat
) -> None:
    install_deployments(deployment("only", rpm=1))
    assert chat().status_code == 200
    started = time.monotonic()
    refused = chat()
    assert time.monotonic() - started < 10  # not a wait for room (the window's 30 s)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= LONG_WINDOW
    assert served_by(openai_emulator) == ["only"]


@pytest.mark.window(4)  # both must be queued before it rolls, however busy the machine
def test_higher_priority_team_leaves_the_queue_first(
    openai_emulator, install_deployments, deployment, router_settings, live_ogem, make_key
) -> None:
    router_settings(queue_timeout=30.0, queue_depth=100)
    install_deployments(deployment("only", rpm=1))
    low = make_key(team=TeamFactory(metadata={"priority": 200}))
    high = make_key(team=TeamFactory(metadata={"priority": 1}))
    assert _post(live_ogem.url, low, "first")[0].status_code == 200  # the window is now full
    results: dict[str, int] = {}

    def send(key: str, name: str) -> None:
        results[name] = _post(live_ogem.url, key, name)[0].status_code

    waiting_low = threading.Thread(target=send, args=(low, "low"))
    waiting_low.start()
    queued("group", 1)  # the low-priority request is queued first ...
    waiting_high = threading.Thread(target=send, args=(high, "high"))
    waiting_high.start()
    waiting_low.join(30)
    waiting_high.join(30)
    assert results == {"low": 200, "high": 200}
    # ... but the high-priority team's request took the first free slot.
    contents = [r.json["messages"][0]["content"] for r in openai_emulator.requests]
    assert contents == ["first", "high", "low"]


def test_tokens_per_minute_count_what_was_served(
    openai_emulator, install_deployments, deployment, chat
) -> None:
    # Each request reserves about 70 tokens (prompt estimate plus max_tokens 50) and uses ~15:
    # settling gives the difference back, so three fit in 100 tokens per window.
    install_deployments(deployment("only", tpm=100))
    assert [chat(max_tokens=50).status_code for _ in range(3)] == [200, 200, 200]
    refused = chat(max_tokens=90)
    assert refused.status_code == 429
    assert served_by(openai_emulator) == ["only"] * 3


def test_fallback_when_the_group_is_full(
    openai_emulator, install_deployments, deployment, router_settings, chat
) -> None:
    router_settings(fallbacks={"group": ("spare",)})
    install_deployments(deployment("only", rpm=1), deployment("other", model="spare"))
    assert chat().status_code == 200
    second = chat()
    assert second.status_code == 200
    assert second.headers["x-ogem-model-group"] == "spare"
    assert served_by(openai_emulator) == ["only", "other"]


@pytest.mark.skipif(not django_settings.REDIS_URL, reason="limits are shared through Redis")
def test_another_process_fills_a_deployment_and_this_one_skips_it(
    openai_emulator, install_deployments, deployment, chat, tag, settings
) -> None:
    settings.OGEM_DEPLOYMENT_LIMIT_WINDOW = 60  # what the other process counts in
    install_deployments(
        deployment("busy", rpm=2, priority=0), deployment("spare", rpm=100, priority=1)
    )
    script = (
        "import django, redis, sys\n"
        "django.setup()\n"
        "from django.conf import settings\n"
        "from gateway.limits import Rule, now_ms, redis_admit_sync, rule_key\n"
        "key = rule_key(tenant='o:-', entity='deployment:' + sys.argv[1], metric='rpm')\n"
        "client = redis.Redis.from_url(settings.REDIS_URL)\n"
        "for n in range(2):\n"
        "    redis_admit_sync(client, [Rule('w', key, 2, 1)], now_ms=now_ms(), request_id=str(n))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ogem_site.settings.test"}
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-c", script, f"{tag}:busy"], check=True, cwd=root, env=env, timeout=60
    )
    assert chat().headers["x-ogem-deployment"] == f"{tag}:spare"
    assert served_by(openai_emulator) == ["spare"]


def test_a_request_its_key_refuses_takes_nothing_from_the_router(
    openai_emulator, install_deployments, deployment, live_ogem, tag
) -> None:
    # The router confirms the admission after it has chosen a deployment and before it takes
    # that deployment's capacity: a request its key refuses must leave the capacity untouched.
    from keys.services import key_create

    install_deployments(deployment("first", rpm=2), deployment("spare", rpm=100, priority=1))
    limited = key_create(name="one a minute", team=TeamFactory(), rpm_limit=1).secret
    assert _post(live_ogem.url, limited)[0].status_code == 200  # one of "first"'s two
    refused, _ = _post(live_ogem.url, limited)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    free = key_create(name="unlimited", team=TeamFactory()).secret
    served, _ = _post(live_ogem.url, free)
    assert served.headers["x-ogem-deployment"] == f"{tag}:first"  # its second request left
    assert served_by(openai_emulator) == ["first", "first"]
