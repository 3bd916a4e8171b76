"""Reads of fine-tuning jobs: for a /v1 caller (its tenant's, never another's), for the
management API and admin (a Principal's scope), and the objects in OpenAI's shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from fine_tuning.models import FineTuningCheckpoint, FineTuningEvent, FineTuningJob
from gateway.context import Caller
from gateway.errors import NotFoundError
from ogem_site.pagination import queryset_page
from tenants.principals import Principal
from tenants.selectors import principal_org_read_ids, principal_owns, principal_team_read_ids

ENDED = (
    FineTuningJob.Status.SUCCEEDED,
    FineTuningJob.Status.FAILED,
    FineTuningJob.Status.CANCELLED,
)


def jobs_visible(*, caller: Caller) -> QuerySet[FineTuningJob]:
    """A team's key sees its team's jobs; an organization's key (no team), its organization's;
    the master key, every job; any other key, its own."""
    jobs = FineTuningJob.objects.all()
    if caller.is_master:
        return jobs
    if caller.team_id is not None:
        return jobs.filter(organization_id=caller.organization_id, team_id=caller.team_id)
    if caller.organization_id is not None:
        return jobs.filter(organization_id=caller.organization_id)
    if caller.key_id is not None:
        return jobs.filter(organization__isnull=True, key_id=caller.key_id)
    return jobs.none()


def job_get_visible(*, caller: Caller, job_id: str) -> FineTuningJob:
    """The caller's job, or a 404 that reads the same for another tenant's job."""
    found = None
    if "\x00" not in job_id:
        found = jobs_visible(caller=caller).filter(job_id=job_id).first()
    if found is None:
        raise NotFoundError(
            f"No fine-tuning job found with id '{job_id}'.",
            param="fine_tuning_job_id",
            code="not_found",
        )
    return found


def job_page(
    *, caller: Caller, after: FineTuningJob | None, limit: int, metadata: dict[str, str]
) -> tuple[list[FineTuningJob], bool]:
    """One page of the caller's jobs, newest first (OpenAI's order), after the cursor job."""
    jobs = jobs_visible(caller=caller)
    for name, value in metadata.items():
        jobs = jobs.filter(**{f"metadata__{name}": value})
    return queryset_page(jobs, after=after, limit=limit, descending=True)


def event_page(
    *, job: FineTuningJob, after: str | None, limit: int
) -> tuple[list[FineTuningEvent], bool]:
    """The job's events, newest first, after the event named by `after` (an unknown one: from
    the newest)."""
    cursor = job.events.filter(event_id=after).first() if after else None
    return queryset_page(job.events.all(), after=cursor, limit=limit, descending=True)


def checkpoint_page(
    *, job: FineTuningJob, after: str | None, limit: int
) -> tuple[list[FineTuningCheckpoint], bool]:
    """The job's checkpoints, latest step first, after the checkpoint named by `after`."""
    cursor = job.checkpoints.filter(checkpoint_id=after).first() if after else None
    return queryset_page(
        job.checkpoints.all(), after=cursor, limit=limit, descending=True, field="step_number"
    )


def jobs_open() -> QuerySet[FineTuningJob]:
    """Jobs the poller follows: not ended, or ended without their owner told yet."""
    return FineTuningJob.objects.filter(~Q(status__in=ENDED) | Q(ended_notified=False))


def fine_tuned_job_for_model(*, caller: Caller, model: str) -> FineTuningJob | None:
    """The caller's succeeded job whose fine-tuned model is `model` and not deleted."""
    if "\x00" in model:
        return None
    return (
        jobs_visible(caller=caller)
        .filter(fine_tuned_model=model, status=FineTuningJob.Status.SUCCEEDED, model_deleted=False)
        .first()
    )


def job_list(*, principal: Principal) -> QuerySet[FineTuningJob]:
    """Jobs for the management API and admin: every one for a proxy admin; else those of the
    organizations and teams the principal may read, and those its own keys created."""
    jobs = FineTuningJob.objects.select_related("organization", "team", "key")
    if principal.is_proxy_admin:
        return jobs
    return jobs.filter(
        Q(organization_id__in=principal_org_read_ids(principal=principal))
        | Q(team_id__in=principal_team_read_ids(principal=principal))
        | principal_owns(principal=principal, field="key__user_id")
    )


def _unix(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def job_object(job: FineTuningJob) -> dict[str, Any]:
    """The job in OpenAI's shape (specs: FineTuningJob), with Ogem's ids and the model name the
    caller routes to."""
    hyperparameters = job.hyperparameters or {}
    return {
        "object": "fine_tuning.job",
        "id": job.job_id,
        "model": job.model,
        "created_at": _unix(job.created_at),
        "finished_at": _unix(job.finished_at),
        "fine_tuned_model": job.fine_tuned_model or None,
        "organization_id": f"org-{job.organization_id}" if job.organization_id else "org-ogem",
        # The provider's result files are its own; Ogem does not copy them.
        "result_files": [],
        "status": job.status,
        "validation_file": job.validation_file or None,
        "training_file": job.training_file,
        "hyperparameters": {
            "batch_size": hyperparameters.get("batch_size", "auto"),
            "learning_rate_multiplier": hyperparameters.get("learning_rate_multiplier", "auto"),
            "n_epochs": hyperparameters.get("n_epochs", "auto"),
        },
        "trained_tokens": job.trained_tokens,
        "error": job.error,
        "integrations": [],
        "seed": job.seed if job.seed is not None else 0,
        "estimated_finish": _unix(job.estimated_finish),
        "method": job.method,
        "metadata": job.metadata,
    }


def event_object(event: FineTuningEvent) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "object": "fine_tuning.job.event",
        "id": event.event_id,
        "created_at": _unix(event.created_at),
        "level": event.level,
        "message": event.message,
        "type": event.type,
    }
    if event.data is not None:
        answer["data"] = event.data
    return answer


def checkpoint_object(checkpoint: FineTuningCheckpoint, *, job: FineTuningJob) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.checkpoint",
        "id": checkpoint.checkpoint_id,
        "created_at": _unix(checkpoint.created_at),
        "fine_tuned_model_checkpoint": checkpoint.fine_tuned_model_checkpoint,
        "step_number": checkpoint.step_number,
        "metrics": checkpoint.metrics,
        "fine_tuning_job_id": job.job_id,
    }
