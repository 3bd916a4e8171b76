"""Cooldowns and circuit breakers: from live traffic, skipped while open, probed, recovered."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from gateway.health import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Circuit,
    HealthPolicy,
    circuit_after_failure,
    health_available,
    health_failure,
    health_probe_claim,
    health_probe_release,
    health_status,
)
from providers.base import Deployment
from tests.routing.conftest import served_by

POLICY = HealthPolicy(allowed_fails=2, window=60, cooldown=10)


def test_failures_in_the_window_open_the_circuit() -> None:
    one = circuit_after_failure(Circuit(), now=100.0, policy=POLICY, forced=0)
    assert (one.state, one.fails) == (CLOSED, 1)
    two = circuit_after_failure(one, now=101.0, policy=POLICY, forced=0)
    assert (two.state, two.open_until) == (OPEN, 111.0)
    assert two.effective(110.9) == OPEN
    assert two.effective(111.0) == HALF_OPEN


def test_failures_outside_the_window_do_not_add_up() -> None:
    one = circuit_after_failure(Circuit(), now=100.0, policy=POLICY, forced=0)
    later = circuit_after_failure(one, now=161.0, policy=POLICY, forced=0)
    assert (later.state, later.fails, later.since) == (CLOSED, 1, 161.0)


def test_a_failed_probe_reopens_and_retry_after_forces_a_cooldown() -> None:
    opened = Circuit(state=OPEN, open_until=110.0, since=100.0)
    probe_failed = circuit_after_failure(opened, now=120.0, policy=POLICY, forced=0)
    assert (probe_failed.state, probe_failed.open_until) == (OPEN, 130.0)
    forced = circuit_after_failure(Circuit(), now=100.0, policy=POLICY, forced=42)
    assert (forced.state, forced.open_until) == (OPEN, 142.0)


@pytest.fixture
def trio(openai_emulator, install_deployments, deployment, router_settings):
    router_settings(allowed_fails=2, cooldown_time=1.0)
    install_deployments(deployment("primary", priority=0), deployment("backup", priority=1))
    return openai_emulator


def test_circuit_opens_skips_then_probes_and_recovers(trio, chat, tag) -> None:
    trio.inject(status=500)
    assert chat().status_code == 200  # primary fails once, backup serves
    trio.inject(status=500)
    assert chat().status_code == 200  # second failure in the window: primary's circuit opens
    trio.requests.clear()
    for _ in range(3):
        response = chat()
        assert response.headers["x-ogem-deployment"] == f"{tag}:backup"
    assert served_by(trio) == ["backup"] * 3  # the open deployment gets no traffic at all
    time.sleep(1.1)
    trio.requests.clear()
    probe = chat()  # the cooldown passed: one probe goes to primary and succeeds
    assert probe.headers["x-ogem-deployment"] == f"{tag}:primary"
    assert chat().headers["x-ogem-deployment"] == f"{tag}:primary"  # closed again
    assert served_by(trio) == ["primary", "primary"]


def test_every_deployment_open_is_a_clean_503_with_retry_after(
    openai_emulator, install_deployments, deployment, router_settings, chat
) -> None:
    router_settings(allowed_fails=1, cooldown_time=30.0)
    install_deployments(deployment("primary", priority=0), deployment("backup", priority=1))
    openai_emulator.inject(status=500)
    openai_emulator.inject(status=500)
    first = chat()
    assert first.status_code == 502
    openai_emulator.requests.clear()
    response = chat()
    assert response.status_code == 503
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("upstream_error", "upstream_unavailable")
    assert "cooling down" in error["message"]
    assert 28 <= int(response.headers["retry-after"]) <= 30
    assert served_by(openai_emulator) == []


def test_429_retry_after_cools_the_deployment_down(
    openai_emulator, install_deployments, deployment, chat, tag
) -> None:
    install_deployments(deployment("primary", priority=0), deployment("backup", priority=1))
    openai_emulator.inject(status=429, headers={"Retry-After": "20"})
    assert chat().status_code == 200
    openai_emulator.requests.clear()
    assert chat().headers["x-ogem-deployment"] == f"{tag}:backup"
    assert served_by(openai_emulator) == ["backup"]
    primary = Deployment(id=f"{tag}:primary", model_name="g", provider="openai", upstream_model="")
    status = health_status([primary])
    assert status[0]["state"] == OPEN
    assert 18 <= status[0]["open_for_seconds"] <= 20


# One failure opens the circuit and a zero cooldown makes it half-open at once.
_PROBE_POLICY = HealthPolicy(allowed_fails=1, cooldown=0.0)


async def _half_open(deployment: Deployment) -> Circuit:
    await health_failure(deployment, policy=_PROBE_POLICY, forced=0)
    usable, circuits, _ = await health_available((deployment,))
    assert usable == [deployment]
    assert circuits[deployment.id].effective(time.time()) == HALF_OPEN
    return circuits[deployment.id]


def test_only_one_request_probes_a_half_open_deployment(tag) -> None:
    deployment = Deployment(id=f"{tag}:d", model_name="g", provider="openai", upstream_model="d")
    policy = _PROBE_POLICY

    async def scenario() -> list[bool]:
        circuit = await _half_open(deployment)
        return [
            await health_probe_claim(deployment, circuit=circuit, policy=policy) for _ in range(3)
        ]

    assert asyncio.run(scenario()) == [True, False, False]


def test_a_probe_given_back_may_be_claimed_by_another_request(tag) -> None:
    deployment = Deployment(id=f"{tag}:d", model_name="g", provider="openai", upstream_model="d")
    policy = _PROBE_POLICY

    async def scenario() -> list[bool]:
        circuit = await _half_open(deployment)
        claims = [await health_probe_claim(deployment, circuit=circuit, policy=policy)]
        await health_probe_release(deployment, circuit=circuit)
        for _ in range(2):
            claims.append(await health_probe_claim(deployment, circuit=circuit, policy=policy))
        return claims

    assert asyncio.run(scenario()) == [True, True, False]


@pytest.mark.skipif(not settings.REDIS_URL, reason="circuits are shared across processes via Redis")
def test_two_processes_see_the_same_circuit(tag) -> None:
    deployment = Deployment(
        id=f"{tag}:shared", model_name="g", provider="openai", upstream_model="s"
    )
    script = (
        "import asyncio, django, sys\n"
        "django.setup()\n"
        "from gateway.health import HealthPolicy, health_failure\n"
        "from providers.base import Deployment\n"
        "d = Deployment(id=sys.argv[1], model_name='g', provider='openai', upstream_model='s')\n"
        "policy = HealthPolicy(allowed_fails=1, cooldown=60)\n"
        "asyncio.run(health_failure(d, policy=policy, forced=0))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ogem_site.settings.test"}
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "-c", script, deployment.id], check=True, cwd=root, env=env, timeout=60
    )

    async def read() -> tuple[list[Deployment], dict[str, Circuit]]:
        usable, circuits, _ = await health_available((deployment,))
        return usable, circuits

    usable, circuits = asyncio.run(read())
    assert usable == []
    assert circuits[deployment.id].state == OPEN
    assert 55 <= circuits[deployment.id].open_until - time.time() <= 60
