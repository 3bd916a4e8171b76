"""GET /api/v1/spend: totals of billing.RequestLog in the caller's scope."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from itertools import count

import pytest

from billing.models import RequestLog
from tests.api.conftest import Tenant, World

_ids = count()


def _log(
    tenant: Tenant, *, day: int, model: str, cost: str, prompt: int, completion: int
) -> RequestLog:
    return RequestLog.objects.create(
        request_id=f"req-{next(_ids)}",
        created_at=datetime(2026, 3, day, 12, 0, tzinfo=UTC),
        organization_id=tenant.organization.pk,
        team_id=tenant.team.pk,
        key_id=tenant.team_key.pk,
        endpoint="chat/completions",
        model=model,
        provider="mock",
        status_code=200,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        cost=Decimal(cost),
    )


@pytest.fixture
def logs(world: World) -> World:
    _log(world.a, day=1, model="mock-chat", cost="0.25", prompt=10, completion=5)
    _log(world.a, day=2, model="mock-chat", cost="0.50", prompt=20, completion=10)
    _log(world.a, day=2, model="mock-embed", cost="0.125", prompt=8, completion=0)
    _log(world.b, day=1, model="mock-chat", cost="7", prompt=100, completion=100)
    return world


def test_org_admin_sees_only_their_organization(logs: World) -> None:
    response = logs.clients["org_admin"].get("/api/v1/spend", {"group_by": "organization"})
    assert response.status_code == 200
    assert response.json() == {
        "group_by": "organization",
        "start": None,
        "end": None,
        "results": [
            {
                "organization": logs.a.organization.pk,
                "organization_name": "Org a",
                "spend": "0.87500000",
                "prompt_tokens": 38,
                "completion_tokens": 15,
                "total_tokens": 53,
                "requests": 3,
            }
        ],
        "total": {
            "spend": "0.87500000",
            "prompt_tokens": 38,
            "completion_tokens": 15,
            "total_tokens": 53,
            "requests": 3,
        },
    }


def test_master_groups_by_every_dimension(logs: World) -> None:
    client = logs.clients["master"]
    by_team = client.get("/api/v1/spend", {"group_by": "team"}).json()["results"]
    assert {row["team"]: row["spend"] for row in by_team} == {
        logs.a.team.pk: "0.87500000",
        logs.b.team.pk: "7.00000000",
    }
    by_key = client.get("/api/v1/spend", {"group_by": "key"}).json()["results"]
    assert {row["key"]: row["requests"] for row in by_key} == {
        logs.a.team_key.pk: 3,
        logs.b.team_key.pk: 1,
    }
    by_model = client.get("/api/v1/spend", {"group_by": "model"}).json()["results"]
    assert [(row["model"], row["spend"], row["total_tokens"]) for row in by_model] == [
        ("mock-chat", "7.75000000", 245),
        ("mock-embed", "0.12500000", 8),
    ]
    by_day = client.get("/api/v1/spend", {"group_by": "day"}).json()["results"]
    assert [(row["day"], row["spend"]) for row in by_day] == [
        ("2026-03-01", "7.25000000"),
        ("2026-03-02", "0.62500000"),
    ]


def test_start_and_end_are_inclusive_days(logs: World) -> None:
    client = logs.clients["org_admin"]
    only_second = client.get(
        "/api/v1/spend", {"group_by": "day", "start": "2026-03-02", "end": "2026-03-02"}
    ).json()
    assert only_second["start"] == "2026-03-02"
    assert [(row["day"], row["requests"]) for row in only_second["results"]] == [("2026-03-02", 2)]
    until_first = client.get("/api/v1/spend", {"group_by": "day", "end": "2026-03-01"}).json()
    assert until_first["total"]["spend"] == "0.25000000"


def test_members_see_only_their_keys_spend(logs: World) -> None:
    # The member owns no key that spent, and cannot read the team's key.
    body = logs.clients["member"].get("/api/v1/spend", {"group_by": "key"}).json()
    assert body["results"] == []
    assert body["total"]["requests"] == 0
    # A team admin reads the whole team.
    team = logs.clients["team_admin"].get("/api/v1/spend", {"group_by": "team"}).json()
    assert [(row["team"], row["requests"]) for row in team["results"]] == [(logs.a.team.pk, 3)]


def test_filter_on_foreign_ids_finds_nothing(logs: World) -> None:
    body = (
        logs.clients["org_admin"]
        .get("/api/v1/spend", {"group_by": "key", "organization": logs.b.organization.pk})
        .json()
    )
    assert body["results"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"group_by": "planet"},
        {"start": "yesterday"},
        {"start": "2026-03-05", "end": "2026-03-01"},
        {"team": "abc"},
    ],
)
def test_bad_parameters_are_400(logs: World, params: dict[str, str]) -> None:
    assert logs.clients["master"].get("/api/v1/spend", params).status_code == 400


def test_money_is_a_decimal_string_and_rows_are_named(world: World) -> None:
    """Tiny costs come back as "0.00002706", never 2.706e-05; key, team and organization rows
    carry names; requests without a virtual key are the master key's; no end customer is null."""
    _log(world.a, day=4, model="mock-chat", cost="0.00002706", prompt=3, completion=2)
    RequestLog.objects.create(
        request_id="master-1",
        created_at=datetime(2026, 3, 4, 13, 0, tzinfo=UTC),
        endpoint="chat/completions",
        model="mock-chat",
        status_code=200,
        cost=Decimal("0.00000006"),
    )
    client = world.clients["master"]
    by_key = client.get("/api/v1/spend", {"group_by": "key"}).json()
    assert [(r["key"], r["key_name"], r["spend"]) for r in by_key["results"]] == [
        (world.a.team_key.pk, "ci-a", "0.00002706"),
        (None, "master key", "0.00000006"),
    ]
    assert by_key["total"]["spend"] == "0.00002712"
    by_team = client.get("/api/v1/spend", {"group_by": "team"}).json()["results"]
    assert [(r["team"], r["team_name"]) for r in by_team] == [
        (world.a.team.pk, "Team a"),
        (None, None),
    ]
    by_org = client.get("/api/v1/spend", {"group_by": "organization"}).json()["results"]
    assert [r["organization_name"] for r in by_org] == ["Org a", None]
    by_customer = client.get("/api/v1/spend", {"group_by": "end_customer"}).json()["results"]
    assert [(r["end_customer"], r["requests"]) for r in by_customer] == [(None, 2)]
    assert "e-" not in client.get("/api/v1/spend", {"group_by": "model"}).content.decode()

    exported = client.get("/api/v1/spend", {"group_by": "key", "format": "csv"})
    assert list(csv.reader(io.StringIO(exported.content.decode()))) == [
        [
            "key",
            "key_name",
            "spend",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "requests",
        ],
        [str(world.a.team_key.pk), "ci-a", "0.00002706", "3", "2", "5", "1"],
        ["", "master key", "0.00000006", "0", "0", "0", "1"],
        ["total", "", "0.00002712", "3", "2", "5", "2"],
    ]


def test_schema_says_money_is_a_decimal_string(world: World) -> None:
    schema = world.clients["master"].get("/api/v1/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]
    money = {"type": "string", "format": "decimal"}
    for name, field in [
        ("SpendTotals", "spend"),
        ("SpendRow", "spend"),
        ("Key", "spend"),
        ("Key", "total_spend"),
        ("Key", "max_budget"),
        ("Budget", "spend"),
        ("Budget", "max_budget"),
    ]:
        described = components[name]["properties"][field]
        assert {k: described[k] for k in money} == money, (name, field, described)
    rows = components["Spend"]["properties"]["results"]["items"]
    assert rows == {"$ref": "#/components/schemas/SpendRow"}
    assert components["SpendRow"]["properties"]["key_name"]["nullable"] is True
