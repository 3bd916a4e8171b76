"""Celery tasks of batches: thin wrappers over batches/runner.py. `batch_run_enqueue` is how a
batch gets to a worker: Celery with a broker, a thread of this process in the embedded default."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from batches import passthrough, runner
from batches.selectors import batches_open_counts
from ogem_site.metrics import batches_open_set


@shared_task(name="batches.tasks.batch_run", ignore_result=True)
def batch_run(batch_id: str) -> str | None:
    return passthrough.batch_step(batch_id=batch_id)


@shared_task(name="batches.tasks.batches_sweep", ignore_result=True)
def batches_sweep() -> int:
    """Batches whose worker died (their hold lapsed), those no worker took yet, and the open
    pass-through batches (this is their poll): enqueued again. Idempotent: a batch held by a
    live worker is left to it."""
    due = runner.batches_due()
    for batch_id in due:
        batch_run_enqueue(batch_id=batch_id)
    batches_open_set(counts=batches_open_counts())
    return len(due)


def batch_run_enqueue(*, batch_id: str) -> None:
    """Call after commit. `OGEM_BATCH_RUNNER`: `celery` sends the batch to a worker; `thread`
    (the embedded default, whose tasks are eager) runs it in a thread of this process."""
    if settings.OGEM_BATCH_RUNNER == "thread":
        runner.batch_run_in_thread(batch_id=batch_id, step=passthrough.batch_step)
    else:
        batch_run.delay(batch_id)
