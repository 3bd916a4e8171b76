"""The request log partitioned by month on PostgreSQL, and its retention.

Migration 0005 makes `billing_requestlog` a table partitioned by range of `created_at`, with a
DEFAULT partition for rows outside the monthly ones. `request_log_partitions_ensure` creates the
current and next months' partitions ahead of time (beat runs it daily);
`request_log_retention_apply` drops whole partitions older than `OGEM_LOG_RETENTION_DAYS` (0 keeps
everything), which costs no row deletes and no vacuum. On other databases (SQLite in the
embedded default) the table is a plain one and both are no-ops.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

TABLE = "billing_requestlog"
_NAME = re.compile(rf"^{TABLE}_p(\d{{4}})(\d{{2}})$")


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


def request_log_is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", [TABLE])
        return cursor.fetchone() is not None


def request_log_partitions() -> list[date]:
    """The first day of each month that has its own partition, oldest first."""
    if not request_log_is_partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [TABLE],
        )
        names = [row[0] for row in cursor.fetchall()]
    months = []
    for name in names:
        match = _NAME.match(name)
        if match:
            months.append(date(int(match[1]), int(match[2]), 1))
    return sorted(months)


def request_log_partitions_ensure(*, now: datetime | None = None, ahead: int = 2) -> list[date]:
    """Create the partitions of this month and `ahead` more; returns the months created.

    A month whose rows already sit in the DEFAULT partition cannot be attached; it is logged and
    skipped (those rows stay readable, and retention leaves the DEFAULT partition alone).
    """
    if not request_log_is_partitioned():
        return []
    existing = set(request_log_partitions())
    month = _month_start((now or timezone.now()).astimezone(UTC).date())
    created = []
    for _ in range(ahead + 1):
        if month not in existing:
            name = f"{TABLE}_p{month:%Y%m}"
            sql = (
                f'CREATE TABLE "{name}" PARTITION OF "{TABLE}" '
                f"FOR VALUES FROM ('{month.isoformat()}') TO ('{_next_month(month).isoformat()}')"
            )
            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(sql)
                created.append(month)
            except Exception as exc:  # rows of that month already in the DEFAULT partition
                logger.warning("request log partition %s not created: %s", name, exc)
        month = _next_month(month)
    return created


def request_log_retention_apply(*, now: datetime | None = None) -> list[date]:
    """Drop the monthly partitions entirely older than the retention; returns their months."""
    days = int(settings.OGEM_LOG_RETENTION_DAYS)
    if days <= 0 or not request_log_is_partitioned():
        return []
    cutoff = (now or timezone.now()).astimezone(UTC).date() - timedelta(days=days)
    dropped = []
    for month in request_log_partitions():
        if _next_month(month) <= cutoff:  # every row of the month is past retention
            with connection.cursor() as cursor:
                cursor.execute(f'DROP TABLE "{TABLE}_p{month:%Y%m}"')
            dropped.append(month)
    return dropped
