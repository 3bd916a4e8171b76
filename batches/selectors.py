"""Reads of batches: for a /v1 caller (its tenant's, never another's), for the management API and
admin (a Principal's scope), and the batch object in OpenAI's shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from batches.models import Batch, BatchLine
from billing.models import RequestLog
from gateway.context import Caller
from gateway.errors import NotFoundError
from ogem_site.pagination import queryset_page
from tenants.principals import Principal
from tenants.selectors import principal_org_read_ids, principal_owns, principal_team_read_ids

# A batch no worker will touch again.
ENDED = (
    Batch.Status.COMPLETED,
    Batch.Status.FAILED,
    Batch.Status.EXPIRED,
    Batch.Status.CANCELLED,
)


def batches_visible(*, caller: Caller) -> QuerySet[Batch]:
    """A team's key sees its team's batches; an organization's key (no team), its
    organization's; the master key, every batch; any other key, its own."""
    batches = Batch.objects.all()
    if caller.is_master:
        return batches
    if caller.team_id is not None:
        return batches.filter(organization_id=caller.organization_id, team_id=caller.team_id)
    if caller.organization_id is not None:
        return batches.filter(organization_id=caller.organization_id)
    if caller.key_id is not None:
        return batches.filter(organization__isnull=True, key_id=caller.key_id)
    return batches.none()


def batch_get_visible(*, caller: Caller, batch_id: str) -> Batch:
    """The caller's batch, or a 404 that reads the same for another tenant's batch."""
    found = None
    if "\x00" not in batch_id:
        found = batches_visible(caller=caller).filter(batch_id=batch_id).first()
    if found is None:
        raise NotFoundError(f"No batch found with id '{batch_id}'.", param="batch_id", code=None)
    return found


def batch_page(*, caller: Caller, after: Batch | None, limit: int) -> tuple[list[Batch], bool]:
    """One page of the caller's batches, newest first (OpenAI's order), after the cursor batch;
    and whether more follow."""
    batches = batches_visible(caller=caller)
    return queryset_page(batches, after=after, limit=limit, descending=True)


def batches_open_count(*, caller: Caller) -> int:
    """Batches of the caller's organization (or, outside one, of its key) not yet ended."""
    batches = Batch.objects.exclude(status__in=ENDED)
    if caller.organization_id is not None:
        return batches.filter(organization_id=caller.organization_id).count()
    if caller.key_id is not None:
        return batches.filter(organization__isnull=True, key_id=caller.key_id).count()
    return batches.filter(by_master=True).count()


def batch_list(*, principal: Principal) -> QuerySet[Batch]:
    """Batches for the management API and admin, each with its `cost` (the sum of its lines'
    request log rows): every one for a proxy admin; else those of the organizations and teams
    the principal may read, and those its own keys created."""
    cost = (
        RequestLog.objects.filter(batch_id=OuterRef("batch_id"))
        .values("batch_id")
        .annotate(total=Sum("cost"))
        .values("total")
    )
    batches = Batch.objects.select_related("organization", "team", "key").annotate(
        cost=Coalesce(
            Subquery(cost, output_field=DecimalField(max_digits=18, decimal_places=8)),
            Value(Decimal(0)),
            output_field=DecimalField(max_digits=18, decimal_places=8),
        )
    )
    if principal.is_proxy_admin:
        return batches
    return batches.filter(
        Q(organization_id__in=principal_org_read_ids(principal=principal))
        | Q(team_id__in=principal_team_read_ids(principal=principal))
        | principal_owns(principal=principal, field="key__user_id")
    )


def batch_lines_answered(*, batch: Batch, numbers: list[int]) -> set[int]:
    """Which of these line numbers already have their answer."""
    return set(
        BatchLine.objects.filter(batch=batch, line__in=numbers).values_list("line", flat=True)
    )


def batch_lines_ordered(*, batch: Batch, ok: bool) -> Iterator[BatchLine]:
    """The batch's answered lines in input order, successes or the others, streamed."""
    lines = BatchLine.objects.filter(batch=batch)
    lines = lines.filter(status_code=200) if ok else lines.exclude(status_code=200)
    return lines.order_by("line").iterator(chunk_size=500)


def batches_open_counts() -> dict[tuple[str, str], int]:
    """Batches not ended, by (mode, status): the open batches gauge."""
    rows = (
        Batch.objects.exclude(status__in=ENDED)
        .values_list("mode", "status")
        .annotate(count=Count("pk"))
    )
    return {(mode, status): count for mode, status, count in rows}


def batches_resumable(*, now: datetime) -> QuerySet[Batch]:
    """Batches not ended whose worker's hold lapsed (or that none holds yet)."""
    return Batch.objects.exclude(status__in=ENDED).filter(
        Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
    )


def _unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def batch_object(batch: Batch) -> dict[str, Any]:
    """The batch in OpenAI's shape (specs: Batch)."""
    return {
        "id": batch.batch_id,
        "object": "batch",
        "endpoint": batch.endpoint,
        "model": batch.model or None,
        "errors": {"object": "list", "data": batch.errors} if batch.errors else None,
        "input_file_id": batch.input_file_id,
        "completion_window": batch.completion_window,
        "status": batch.status,
        "output_file_id": batch.output_file_id or None,
        "error_file_id": batch.error_file_id or None,
        "created_at": _unix(batch.created_at),
        "in_progress_at": _unix(batch.in_progress_at),
        "expires_at": _unix(batch.expires_at),
        "finalizing_at": _unix(batch.finalizing_at),
        "completed_at": _unix(batch.completed_at),
        "failed_at": _unix(batch.failed_at),
        "expired_at": _unix(batch.expired_at),
        "cancelling_at": _unix(batch.cancelling_at),
        "cancelled_at": _unix(batch.cancelled_at),
        "request_counts": {
            "total": batch.request_total,
            "completed": batch.request_completed,
            "failed": batch.request_failed,
        },
        "usage": {
            "input_tokens": batch.input_tokens,
            "input_tokens_details": {"cached_tokens": batch.cached_tokens},
            "output_tokens": batch.output_tokens,
            "output_tokens_details": {"reasoning_tokens": batch.reasoning_tokens},
            "total_tokens": batch.total_tokens,
        },
        "metadata": batch.metadata,
    }
