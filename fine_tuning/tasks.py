"""Celery tasks of fine-tuning: beat's poller of the jobs not ended and one job's sync, both
idempotent (poller.job_sync locks the row and ends a job once). The alert of a job's end is
fine_tuning/alerts.py's."""

from __future__ import annotations

import logging

from celery import shared_task

from fine_tuning.poller import job_sync
from fine_tuning.selectors import jobs_open
from gateway.errors import GatewayError

logger = logging.getLogger(__name__)


@shared_task(name="fine_tuning.tasks.fine_tuning_jobs_poll", ignore_result=True)
def fine_tuning_jobs_poll() -> int:
    """Beat: a sync of every job not ended (or ended and not yet announced)."""
    job_ids = list(jobs_open().values_list("job_id", flat=True))
    for job_id in job_ids:
        job_sync_enqueue(job_id=job_id)
    return len(job_ids)


@shared_task(name="fine_tuning.tasks.fine_tuning_job_sync", ignore_result=True)
def fine_tuning_job_sync(job_id: str) -> str | None:
    try:
        job = job_sync(job_id=job_id)
    except GatewayError as exc:
        # The provider or the deployment is away: the next poll tries again.
        logger.warning("fine-tuning job %s not synced: %s", job_id, exc.message)
        return None
    return job.status if job is not None else None


def job_sync_enqueue(*, job_id: str) -> None:
    """Call after commit."""
    fine_tuning_job_sync.delay(job_id)
