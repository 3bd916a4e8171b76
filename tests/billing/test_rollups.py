"""Daily rollups: closed days only, reruns never double-count, and /api/v1/spend reads them
(plus the raw log for days not rolled yet), grouped by every dimension, as JSON or CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import count

import pytest
from rest_framework.test import APIClient

from billing.models import RequestLog, UsageRollup, UsageRollupDay
from billing.rollups import rollup_day, rollups_run

pytestmark = pytest.mark.django_db

_ids = count()


def _log(
    day: int,
    *,
    hour: int = 12,
    cost: str = "1",
    model: str = "m1",
    key: int = 1,
    user: int | None = None,
    customer: str = "",
    tags: list[str] | None = None,
) -> RequestLog:
    return RequestLog.objects.create(
        request_id=f"r-{next(_ids)}",
        created_at=datetime(2026, 3, day, hour, 0, tzinfo=UTC),
        organization_id=10,
        team_id=20,
        key_id=key,
        user_id=user,
        end_customer=customer,
        endpoint="chat/completions",
        model=model,
        status_code=200,
        prompt_tokens=10,
        completion_tokens=5,
        total_tokens=15,
        cost=Decimal(cost),
        tags=tags or [],
    )


@pytest.fixture
def march() -> None:
    _log(1, cost="1.5", user=7, customer="acme", tags=["prod", "search"])
    _log(1, hour=23, cost="0.5", model="m2", key=2, tags=["prod"])
    _log(2, cost="2", user=7, customer="acme")
    _log(3, cost="4", key=2, user=8, tags=["search"])  # day 3 stays open below


def _totals() -> dict[str, object]:
    rows = UsageRollup.objects.filter(tag="")
    return {
        "rows": rows.count(),
        "requests": sum(r.requests for r in rows),
        "spend": sum((r.spend for r in rows), Decimal("0")),
        "tagged": sorted(
            (str(r.day), r.tag, r.requests) for r in UsageRollup.objects.exclude(tag="")
        ),
    }


def test_closed_days_only_and_reruns_leave_totals_unchanged(march) -> None:
    # 00:20 on March 3rd: March 2nd ended 20 minutes ago, inside the 30 minute grace.
    assert rollups_run(now=datetime(2026, 3, 3, 0, 20, tzinfo=UTC)) == [date(2026, 3, 1)]
    assert rollups_run(now=datetime(2026, 3, 3, 0, 45, tzinfo=UTC)) == [date(2026, 3, 2)]
    assert rollups_run(now=datetime(2026, 3, 3, 0, 50, tzinfo=UTC)) == []
    before = _totals()
    assert before == {
        "rows": 3,
        "requests": 3,
        "spend": Decimal("4"),
        "tagged": [
            ("2026-03-01", "prod", 1),
            ("2026-03-01", "prod", 1),
            ("2026-03-01", "search", 1),
        ],
    }
    for _ in range(3):
        assert rollup_day(day=date(2026, 3, 1)) == 2
        assert rollup_day(day=date(2026, 3, 2)) == 1
    assert _totals() == before
    assert UsageRollupDay.objects.get(day=date(2026, 3, 1)).requests == 2

    # A request drained late into a rolled day: the rerun replaces the day, it does not add.
    _log(2, hour=22, cost="3")
    assert rollup_day(day=date(2026, 3, 2)) == 2
    after = _totals()
    assert after["requests"] == 4 and after["spend"] == Decimal("7")


def test_spend_reads_rollups_then_the_log(march, master_key) -> None:
    rollups_run(now=datetime(2026, 3, 3, 1, 0, tzinfo=UTC))  # March 1st and 2nd rolled
    # Proof that rolled days come from rollups: change the log under a rolled day.
    RequestLog.objects.filter(created_at__day=1).update(cost=Decimal("100"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {master_key}")

    def spend(**params: str) -> dict:
        response = client.get("/api/v1/spend", params)
        assert response.status_code == 200, response.content
        return response.json()

    by_day = spend(group_by="day")
    assert [(r["day"], r["spend"], r["requests"]) for r in by_day["results"]] == [
        ("2026-03-01", "2.00000000", 2),
        ("2026-03-02", "2.00000000", 1),
        ("2026-03-03", "4.00000000", 1),
    ]
    assert by_day["total"] == {
        "spend": "8.00000000",
        "prompt_tokens": 40,
        "completion_tokens": 20,
        "total_tokens": 60,
        "requests": 4,
    }
    by_tag = spend(group_by="tag")
    assert [(r["tag"], r["spend"], r["requests"]) for r in by_tag["results"]] == [
        ("prod", "2.00000000", 2),
        ("search", "5.50000000", 2),
    ]
    assert by_tag["total"]["requests"] == 4  # each request once, tagged or not
    by_user = spend(group_by="user")
    assert [(r["user"], r["user_name"], r["spend"]) for r in by_user["results"]] == [
        (7, None, "3.50000000"),  # no such users (any more): no name
        (8, None, "4.00000000"),
        (None, None, "0.50000000"),
    ]
    by_customer = spend(group_by="end_customer", start="2026-03-02")
    assert [(r["end_customer"], r["spend"]) for r in by_customer["results"]] == [
        ("acme", "2.00000000"),
        (None, "4.00000000"),  # no end customer: null, listed last like every absent group
    ]
    assert by_customer["start"] == "2026-03-02"
    by_key = spend(group_by="key", start="2026-03-01", end="2026-03-01", model="m1")
    assert [(r["key"], r["spend"]) for r in by_key["results"]] == [(1, "1.50000000")]
    assert by_key["end"] == "2026-03-01"

    exported = client.get("/api/v1/spend", {"group_by": "model", "format": "csv"})
    assert exported.status_code == 200
    assert exported["Content-Type"] == "text/csv; charset=utf-8"
    assert exported["Content-Disposition"] == 'attachment; filename="spend-model.csv"'
    assert list(csv.reader(io.StringIO(exported.content.decode()))) == [
        ["model", "spend", "prompt_tokens", "completion_tokens", "total_tokens", "requests"],
        ["m1", "7.50000000", "30", "15", "45", "3"],
        ["m2", "0.50000000", "10", "5", "15", "1"],
        ["total", "8.00000000", "40", "20", "60", "4"],
    ]
