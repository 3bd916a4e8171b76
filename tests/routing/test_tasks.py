"""The active health check (Celery beat): probes deployments whose circuit is not closed."""

from __future__ import annotations

import asyncio

from gateway.health import CLOSED, OPEN, HealthPolicy, health_failure, health_status
from gateway.tasks import routing_health_check
from tests.routing.conftest import served_by


def test_health_check_recovers_the_healthy_and_keeps_the_dead_open(
    openai_emulator, install_deployments, deployment
) -> None:
    alive = deployment("alive")
    dead = deployment("dead", api_base="http://127.0.0.1:9/v1")
    untouched = deployment("untouched")
    install_deployments(alive, dead, untouched)
    policy = HealthPolicy(allowed_fails=1, cooldown=300)
    for broken in (alive, dead):
        asyncio.run(health_failure(broken, policy=policy, forced=0))

    counts = routing_health_check.apply().get()  # runs the task body here, as a worker would

    assert counts == {"checked": 2, "recovered": 1, "failed": 1}
    states = {s["deployment"]: s["state"] for s in health_status([alive, dead, untouched])}
    assert states == {alive.id: CLOSED, dead.id: OPEN, untouched.id: CLOSED}
    assert served_by(openai_emulator) == ["alive"]  # closed deployments are not probed
    probe = openai_emulator.last.json
    assert probe["max_tokens"] == 1
