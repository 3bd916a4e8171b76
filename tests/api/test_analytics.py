"""/api/v1/analytics/*: performance, usage, cache and insights from a seeded request log, with
exact figures through the API and the selectors, scoped by role (docs/analytics.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from billing.analytics import (
    analytics_deployments_set,
    analytics_performance_get,
    analytics_range_check,
    insight_budget_burn_list,
    insight_cheaper_model_list,
    insight_unused_key_list,
)
from billing.models import Budget, RequestLog
from keys.models import VirtualKey
from keys.services import key_create
from providers.base import Deployment
from tenants.selectors import principal_for_user, proxy_admin_principal
from tests.api.conftest import Tenant, World
from tests.factories import RequestLogFactory

PERF = "/api/v1/analytics/performance"
USAGE = "/api/v1/analytics/usage"
CACHE = "/api/v1/analytics/cache"
INSIGHTS = "/api/v1/analytics/insights"
HOURS = {"start": "2026-03-01T10:00:00Z", "end": "2026-03-01T12:00:00Z", "bucket": "hour"}
DAY = {"start": "2026-03-01", "end": "2026-03-02"}


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, 1, hour, minute, tzinfo=UTC)


def _served(
    name: str, upstream: str, *, organization_id: int | None = None, **info: Any
) -> Deployment:
    return Deployment(
        id=f"config:{name}:0",
        model_name=name,
        provider="openai",
        upstream_model=upstream,
        organization_id=organization_id,
        params={"model_info": {"mode": "chat", **info}},
    )


@pytest.fixture
def served(world: World) -> Iterator[None]:
    """What the gateway would serve: list prices from the shipped table (USD per 1M tokens)."""
    tools = {"supports_function_calling": True, "max_input_tokens": 128000}
    deployments = (
        _served("gpt-big", "gpt-4o", **tools),  # 2.50 / 10.00
        _served("gpt-mid", "gpt-4.1-mini", **tools),  # 0.40 / 1.60
        _served("gpt-small", "gpt-4o-mini", **tools),  # 0.15 / 0.60
        _served("no-tools", "gpt-4.1-nano"),  # 0.10 / 0.40, lacks function calling
        _served("short", "gpt-5-nano", supports_function_calling=True, max_input_tokens=50),
        _served("b-only", "gpt-4.1-nano", organization_id=world.b.organization.pk, **tools),
        Deployment(
            id="config:embed:0",
            model_name="embed",
            provider="openai",
            upstream_model="text-embedding-3-small",
            params={"model_info": {"mode": "embedding"}},
        ),
    )
    analytics_deployments_set(lambda: deployments)
    yield
    from gateway.registry import registry_get

    analytics_deployments_set(lambda: tuple(registry_get().by_id.values()))


def _request(tenant: Tenant, **fields: Any) -> RequestLog:
    defaults = {
        "organization_id": tenant.organization.pk,
        "team_id": tenant.team.pk,
        "key_id": tenant.team_key.pk,
        "model": "gpt-big",
        "provider": "openai",
    }
    return RequestLogFactory(**{**defaults, **fields})


@pytest.fixture
def logs(world: World, served: None) -> World:
    a, b = world.a, world.b
    # Tenant A, team, 10:00-11:00: five successes at gpt-4o's price, three of them streams.
    for minute, latency, ttft in [
        (1, 100, 50),
        (2, 200, 70),
        (3, 300, 90),
        (4, 400, None),
        (5, 1000, None),
    ]:
        _request(
            a,
            created_at=_at(10, minute),
            latency_ms=latency,
            ttft_ms=ttft,
            stream=ttft is not None,
            prompt_tokens=100,
            completion_tokens=50,
            cost=Decimal("0.00075"),
        )
    _request(a, created_at=_at(10, 30), status_code=502, latency_ms=5000)  # upstream failure
    # A refusal (429) before any deployment was chosen, 11:00-12:00.
    _request(a, created_at=_at(11, 30), status_code=429, deployment="", provider="")
    # Neither performance nor the cheaper-model insight counts a cache hit or a batch line.
    _request(
        a,
        created_at=_at(10, 40),
        cache_hit=True,
        cache_result="hit",
        latency_ms=1,
        prompt_tokens=100,
        completion_tokens=50,
        cache_saved_cost=Decimal("0.00075"),
    )
    _request(
        a,
        created_at=_at(13),
        batch_id="batch_1",
        prompt_tokens=100,
        completion_tokens=50,
        cost=Decimal("0.000375"),
    )
    # Tenant A's other team, 13:00: two long requests (only gpt-big and gpt-mid allowed).
    a.other_team.allowed_models = ["gpt-big", "gpt-mid"]
    a.other_team.save(update_fields=["allowed_models"])
    for minute in (1, 2):
        _request(
            a,
            team_id=a.other_team.pk,
            key_id=None,
            created_at=_at(13, minute),
            latency_ms=800,
            prompt_tokens=1000,
            completion_tokens=1000,
            cost=Decimal("0.0125"),
        )
    # Tenant B: one slow request (never in A's figures); B alone may use `b-only`.
    _request(
        b,
        created_at=_at(10, 10),
        latency_ms=99999,
        prompt_tokens=100,
        completion_tokens=100,
        cost=Decimal("0.00125"),
    )
    return world


def _figures(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: row[name] for name in names}


def test_performance_per_model_and_hour_for_the_org_admin(logs: World) -> None:
    body = logs.clients["org_admin"].get(PERF, HOURS).json()
    assert body["buckets"] == ["2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"]
    (row,) = body["results"]
    assert row["model"] == "gpt-big"
    assert row["total"] == {
        "requests": 7,
        "errors": 1,
        "client_errors": 1,
        "error_rate": 0.1429,
        "latency_p50_ms": 300.0,
        "latency_p95_ms": 880.0,  # 400 + 0.8 * (1000 - 400)
        "ttft_p50_ms": 70.0,
        "ttft_p95_ms": 88.0,  # 70 + 0.9 * (90 - 70)
        "requests_per_minute": round(7 / 120, 4),
        "tokens_per_second": round(750 / 7200, 4),
        "output_tokens_per_second": 125.0,  # 250 tokens in 2,000 ms
        "prompt_tokens": 500,
        "completion_tokens": 250,
    }
    first, second = row["series"]
    assert first["bucket"] == "2026-03-01T10:00:00Z"
    assert _figures(first, "requests", "errors", "error_rate", "latency_p50_ms") == {
        "requests": 6,
        "errors": 1,
        "error_rate": 0.1667,
        "latency_p50_ms": 300.0,
    }
    assert first["requests_per_minute"] == 0.1
    assert _figures(second, "requests", "client_errors", "error_rate", "latency_p50_ms") == {
        "requests": 1,
        "client_errors": 1,
        "error_rate": 0.0,
        "latency_p50_ms": None,
    }
    assert body["total"]["latency_p95_ms"] == 880.0
    assert body["other_groups"] == 0


def test_performance_per_deployment_leaves_out_requests_without_one(logs: World) -> None:
    body = logs.clients["org_admin"].get(PERF, {**HOURS, "group_by": "deployment"}).json()
    (row,) = body["results"]
    assert (row["deployment"], row["provider"], row["model"]) == (
        "config:gpt-big:0",
        "openai",
        "gpt-big",
    )
    assert _figures(row["total"], "requests", "errors", "client_errors") == {
        "requests": 6,
        "errors": 1,
        "client_errors": 0,
    }


def test_master_sees_every_tenant_and_the_selector_agrees(logs: World) -> None:
    body = logs.clients["master"].get(PERF, HOURS).json()
    (row,) = body["results"]
    assert row["total"]["requests"] == 8
    assert row["total"]["latency_p50_ms"] == 350.0  # 100, 200, 300, 400, 1000, 99999
    span = analytics_range_check(start=_at(10), end=_at(12), bucket="hour", now=_at(12))
    selected = analytics_performance_get(principal=proxy_admin_principal(), span=span)
    assert selected["results"][0]["total"] == row["total"]


def test_tenant_b_admin_sees_only_tenant_b(logs: World) -> None:
    from tenants.models import Role
    from tests.api.conftest import _member

    admin_b = _member(
        username="org-admin-b", organization=logs.b.organization, team=None, role=Role.ORG_ADMIN
    )
    principal = principal_for_user(user=admin_b)
    span = analytics_range_check(start=_at(10), end=_at(12), bucket="hour")
    (row,) = analytics_performance_get(principal=principal, span=span)["results"]
    assert row["total"]["requests"] == 1
    assert row["total"]["latency_p50_ms"] == 99999.0


def test_team_admin_and_member_scopes(logs: World) -> None:
    team_admin = logs.clients["team_admin"].get(USAGE, {**DAY, "group_by": "team"}).json()
    assert [row["team"] for row in team_admin["results"]] == [logs.a.team.pk]
    member = logs.clients["member"].get(PERF, HOURS).json()
    assert member["results"] == [] and member["total"]["requests"] == 0


def test_usage_per_team_and_model(logs: World) -> None:
    body = logs.clients["org_admin"].get(USAGE, {**DAY, "group_by": "team"}).json()
    assert body["buckets"] == ["2026-03-01T00:00:00Z"]
    assert [
        (row["team_name"], row["total"]["requests"], row["total"]["spend"])
        for row in body["results"]
    ] == [("Other a", 2, "0.02500000"), ("Team a", 9, "0.00412500")]
    assert body["results"][1]["series"] == [
        {
            "bucket": "2026-03-01T00:00:00Z",
            "requests": 9,
            "prompt_tokens": 700,
            "completion_tokens": 350,
            "total_tokens": 1050,
            "spend": "0.00412500",
        }
    ]
    assert body["total"]["spend"] == "0.02912500"
    by_model = logs.clients["master"].get(USAGE, {**DAY, "group_by": "model"}).json()
    assert [(row["model"], row["total"]["spend"]) for row in by_model["results"]] == [
        ("gpt-big", "0.03037500")
    ]


def test_cache_hit_rate_and_savings(logs: World) -> None:
    _request(logs.a, created_at=_at(11, 5), cache_result="miss", cost=Decimal("0.00075"))
    body = logs.clients["org_admin"].get(CACHE, HOURS).json()
    assert [(row["hits"], row["misses"], row["hit_rate"]) for row in body["series"]] == [
        (1, 0, 1.0),
        (0, 1, 0.0),
    ]
    assert body["total"]["hit_rate"] == 0.5
    assert body["total"]["saved_cost"] == "0.00075000"
    assert [row["model"] for row in body["models"]] == ["gpt-big"]


def test_cheaper_models_per_team(logs: World) -> None:
    body = logs.clients["org_admin"].get(INSIGHTS, DAY).json()
    cheaper = body["cheaper_models"]
    rows = [
        _figures(
            row, "team", "model", "requests", "cost", "cheaper_model", "estimated_cost", "saving"
        )
        for row in cheaper["results"]
    ]
    assert rows == [
        {  # gpt-small is not on this team's list: gpt-mid is its cheapest
            "team": logs.a.other_team.pk,
            "model": "gpt-big",
            "requests": 2,
            "cost": "0.02500000",
            "cheaper_model": "gpt-mid",
            "estimated_cost": "0.00400000",  # 2,000 x 0.40 + 2,000 x 1.60 per 1M
            "saving": "0.02100000",
        },
        {  # `short` is cheaper but its context is too small; `no-tools` lacks tools;
            # `b-only` is another organization's
            "team": logs.a.team.pk,
            "model": "gpt-big",
            "requests": 5,
            "cost": "0.00375000",
            "cheaper_model": "gpt-small",
            "estimated_cost": "0.00022500",  # 500 x 0.15 + 250 x 0.60 per 1M
            "saving": "0.00352500",
        },
    ]
    assert cheaper["total_saving"] == "0.02452500"
    master = logs.clients["master"].get(INSIGHTS, DAY).json()["cheaper_models"]
    b_row = next(row for row in master["results"] if row["team"] == logs.b.team.pk)
    assert (b_row["cheaper_model"], b_row["saving"]) == ("b-only", "0.00120000")
    selected = insight_cheaper_model_list(
        principal=proxy_admin_principal(),
        span=analytics_range_check(start=_at(0), end=_at(0) + timedelta(days=1)),
    )
    assert selected["total_saving"] == master["total_saving"] == "0.02572500"


def _age(key: VirtualKey, days: int) -> None:
    VirtualKey.objects.filter(pk=key.pk).update(created_at=timezone.now() - timedelta(days=days))


def test_unused_keys(logs: World) -> None:
    now = timezone.now()
    a = logs.a
    _age(a.team_key, 400)  # last used 2026-03-01 (the seeded log)
    never = key_create(name="never", team=a.team).key
    _age(never, 40)
    busy = key_create(name="busy", team=a.team).key
    _age(busy, 60)
    _request(a, key_id=busy.pk, created_at=now - timedelta(days=2))
    young = key_create(name="young", team=a.team).key
    _age(young, 10)
    revoked = key_create(name="revoked", team=a.team).key
    _age(revoked, 90)
    VirtualKey.objects.filter(pk=revoked.pk).update(revoked_at=now)
    _age(logs.b.team_key, 400)

    body = logs.clients["org_admin"].get(INSIGHTS, DAY).json()
    found = {row["name"]: row["last_used_at"] for row in body["unused_keys"]}
    assert found == {"ci-a": "2026-03-01T13:00:00Z", "never": None}
    master = insight_unused_key_list(principal=proxy_admin_principal(), now=now)
    assert {row["name"] for row in master} == {"ci-a", "never", "ci-b"}
    shorter = logs.clients["org_admin"].get(INSIGHTS, {**DAY, "unused_days": 1}).json()
    assert "busy" in {row["name"] for row in shorter["unused_keys"]}


def test_budget_burn_down_and_exhaustion(logs: World) -> None:
    now = timezone.now()
    a, b = logs.a, logs.b
    Budget.objects.filter(pk=a.team_budget.pk).update(
        max_budget=Decimal("10"),
        period_started_at=now - timedelta(days=10),
        reset_at=now + timedelta(days=20),
    )
    _request(a, created_at=now - timedelta(days=8), cost=Decimal("1"))  # in the period only
    for days_ago, cost in ((1, "3"), (3, "2.5"), (6, "1.5")):  # 7 in the last 7 days
        _request(a, created_at=now - timedelta(days=days_ago), cost=Decimal(cost))
    Budget.objects.filter(pk=b.team_budget.pk).update(
        max_budget=Decimal("1"), period_started_at=now - timedelta(days=2)
    )
    _request(b, created_at=now - timedelta(hours=1), cost=Decimal("2"))

    (row,) = insight_budget_burn_list(
        principal=principal_for_user(user=logs.users["org_admin"]), now=now
    )
    assert _figures(row, "scope", "team", "max_budget", "spend", "remaining") == {
        "scope": "team",
        "team": a.team.pk,
        "max_budget": "10.00000000",
        "spend": "8.00000000",
        "remaining": "2.00000000",
    }
    assert row["daily_burn_rate"] == "1.00000000"
    assert row["exhausted"] is False
    expected = now + timedelta(days=2)
    assert row["projected_exhaustion_at"] == expected.isoformat().replace("+00:00", "Z")

    body = logs.clients["org_admin"].get(INSIGHTS, DAY).json()
    (api_row,) = body["budgets"]
    assert api_row["daily_burn_rate"] == "1.00000000" and api_row["spend"] == "8.00000000"
    projected = datetime.fromisoformat(api_row["projected_exhaustion_at"])
    assert abs((projected - expected).total_seconds()) < 60

    everything = insight_budget_burn_list(principal=proxy_admin_principal(), now=now)
    b_row = next(row for row in everything if row["team"] == b.team.pk)
    assert (b_row["exhausted"], b_row["remaining"], b_row["projected_exhaustion_at"]) == (
        True,
        "0.00000000",
        None,
    )
    # Reset before the money runs out: no exhaustion date.
    Budget.objects.filter(pk=a.team_budget.pk).update(reset_at=now + timedelta(days=1))
    (late,) = insight_budget_burn_list(
        principal=principal_for_user(user=logs.users["org_admin"]), now=now
    )
    assert late["projected_exhaustion_at"] is None


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (PERF, {"start": "yesterday"}, "start"),
        (PERF, {"end": "2026-13-01"}, "end"),
        (PERF, {"start": "2026-03-02", "end": "2026-03-01"}, "end"),
        (PERF, {"start": "2026-01-01", "end": "2026-06-01"}, "start"),
        (USAGE, {"start": "2026-01-01", "end": "2026-03-01", "bucket": "hour"}, "start"),
        (PERF, {"bucket": "minute"}, "bucket"),
        (PERF, {"group_by": "team"}, "group_by"),
        (USAGE, {"group_by": "deployment"}, "group_by"),
        (CACHE, {"team": "x"}, "team"),
        (INSIGHTS, {"unused_days": "0"}, "unused_days"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    world: World, path: str, params: dict[str, str], field: str
) -> None:
    response = world.clients["master"].get(path, params)
    assert response.status_code == 400
    assert field in response.json()


def test_anonymous_callers_are_refused(world: World) -> None:
    from rest_framework.test import APIClient

    assert APIClient().get(PERF).status_code in (401, 403)
