"""Following a provider's fine-tuning job (Celery beat's poller calls `job_sync` through
fine_tuning/tasks.py): its status, events and checkpoints copied, and once it ended, its
fine-tuned model served to the owner's organization and the owner alerted, both exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from billing.models import ModelPrice
from billing.services import model_price_changed
from fine_tuning.alerts import job_alert_enqueue
from fine_tuning.models import FineTuningCheckpoint, FineTuningEvent, FineTuningJob
from fine_tuning.prices import MILLION, fine_tuned_price, price_source
from fine_tuning.selectors import ENDED
from fine_tuning.upstream import FineTuningAPI, fine_tuning_api
from gateway.errors import GatewayError
from gateway.models import ModelDeployment
from gateway.registry import registry_get
from gateway.services import deployment_create


def _moment(value: Any) -> datetime | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    return None


# What job_copy writes.
COPIED_FIELDS = [
    "status",
    "hyperparameters",
    "method",
    "fine_tuned_model",
    "trained_tokens",
    "error",
    "finished_at",
    "estimated_finish",
]


def job_copy(*, job: FineTuningJob, answer: dict[str, Any]) -> None:
    """The provider's view of the job onto the row (status, results, hyperparameters)."""
    status = answer.get("status")
    if status in FineTuningJob.Status.values:
        job.status = status
    if isinstance(answer.get("hyperparameters"), dict):
        job.hyperparameters = {k: v for k, v in answer["hyperparameters"].items() if v is not None}
    if isinstance(answer.get("method"), dict):
        job.method = answer["method"]
    if answer.get("fine_tuned_model"):
        job.fine_tuned_model = str(answer["fine_tuned_model"])
    if isinstance(answer.get("trained_tokens"), int):
        job.trained_tokens = answer["trained_tokens"]
    error = answer.get("error")
    if isinstance(error, dict) and error.get("message"):
        job.error = {
            "code": str(error.get("code") or "error"),
            "message": str(error["message"]),
            "param": error.get("param"),
        }
    job.finished_at = _moment(answer.get("finished_at")) or job.finished_at
    job.estimated_finish = _moment(answer.get("estimated_finish"))


def _events_store(*, job: FineTuningJob, events: list[dict[str, Any]]) -> None:
    """Events new to the row, oldest first (the provider lists newest first): events of one
    second keep their order by primary key."""
    rows = [
        FineTuningEvent(
            job=job,
            event_id=str(event["id"]),
            created_at=_moment(event.get("created_at")) or timezone.now(),
            level=str(event.get("level") or "info"),
            message=str(event.get("message") or ""),
            type=str(event.get("type") or "message"),
            data=event.get("data") if isinstance(event.get("data"), dict) else None,
        )
        for event in reversed(events)
        if event.get("id")
    ]
    FineTuningEvent.objects.bulk_create(rows, ignore_conflicts=True)


def _checkpoints_store(*, job: FineTuningJob, checkpoints: list[dict[str, Any]]) -> None:
    rows = [
        FineTuningCheckpoint(
            job=job,
            checkpoint_id=str(item["id"]),
            created_at=_moment(item.get("created_at")) or timezone.now(),
            fine_tuned_model_checkpoint=str(item.get("fine_tuned_model_checkpoint") or ""),
            step_number=int(item.get("step_number") or 0),
            metrics=item.get("metrics") if isinstance(item.get("metrics"), dict) else {},
        )
        for item in checkpoints
        if item.get("id")
    ]
    FineTuningCheckpoint.objects.bulk_create(rows, ignore_conflicts=True)


def job_upstream(*, job: FineTuningJob) -> FineTuningAPI:
    """The provider account the job runs on, through its deployment as the registry has it
    now (a deployment removed since: 503, the job cannot be followed)."""
    deployment = registry_get().by_id.get(job.deployment_id)
    if deployment is None:
        raise GatewayError(
            f"The deployment fine-tuning job {job.job_id} was created through is gone.",
            status=503,
            code="deployment_unavailable",
        )
    return fine_tuning_api(deployment)


def job_sync(*, job_id: str) -> FineTuningJob | None:
    """Copy the provider's job, events and checkpoints; once it ended, serve its model (when
    it succeeded) and tell its owner, both exactly once. Idempotent: run it any number of times,
    concurrently too (the row is locked while it is written)."""
    job = FineTuningJob.objects.filter(job_id=job_id).first()
    if job is None:
        return None
    if job.status in ENDED and job.ended_notified:
        return job
    upstream = job_upstream(job=job)
    answer = upstream.job_get(job_id=job.upstream_job_id)
    events = upstream.job_events(job_id=job.upstream_job_id)
    checkpoints = upstream.job_checkpoints(job_id=job.upstream_job_id)
    with transaction.atomic():
        job = FineTuningJob.objects.select_for_update().get(pk=job.pk)
        job_copy(job=job, answer=answer)
        job.synced_at = timezone.now()
        fields = [*COPIED_FIELDS, "synced_at"]
        _events_store(job=job, events=events)
        _checkpoints_store(job=job, checkpoints=checkpoints)
        if job.status in ENDED and not job.ended_notified:
            # Claimed by a conditional update, not the lock alone: SQLite (the embedded default)
            # has no row locks, and two threads may sync the same job.
            claimed = FineTuningJob.objects.filter(pk=job.pk, ended_notified=False).update(
                ended_notified=True
            )
            if claimed:
                _job_end(job=job, upstream=upstream)
                fields += ["cost", "served_by", "ended_notified"]
        job.save(update_fields=fields)
    return job


def _job_end(*, job: FineTuningJob, upstream: FineTuningAPI) -> None:
    """In the job's locked transaction: its cost, its model served, its owner alerted."""
    price = fine_tuned_price(job.base_model, provider=job.provider)
    if price is not None and job.trained_tokens:
        job.cost = price.training * job.trained_tokens / MILLION
    job.finished_at = job.finished_at or timezone.now()
    if job.status == FineTuningJob.Status.SUCCEEDED and job.fine_tuned_model:
        job.served_by = fine_tuned_model_serve(job=job, upstream=upstream)
    job.ended_notified = True
    job_id = job.job_id
    transaction.on_commit(lambda: job_alert_enqueue(job_id=job_id))


def fine_tuned_model_serve(*, job: FineTuningJob, upstream: FineTuningAPI) -> ModelDeployment:
    """A deployment of the job's organization serving its fine-tuned model through the same
    provider account, priced at the provider's fine-tuned price. Every worker's registry loads
    it at its next database check (gateway/config/watch.py), without a restart."""
    base = upstream.deployment
    deployment = deployment_create(
        data={
            "model_name": job.fine_tuned_model,
            "provider": base.provider,
            "upstream_model": job.fine_tuned_model,
            "api_base": base.api_base,
            "api_version": base.api_version,
            "organization_id": job.organization_id,
            "region": base.region,
        },
        params=upstream.served_params(),
        api_key=base.api_key or "",
    )
    price = fine_tuned_price(job.base_model, provider=job.provider)
    if price is not None:
        ModelPrice.objects.create(
            model=job.fine_tuned_model,
            provider=base.provider,
            deployment=deployment,
            input_cost_per_token=price.input / MILLION,
            output_cost_per_token=price.output / MILLION,
            cache_read_input_cost_per_token=(
                price.cached_input / MILLION if price.cached_input is not None else None
            ),
            source=price_source(job.provider),
        )
        model_price_changed()
    return deployment
