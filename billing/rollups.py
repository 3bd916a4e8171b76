"""Daily rollups of the request log, written on closed windows.

A UTC day is closed once it ended more than `OGEM_ROLLUP_GRACE_MINUTES` ago (usage drained late
still lands in its day first). `rollup_day` replaces the day's rows in one transaction while it
holds the day's `UsageRollupDay` row locked, so a rerun, or two beat runs at once, leave exactly
one copy of the day's totals. Spend is read (billing.selectors.usage_sources_get) from rollups for
rolled days and from the raw log for the days after them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from billing.models import RequestLog, UnpricedUsage, UsageRollup, UsageRollupDay

DIMENSIONS = ("organization_id", "team_id", "key_id", "user_id", "end_customer", "model")
TOTALS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "spend")


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def rollup_day(*, day: date) -> int:
    """(Re)write the rollups of one UTC day; returns how many requests the day holds."""
    start, end = _day_bounds(day)
    logs = RequestLog.objects.filter(created_at__gte=start, created_at__lt=end).order_by()
    with transaction.atomic():
        UsageRollupDay.objects.bulk_create(
            [UsageRollupDay(day=day, rolled_at=timezone.now())], ignore_conflicts=True
        )
        window = UsageRollupDay.objects.select_for_update().get(day=day)
        UsageRollup.objects.filter(day=day).delete()
        grouped = logs.values(*DIMENSIONS).annotate(
            requests=Count("pk"),
            prompt_tokens=Sum("prompt_tokens"),
            completion_tokens=Sum("completion_tokens"),
            total_tokens=Sum("total_tokens"),
            spend=Sum("cost"),
        )
        rows = [UsageRollup(day=day, tag="", **row) for row in grouped]
        rows += _tag_rows(day=day, logs=logs)
        UsageRollup.objects.bulk_create(rows, batch_size=1000)
        _unpriced_replace(day=day, logs=logs)
        window.requests = sum(row.requests for row in rows if not row.tag)
        window.rolled_at = timezone.now()
        window.save(update_fields=["requests", "rolled_at"])
    return window.requests


def _unpriced_replace(*, day: date, logs: Any) -> None:
    """The day's zero-cost successes, one row per group: exact, whatever the drain appended."""
    UnpricedUsage.objects.filter(day=day).delete()
    grouped = (
        logs.filter(cost=0, status_code__lt=400)
        .values("organization_id", "provider", "model", "deployment")
        .annotate(requests=Count("pk"))
    )
    UnpricedUsage.objects.bulk_create([UnpricedUsage(day=day, **row) for row in grouped])


def _tag_rows(*, day: date, logs: Any) -> list[UsageRollup]:
    totals: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(
        lambda: (
            {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
            | {"spend": Decimal("0")}
        )
    )
    fields = (*DIMENSIONS, "tags", "prompt_tokens", "completion_tokens", "total_tokens", "cost")
    for log in logs.exclude(tags=[]).values(*fields).iterator(chunk_size=2000):
        for tag in dict.fromkeys(str(t)[:200] for t in log["tags"] or ()):
            row = totals[(*(log[d] for d in DIMENSIONS), tag)]
            row["requests"] += 1
            row["prompt_tokens"] += log["prompt_tokens"]
            row["completion_tokens"] += log["completion_tokens"]
            row["total_tokens"] += log["total_tokens"]
            row["spend"] += log["cost"]
    return [
        UsageRollup(day=day, **dict(zip(DIMENSIONS, key[:-1], strict=True)), tag=key[-1], **row)
        for key, row in totals.items()
    ]


def rollup_last_closed_day(*, now: datetime | None = None) -> date:
    now = now or timezone.now()
    grace = timedelta(minutes=settings.OGEM_ROLLUP_GRACE_MINUTES)
    return (now - grace).astimezone(UTC).date() - timedelta(days=1)


def rollup_watermark() -> date | None:
    """The last rolled day: days up to it are read from rollups, later ones from the log."""
    return UsageRollupDay.objects.aggregate(last=Max("day"))["last"]


def rollups_run(*, now: datetime | None = None) -> list[date]:
    """Roll every closed day after the watermark (from the first logged day); returns them."""
    last_closed = rollup_last_closed_day(now=now)
    watermark = rollup_watermark()
    if watermark is None:
        first = RequestLog.objects.aggregate(first=Min("created_at"))["first"]
        if first is None:
            return []
        day = first.astimezone(UTC).date()
    else:
        day = watermark + timedelta(days=1)
    rolled = []
    while day <= last_closed:
        rollup_day(day=day)
        rolled.append(day)
        day += timedelta(days=1)
    return rolled
