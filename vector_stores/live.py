"""A vector store's indexing progress, published to the portal's live updates
(ogem_site/live.py) once the change committed: its status and file counts, read in one small
query."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from ogem_site.live import live_publish
from vector_stores.models import FileStatus, VectorStore


def store_progress_publish(*, store_pk: int) -> None:
    """Publish the store's state as it is after the current transaction commits."""
    transaction.on_commit(lambda: _publish(store_pk))


def _publish(store_pk: int) -> None:
    row = (
        VectorStore.objects.filter(pk=store_pk)
        .values("store_id", "expires_at", "organization_id", "team_id", "key__user_id")
        .first()
    )
    if row is None:
        return
    counted = dict(
        VectorStore.objects.filter(pk=store_pk)
        .values_list("files__status")
        .annotate(count=Count("files__id"))
        .order_by()
    )
    counts = {status.value: int(counted.get(status.value, 0)) for status in FileStatus}
    counts["total"] = sum(counts.values())
    expired = row["expires_at"] is not None and row["expires_at"] <= timezone.now()
    status = "expired" if expired else ("in_progress" if counts["in_progress"] else "completed")
    live_publish(
        event={
            "type": "vector_store.progress",
            "vector_store_id": row["store_id"],
            "status": status,
            "file_counts": counts,
        },
        organization_id=row["organization_id"],
        team_id=row["team_id"],
        user_id=row["key__user_id"],
    )
