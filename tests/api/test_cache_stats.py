"""GET /api/v1/cache/stats: response cache analytics from billing.RequestLog, scoped like
/api/v1/spend (the live end-to-end figures: tests/gateway/test_cache.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from itertools import count

import pytest

from billing.models import RequestLog
from tests.api.conftest import Tenant, World

_ids = count()


def _log(tenant: Tenant, *, day: int, result: str, saved: str | None = None) -> RequestLog:
    hit = result in ("hit", "semantic-hit")
    return RequestLog.objects.create(
        request_id=f"cache-{next(_ids)}",
        created_at=datetime(2026, 3, day, 12, 0, tzinfo=UTC),
        organization_id=tenant.organization.pk,
        team_id=tenant.team.pk,
        key_id=tenant.team_key.pk,
        endpoint="chat/completions",
        model="mock-chat",
        provider="" if hit else "mock",
        status_code=200,
        prompt_tokens=10,
        completion_tokens=5,
        total_tokens=15,
        cost=Decimal("0") if hit else Decimal("0.25"),
        cache_hit=hit,
        cache_result=result,
        cache_saved_cost=Decimal(saved) if saved is not None else None,
        cache_saved_tokens=15 if hit else None,
        cache_saved_latency_ms=120 if hit else None,
    )


@pytest.fixture
def logs(world: World) -> World:
    _log(world.a, day=1, result="miss")
    _log(world.a, day=1, result="hit", saved="0.25")
    _log(world.a, day=2, result="semantic-hit", saved="0.00002706")
    _log(world.a, day=2, result="bypass")
    _log(world.b, day=1, result="hit", saved="7")
    RequestLog.objects.create(  # no cache configured: not counted
        request_id="uncached",
        created_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
        organization_id=world.a.organization.pk,
        endpoint="chat/completions",
        model="mock-chat",
        status_code=200,
    )
    return world


def test_org_admin_sees_only_their_organization(logs: World) -> None:
    response = logs.clients["org_admin"].get("/api/v1/cache/stats", {"group_by": "organization"})
    assert response.status_code == 200
    totals = {
        "requests": 4,
        "hits": 2,
        "semantic_hits": 1,
        "misses": 1,
        "bypasses": 1,
        "hit_rate": 0.6667,
        "saved_cost": "0.25002706",
        "saved_tokens": 30,
        "saved_latency_ms": 240,
    }
    assert response.json() == {
        "group_by": "organization",
        "start": None,
        "end": None,
        "results": [
            {
                "organization": logs.a.organization.pk,
                "organization_name": "Org a",
                **totals,
            }
        ],
        "total": totals,
    }


def test_master_groups_by_day_team_key_and_model(logs: World) -> None:
    client = logs.clients["master"]
    by_day = client.get("/api/v1/cache/stats", {"group_by": "day"}).json()["results"]
    assert [(row["day"], row["hits"], row["misses"], row["saved_cost"]) for row in by_day] == [
        ("2026-03-01", 2, 1, "7.25000000"),
        ("2026-03-02", 1, 0, "0.00002706"),
    ]
    by_team = client.get("/api/v1/cache/stats", {"group_by": "team"}).json()["results"]
    assert {row["team"]: row["hits"] for row in by_team} == {logs.a.team.pk: 2, logs.b.team.pk: 1}
    by_key = client.get("/api/v1/cache/stats", {"group_by": "key"}).json()["results"]
    assert {row["key"]: row["key_name"] for row in by_key} == {
        logs.a.team_key.pk: "ci-a",
        logs.b.team_key.pk: "ci-b",
    }
    by_model = client.get("/api/v1/cache/stats", {"group_by": "model", "end": "2026-03-01"})
    assert [(row["model"], row["hits"]) for row in by_model.json()["results"]] == [("mock-chat", 2)]


def test_members_see_only_their_keys(logs: World) -> None:
    body = logs.clients["member"].get("/api/v1/cache/stats", {"group_by": "key"}).json()
    assert body["results"] == []
    assert body["total"]["hit_rate"] is None


@pytest.mark.parametrize(
    "params", [{"group_by": "tag"}, {"start": "2026-03-05", "end": "2026-03-01"}]
)
def test_bad_parameters_are_400(logs: World, params: dict[str, str]) -> None:
    assert logs.clients["master"].get("/api/v1/cache/stats", params).status_code == 400
