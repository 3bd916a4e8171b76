"""Health checks of Realtime deployments open a session (session.created) instead of calling a
chat endpoint they do not serve, so a Realtime upstream's circuit can close again."""

from __future__ import annotations

import asyncio

import httpx

from gateway.health import health_available, health_check_run, health_failure, health_policy
from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.live import free_port


def test_the_models_health_check_opens_a_realtime_session(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, master_key
) -> None:
    dead = Deployment(
        id="test:voice-dead",
        model_name="voice-dead",
        provider="openai",
        upstream_model="gpt-realtime",
        api_base=f"http://127.0.0.1:{free_port()}/v1",
        api_key=UPSTREAM_KEY,
    )
    emulator = realtime_model(dead)
    answer = httpx.get(
        f"{live_ogem.url}/api/v1/models/health",
        params={"timeout": "5"},
        headers={"Authorization": f"Bearer {master_key}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    healthy = {r["deployment"]: r for r in answer.json()["healthy_endpoints"]}
    unhealthy = {r["deployment"]: r for r in answer.json()["unhealthy_endpoints"]}
    assert healthy["test:voice"]["endpoint"] == "realtime"
    assert unhealthy["test:voice-dead"]["endpoint"] == "realtime"
    assert unhealthy["test:voice-dead"]["error"].startswith("503")
    [probe] = emulator.connections
    assert probe.events == []  # opened and closed: nothing billed upstream


def test_an_open_realtime_circuit_is_closed_by_the_background_check(  # type: ignore[no-untyped-def]
    realtime_model, settings
) -> None:
    settings.REDIS_URL = ""  # the in-process circuit store, in this test's event loop
    realtime_model()
    from gateway.registry import registry_get

    deployment = registry_get().by_id["test:voice"]

    async def scenario() -> tuple[int, int]:
        policy = health_policy()
        for _ in range(policy.allowed_fails + 1):
            await health_failure(deployment, policy=policy, forced=0.0)
        closed_before = len((await health_available((deployment,)))[0])
        await health_check_run()
        return closed_before, len((await health_available((deployment,)))[0])

    assert asyncio.run(scenario()) == (0, 1)
