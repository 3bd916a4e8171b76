"""Celery tasks of the Assistants API: thin wrappers over assistants/runner.py.
`run_advance_enqueue` is how a run gets to a worker (eager in the embedded default)."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from assistants import runner
from assistants.records import runs_expire
from assistants.selectors import runs_past_expiry, runs_resumable


@shared_task(name="assistants.tasks.run_advance", ignore_result=True)
def run_advance(run_id: str) -> str | None:
    return runner.run_advance_blocking(run_id=run_id)


@shared_task(name="assistants.tasks.runs_sweep", ignore_result=True)
def runs_sweep() -> int:
    """Runs past `expires_at` expire; runs queued or in progress that no live worker holds (its
    worker died, or the streaming request that advanced it went away) are enqueued again.
    Idempotent: a run held by a live worker is left to it."""
    now = timezone.now()
    expired = runs_expire(runs=list(runs_past_expiry(now=now)[:1000]))
    due = list(runs_resumable(now=now).values_list("run_id", flat=True)[:1000])
    for run_id in due:
        run_advance_enqueue(run_id=run_id)
    return expired + len(due)


def run_advance_enqueue(*, run_id: str) -> None:
    """Call after commit."""
    run_advance.delay(run_id)
