"""billing/analytics.py's building blocks: percentiles (PostgreSQL's and Python's agree), the
range checks and capability classes (end to end: tests/api/test_analytics.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from billing.analytics import (
    AnalyticsInputError,
    ModelClass,
    _model_class,
    analytics_range_check,
    percentile_cont,
    percentiles_python,
    percentiles_sql,
)
from billing.models import RequestLog
from billing.pricing import Price
from providers.base import Deployment
from tests.factories import RequestLogFactory

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([], 0.5, None),
        ([7], 0.95, 7),
        ([1, 2], 0.5, 1.5),
        ([100, 200, 300, 400, 1000], 0.5, 300),
        ([100, 200, 300, 400, 1000], 0.95, 880),
        (list(range(1, 101)), 0.95, 95.05),
    ],
)
def test_percentile_cont_interpolates_linearly(
    values: list[int], fraction: float, expected: float | None
) -> None:
    found = percentile_cont(values, fraction)
    assert found == expected if expected is None else found == pytest.approx(expected)


@pytest.mark.django_db
def test_the_database_and_python_percentiles_agree() -> None:
    latencies = [(n * 37) % 1000 + 1 for n in range(1, 60)]
    for position, latency in enumerate(latencies):
        RequestLogFactory(
            created_at=NOW + timedelta(minutes=position),
            model=("a", "b")[position % 2],
            latency_ms=latency,
            ttft_ms=latency // 3 if position % 3 else None,
            status_code=500 if position % 7 == 0 else 200,
        )
    logs = RequestLog.objects.order_by()
    python = percentiles_python(logs, ("model",))
    assert python[("a",)]["latency_p50_ms"] is not None
    if connection.vendor != "postgresql":
        pytest.skip("percentile_cont is PostgreSQL's")
    sql = percentiles_sql(logs, ("model",))
    assert sql == python
    assert percentiles_sql(logs, ()) == percentiles_python(logs, ())


def test_range_defaults_and_buckets() -> None:
    span = analytics_range_check(start=None, end=None, now=NOW)
    assert (span.start, span.end) == (NOW - timedelta(days=7), NOW)
    assert len(span.labels()) == 8  # 7 days from 12:30: a partial day at each edge
    assert span.span_seconds(span.labels()[0]) == 11.5 * 3600
    hours = analytics_range_check(start=NOW - timedelta(hours=2), end=NOW, bucket="hour")
    assert [label.hour for label in hours.labels()] == [10, 11, 12]


@pytest.mark.parametrize(
    ("start", "end", "bucket", "field"),
    [
        (NOW, NOW, "day", "end"),
        (NOW - timedelta(days=91), NOW, "day", "start"),
        (NOW - timedelta(days=32), NOW, "hour", "start"),
        (NOW - timedelta(days=1), NOW, "minute", "bucket"),
        (datetime(1, 1, 1, tzinfo=UTC), NOW, "day", "start"),
        (NOW, datetime(9999, 12, 31, tzinfo=UTC), "day", "end"),
    ],
)
def test_bad_ranges_name_their_parameter(
    start: datetime, end: datetime, bucket: str, field: str
) -> None:
    with pytest.raises(AnalyticsInputError) as raised:
        analytics_range_check(start=start, end=end, bucket=bucket)
    assert raised.value.field == field


def _deployment(**info: object) -> Deployment:
    return Deployment(
        id="config:x:0",
        model_name="x",
        provider="openai",
        upstream_model="x",
        params={"model_info": info} if info else {},
    )


def test_capability_classes_from_model_info() -> None:
    chat_price = Price(input=Decimal("1"), output=Decimal("2"))
    assert _model_class(
        _deployment(
            mode="chat",
            supports_vision=True,
            supports_function_calling=False,
            max_input_tokens=8000,
        ),
        chat_price,
    ) == ModelClass(mode="chat", flags=frozenset({"supports_vision"}), context_window=8000)
    # No mode: chat when it has an output price; unknown (no class) when it has none.
    assert _model_class(_deployment(), chat_price) == ModelClass("chat", frozenset(), None)
    assert _model_class(_deployment(), Price(input=Decimal("1"))) is None
    assert _model_class(_deployment(mode="embedding", max_input_tokens=True), None) == ModelClass(
        "embedding", frozenset(), None
    )
