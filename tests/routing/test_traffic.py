"""Canary splits between model groups and shadow traffic, through the live server."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

import pytest

from gateway.shadow import shadow_records, shadow_reset, shadow_spent
from tests.routing.conftest import served_by


@pytest.fixture
def stable_and_canary(openai_emulator, install_deployments, deployment):
    install_deployments(
        deployment("stable", model="stable"),
        deployment("canary", model="canary"),
        deployment("gpt-4o-mini", model="candidate"),
    )
    shadow_reset()
    yield openai_emulator
    shadow_reset()


def test_canary_split_sends_its_percentage(stable_and_canary, router_settings, chat) -> None:
    router_settings(traffic_split={"stable": (("canary", 20.0),)})
    for _ in range(200):
        assert chat("stable").status_code == 200
    picks = Counter(served_by(stable_and_canary))
    assert sum(picks.values()) == 200
    assert 20 <= picks["canary"] <= 60  # 40 expected; a wide band for 200 draws


def test_a_failing_canary_falls_back_to_the_stable_group(
    stable_and_canary, router_settings, chat
) -> None:
    router_settings(traffic_split={"stable": (("canary", 100.0),)})
    stable_and_canary.inject(status=500)
    response = chat("stable")
    assert response.status_code == 200
    assert served_by(stable_and_canary) == ["canary", "stable"]
    assert response.headers["x-ogem-model-group"] == "stable"


def _wait_for(count: int) -> list[dict]:
    deadline = time.monotonic() + 30
    while len(shadow_records()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return shadow_records()


def test_shadow_mirrors_in_the_background_and_records_both(
    stable_and_canary, router_settings, chat
) -> None:
    router_settings(shadow={"stable": ("candidate", 100.0, None)})
    stable_and_canary.model_delays["gpt-4o-mini"] = 4.0
    started = time.monotonic()
    response = chat("stable")
    assert response.status_code == 200
    assert time.monotonic() - started < 3.0  # the caller never waits for the mirror's 4 s
    records = _wait_for(1)
    assert len(records) == 1
    record = records[0]
    assert (record["model"], record["shadow_model"]) == ("stable", "candidate")
    assert (record["primary_status"], record["shadow_status"]) == (200, 200)
    assert record["shadow_seconds"] >= 4.0
    assert record["primary_tokens"] > 0 and record["shadow_tokens"] > 0
    assert Decimal(record["shadow_cost"]) > 0
    assert sorted(served_by(stable_and_canary)) == ["gpt-4o-mini", "stable"]
    mirrored = next(r for r in stable_and_canary.requests if r.json["model"] == "gpt-4o-mini")
    assert mirrored.json["stream"] is False


def test_a_failing_shadow_never_affects_the_caller(
    stable_and_canary, router_settings, chat
) -> None:
    router_settings(shadow={"stable": ("candidate", 100.0, None)})
    stable_and_canary.inject()  # the primary succeeds ...
    stable_and_canary.inject(status=500)  # ... and its mirror fails
    response = chat("stable")
    assert response.status_code == 200
    record = _wait_for(1)[0]
    assert (record["primary_status"], record["shadow_status"]) == (200, 502)


def test_shadow_stops_at_its_budget_cap(stable_and_canary, router_settings, chat) -> None:
    router_settings(shadow={"stable": ("candidate", 100.0, 0.0000001)})
    assert chat("stable").status_code == 200
    _wait_for(1)
    assert shadow_spent("candidate") > Decimal("0.0000001")
    assert chat("stable").status_code == 200
    records = _wait_for(2)
    assert [r["shadow_status"] for r in records] == [200, 0]  # the second was over budget
    assert Counter(served_by(stable_and_canary))["gpt-4o-mini"] == 1
