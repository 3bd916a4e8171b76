"""Row writes the services and the runner share: object ids, a message row, a run's expiry and
the expiring of runs past it."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from assistants.models import Message, Run, RunStep, Thread
from assistants.selectors import RUN_ENDED


def object_id_new(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def message_write(
    *,
    thread: Thread,
    role: str,
    content: list[dict[str, Any]],
    attachments: list[dict[str, Any]] | None = None,
    metadata: dict[str, str] | None = None,
    run_id: str = "",
    assistant_id: str = "",
    status: str = "completed",
    message_id: str = "",
) -> Message:
    """A message row, no questions asked (a client's after `message_create`'s check, or a run's
    own; `message_id` the one its stream already announced)."""
    now = timezone.now()
    return Message.objects.create(
        message_id=message_id or object_id_new("msg"),
        thread=thread,
        created_at=now,
        role=role,
        status=status,
        content=content,
        attachments=attachments or [],
        metadata=metadata or {},
        run_id=run_id,
        assistant_id=assistant_id,
        completed_at=now if status == "completed" else None,
    )


def run_expiry() -> timedelta:
    return timedelta(seconds=settings.OGEM_ASSISTANTS_RUN_EXPIRY_SECONDS)


def runs_expire(*, runs: list[Run]) -> int:
    """Runs past `expires_at` that did not end: expired (a worker holding one sees it)."""
    now = timezone.now()
    expired = 0
    for run in runs:
        with transaction.atomic():
            locked = Run.objects.select_for_update().get(pk=run.pk)
            if locked.status in RUN_ENDED or (locked.expires_at and locked.expires_at > now):
                continue
            locked.status = Run.Status.EXPIRED
            locked.required_action = None
            locked.lease_owner = ""
            locked.save(update_fields=["status", "required_action", "lease_owner"])
            RunStep.objects.filter(run=locked, status="in_progress").update(
                status="expired", expired_at=now
            )
            expired += 1
    return expired
