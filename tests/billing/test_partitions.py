"""The request log partitioned by month on PostgreSQL; retention drops whole partitions."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from billing.models import RequestLog
from billing.partitions import (
    request_log_is_partitioned,
    request_log_partitions,
    request_log_partitions_ensure,
    request_log_retention_apply,
)
from billing.services import usage_events_record

pytestmark = pytest.mark.django_db
postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitioning is PostgreSQL's"
)


def _event(request_id: str, when: datetime) -> dict:
    return {
        "request_id": request_id,
        "ts": when.timestamp(),
        "endpoint": "chat/completions",
        "model": "m",
        "status_code": 200,
        "total_tokens": 3,
        "cost": "0.5",
    }


def test_events_stay_idempotent_on_request_id() -> None:
    when = datetime(2026, 3, 5, 12, tzinfo=UTC)
    assert usage_events_record(events=[_event("a", when), _event("b", when)]) == 2
    assert usage_events_record(events=[_event("a", when)]) == 1  # delivered again
    assert sorted(RequestLog.objects.values_list("request_id", "cost")) == [
        ("a", Decimal("0.5")),
        ("b", Decimal("0.5")),
    ]


def test_other_databases_are_left_alone(settings) -> None:
    if connection.vendor == "postgresql":
        pytest.skip("SQLite's behaviour")
    settings.OGEM_LOG_RETENTION_DAYS = 1
    assert not request_log_is_partitioned()
    assert request_log_partitions_ensure() == []
    assert request_log_retention_apply() == []


@postgres_only
def test_monthly_partitions_and_indexes() -> None:
    assert request_log_is_partitioned()
    this_month = timezone.now().astimezone(UTC).date().replace(day=1)
    assert this_month in request_log_partitions()
    assert len([m for m in request_log_partitions() if m >= this_month]) == 3
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'billing_requestlog' ORDER BY 1"
        )
        definitions = [row[0] for row in cursor.fetchall()]
    for columns in ("key_id, created_at", "team_id, created_at", "organization_id, created_at"):
        assert any(f"({columns})" in d for d in definitions), definitions


@postgres_only
def test_retention_drops_whole_old_partitions(settings) -> None:
    assert request_log_partitions_ensure(now=datetime(2025, 1, 15, tzinfo=UTC)) == [
        date(2025, 1, 1),
        date(2025, 2, 1),
        date(2025, 3, 1),
    ]
    assert request_log_partitions_ensure(now=datetime(2025, 1, 20, tzinfo=UTC)) == []
    now = timezone.now()
    usage_events_record(
        events=[
            _event("old-1", datetime(2025, 1, 3, tzinfo=UTC)),
            _event("old-2", datetime(2025, 3, 31, 23, 59, tzinfo=UTC)),
            _event("new", now),
        ]
    )
    settings.OGEM_LOG_RETENTION_DAYS = 0
    assert request_log_retention_apply() == []  # 0 keeps everything
    settings.OGEM_LOG_RETENTION_DAYS = 60
    # On April 20th 2025, only January is entirely older than 60 days.
    assert request_log_retention_apply(now=datetime(2025, 4, 20, tzinfo=UTC)) == [date(2025, 1, 1)]
    assert sorted(RequestLog.objects.values_list("request_id", flat=True)) == ["new", "old-2"]
    dropped = request_log_retention_apply(now=now)
    assert dropped == [date(2025, 2, 1), date(2025, 3, 1)]
    assert list(RequestLog.objects.values_list("request_id", flat=True)) == ["new"]
