"""Writes of batches: create one from a caller's input file, cancel one. Running them is
batches/runner.py's (Celery, or a thread in the embedded default)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from batches.live import batch_progress_publish
from batches.models import Batch
from batches.passthrough import batch_passthrough_target
from batches.selectors import ENDED, batches_open_count
from batches.tasks import batch_run_enqueue
from files.batch_input import BATCH_ENDPOINTS
from files.selectors import file_get_visible
from gateway.context import Caller
from gateway.errors import InvalidRequestError, RateLimitError
from gateway.governance import governance_budget_check

COMPLETION_WINDOWS = {"24h": timedelta(hours=24)}


def batch_create(
    *,
    caller: Caller,
    input_file_id: str,
    endpoint: str,
    completion_window: str,
    metadata: dict[str, str] | None,
    output_expires_after: int | None = None,
) -> Batch:
    """A new batch of `caller`'s input file, `validating` until a worker starts it. The file
    must be the caller's (404 otherwise), of purpose `batch`, and its lines must name `endpoint`;
    the caller's organization may have at most OGEM_BATCH_OPEN_LIMIT batches open (429)."""
    input_file = file_get_visible(caller=caller, file_id=input_file_id, param="input_file_id")
    if input_file.purpose != "batch":
        raise InvalidRequestError(
            f"The input file {input_file_id} has purpose `{input_file.purpose}`; a batch's input "
            "file must have purpose `batch`.",
            param="input_file_id",
            code="invalid_file_purpose",
        )
    summary = input_file.batch_summary or {}
    if summary.get("url") and summary["url"] != endpoint:
        raise InvalidRequestError(
            f"The input file's requests are for {summary['url']}, not {endpoint}.",
            param="endpoint",
            code="invalid_endpoint",
        )
    if not summary.get("lines"):
        raise InvalidRequestError(
            f"The input file {input_file_id} holds no request.",
            param="input_file_id",
            code="empty_file",
        )
    models = summary.get("models") or []
    passthrough = batch_passthrough_target(caller=caller, models=models, endpoint=endpoint)
    if passthrough is not None:
        # Nothing is reserved for a pass-through batch (docs/batches.md): it is refused only when
        # a budget has nothing left, as a live request would be.
        async_to_sync(governance_budget_check)(
            caller=caller, model=models[0], endpoint=BATCH_ENDPOINTS[endpoint]
        )
    now = timezone.now()
    with transaction.atomic():
        if batches_open_count(caller=caller) >= settings.OGEM_BATCH_OPEN_LIMIT:
            raise RateLimitError(
                f"At most {settings.OGEM_BATCH_OPEN_LIMIT} batches may be open at once; wait "
                "for one to end or cancel one.",
                code="rate_limit_exceeded",
                headers={"Retry-After": "60"},
            )
        batch = Batch.objects.create(
            batch_id=f"batch_{uuid.uuid4().hex}",
            organization_id=caller.organization_id,
            team_id=caller.team_id,
            key_id=caller.key_id,
            by_master=caller.is_master,
            endpoint=endpoint,
            input_file_id=input_file.file_id,
            completion_window=completion_window,
            metadata=metadata or None,
            output_expires_after=output_expires_after,
            model=models[0] if len(models) == 1 else "",
            mode=Batch.Mode.PASSTHROUGH if passthrough is not None else Batch.Mode.OGEM,
            deployment_id=passthrough.id if passthrough is not None else "",
            request_total=int(summary["lines"]),
            created_at=now,
            expires_at=now + COMPLETION_WINDOWS[completion_window],
        )
        batch_id = batch.batch_id
        transaction.on_commit(lambda: batch_run_enqueue(batch_id=batch_id))
    return batch


def batch_cancel(*, batch: Batch) -> Batch:
    """Ask a batch to stop: `cancelling` now, `cancelled` once its worker finished the lines in
    flight and wrote the partial output (a pass-through batch: once the worker forwarded the
    cancel and the provider ended it). A batch that ended is left as it is (OpenAI answers
    it unchanged too, except a cancelled one)."""
    with transaction.atomic():
        locked = Batch.objects.select_for_update().get(pk=batch.pk)
        if locked.status in (Batch.Status.VALIDATING, Batch.Status.IN_PROGRESS):
            locked.status = Batch.Status.CANCELLING
            locked.cancelling_at = timezone.now()
            locked.save(update_fields=["status", "cancelling_at"])
            batch_progress_publish(batch_pk=locked.pk)
            batch_id = locked.batch_id
            # A batch no worker holds is finished by whoever takes it; one held notices.
            transaction.on_commit(lambda: batch_run_enqueue(batch_id=batch_id))
    return locked


def batch_resume_stale(*, batch: Batch) -> bool:
    """Enqueue a batch that is not ended and that no live worker holds; whether it was."""
    if batch.status in ENDED:
        return False
    if batch.lease_expires_at is not None and batch.lease_expires_at > timezone.now():
        return False
    batch_id = batch.batch_id
    transaction.on_commit(lambda: batch_run_enqueue(batch_id=batch_id))
    return True
