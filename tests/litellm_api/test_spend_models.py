"""LiteLLM's /spend/logs, /global/spend/report, /model/info, /model_group/info and health probes."""

from __future__ import annotations

from decimal import Decimal
from itertools import count

import httpx
import pytest
from django.utils import timezone

from billing.models import RequestLog
from keys.models import VirtualKey
from tests.api.conftest import World
from tests.live import LiveServer

_ids = count()


def _log(key: VirtualKey, *, cost: str, model: str = "mock-chat") -> RequestLog:
    return RequestLog.objects.create(
        request_id=f"litellm-spend-{next(_ids)}",
        created_at=timezone.now(),
        organization_id=key.organization_id,
        team_id=key.team_id,
        key_id=key.pk,
        endpoint="chat/completions",
        model=model,
        status_code=200,
        prompt_tokens=3,
        completion_tokens=4,
        total_tokens=7,
        cost=Decimal(cost),
    )


def test_spend_logs_in_litellm_fields_scoped_to_the_caller(world: World) -> None:
    mine = _log(world.a.team_key, cost="0.25")
    _log(world.b.team_key, cost="9")
    logs = world.clients["org_admin"].get("/spend/logs").json()
    assert [row["request_id"] for row in logs] == [mine.request_id]
    row = logs[0]
    assert row["api_key"] == str(world.a.team_key.pk)
    assert (row["spend"], row["total_tokens"], row["model"]) == (0.25, 7, "mock-chat")
    assert row["team_id"] == str(world.a.team.pk)
    assert {"startTime", "endTime", "call_type", "status"} <= set(row)
    by_key = world.clients["master"].get("/spend/logs", {"api_key": str(world.b.team_key.pk)})
    assert [item["spend"] for item in by_key.json()] == [9.0]
    other = world.clients["org_admin"].get("/spend/logs", {"api_key": str(world.b.team_key.pk)})
    assert other.status_code == 404
    assert world.clients["master"].get("/spend/logs", {"start_date": "soon"}).status_code == 400


def test_global_spend_report_by_team(world: World) -> None:
    _log(world.a.team_key, cost="1.5")
    _log(world.a.team_key, cost="0.5", model="other")
    _log(world.b.team_key, cost="9")
    report = world.clients["org_admin"].get("/global/spend/report").json()
    assert len(report) == 1
    (team,) = report[0]["teams"]
    assert (team["team_name"], team["total_spend"]) == ("Team a", 2.0)
    assert {item["model"]: item["spend"] for item in team["metadata"]} == {
        "mock-chat": 1.5,
        "other": 0.5,
    }
    assert world.clients["master"].get("/global/spend/report", {"group_by": "x"}).status_code == 400


def test_model_info_lists_the_callers_deployments(world: World) -> None:
    data = world.clients["org_admin"].get("/model/info").json()["data"]
    names = {row["model_name"] for row in data}
    assert "model-a" in names
    assert "model-b" not in names
    mock = next(row for row in data if row["model_name"] == "model-a")
    assert mock["litellm_params"]["model"] == "mock/model-a"
    assert world.clients["org_admin"].get("/v2/model/info").json()["data"] == data
    groups = world.clients["org_admin"].get("/model_group/info").json()["data"]
    assert {"model_group": "model-a", "providers": ["mock"]}.items() <= next(
        group for group in groups if group["model_group"] == "model-a"
    ).items()


@pytest.mark.live
def test_health_probes_as_litellm_names_them(live_ogem: LiveServer, master_key: str) -> None:
    alive = httpx.get(f"{live_ogem.url}/health/liveliness")
    assert (alive.status_code, alive.json()) == (200, "I'm alive!")
    ready = httpx.get(f"{live_ogem.url}/health/readiness")
    assert ready.status_code == 200
    assert (ready.json()["status"], ready.json()["db"]) == ("healthy", "connected")
    # Ogem's own probes are unchanged.
    assert httpx.get(f"{live_ogem.url}/health/live").json()["status"] == "ok"
    assert httpx.get(f"{live_ogem.url}/health/ready").json()["status"] in ("ok", "degraded")
    health = httpx.get(
        f"{live_ogem.url}/health",
        params={"model": "mock-chat"},
        headers={"Authorization": f"Bearer {master_key}"},
        timeout=30,
    )
    assert health.status_code == 200, health.text
    assert health.json()["healthy_count"] >= 1
    assert health.json()["unhealthy_count"] == 0
    assert httpx.get(f"{live_ogem.url}/health").status_code == 401
