"""A batch's progress, published to the portal's live updates (ogem_site/live.py) once the
change committed: its status and request counts, read in one small query."""

from __future__ import annotations

from django.db import transaction

from batches.models import Batch
from ogem_site.live import live_publish


def batch_progress_publish(*, batch_pk: int) -> None:
    """Publish the batch's state as it is after the current transaction commits."""
    transaction.on_commit(lambda: _publish(batch_pk))


def _publish(batch_pk: int) -> None:
    row = (
        Batch.objects.filter(pk=batch_pk)
        .values(
            "batch_id",
            "status",
            "request_total",
            "request_completed",
            "request_failed",
            "organization_id",
            "team_id",
            "key__user_id",
        )
        .first()
    )
    if row is None:
        return
    live_publish(
        event={
            "type": "batch.progress",
            "batch_id": row["batch_id"],
            "status": row["status"],
            "request_counts": {
                "total": row["request_total"],
                "completed": row["request_completed"],
                "failed": row["request_failed"],
            },
        },
        organization_id=row["organization_id"],
        team_id=row["team_id"],
        user_id=row["key__user_id"],
    )
