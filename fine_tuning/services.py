"""Writes of fine-tuning jobs: create one at the provider (forwarding the caller's files), follow
it (`job_sync`, Celery beat's poller), cancel, pause or resume it, and serve the fine-tuned model
to its owner once it succeeded (a deployment of the owner's organization with its price row),
until the owner deletes it."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.services import model_price_changed
from files.models import File, FilePurpose
from files.selectors import file_get_visible, file_open
from fine_tuning.models import FineTuningJob, ForwardedFile
from fine_tuning.poller import job_copy, job_upstream
from fine_tuning.selectors import ENDED, fine_tuned_job_for_model
from fine_tuning.tasks import job_sync_enqueue
from fine_tuning.upstream import FineTuningAPI, base_model_tunable, fine_tuning_api
from gateway.context import Caller
from gateway.errors import (
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from gateway.registry import registry_get
from gateway.router import deployment_allowed, deployment_visible
from gateway.services import deployment_delete
from providers.base import Deployment

logger = logging.getLogger(__name__)


def _base_model(deployment: Deployment) -> str:
    """The model the provider fine-tunes: Azure names a deployment, not a model, so an Azure
    deployment says its model in `model_info.base_model` (LiteLLM's field)."""
    info = deployment.params.get("model_info")
    if isinstance(info, dict) and info.get("base_model"):
        return str(info["base_model"])
    return deployment.upstream_model


def fine_tuning_deployment(*, caller: Caller, model: str) -> Deployment:
    """The deployment a job on `model` goes through: one of the caller's deployments of that
    name on a provider that fine-tunes it (400 `model_not_available` otherwise, the same for a
    model of another tenant)."""
    group = registry_get().by_model.get(model, ())
    visible = [d for d in group if deployment_visible(caller=caller, deployment=d)]
    if visible and not any(deployment_allowed(caller=caller, deployment=d) for d in visible):
        raise PermissionDeniedError(
            f"This key may not use the model `{model}`.", param="model", code="model_not_allowed"
        )
    for deployment in visible:
        if deployment_allowed(caller=caller, deployment=deployment) and base_model_tunable(
            deployment=deployment, model=_base_model(deployment)
        ):
            return deployment
    raise InvalidRequestError(
        f"Model {model} is not available for fine-tuning or does not exist.",
        param="model",
        code="model_not_available",
    )


def _fine_tune_file(*, caller: Caller, file_id: str, param: str) -> File:
    file = file_get_visible(caller=caller, file_id=file_id, param=param)
    if file.purpose != FilePurpose.FINE_TUNE:
        raise InvalidRequestError(
            f"File {file_id} has purpose `{file.purpose}`; a fine-tuning job's files must have "
            "purpose `fine-tune`.",
            param=param,
            code="invalid_file_purpose",
        )
    return file


def file_forward(*, file: File, upstream: FineTuningAPI, param: str) -> str:
    """The provider's id of `file` on this account: uploaded once, then reused. `param`: the
    job's parameter naming it, for the provider's refusal of its content."""
    known = ForwardedFile.objects.filter(file=file, upstream=upstream.account).first()
    if known is not None:
        return known.upstream_file_id
    with file_open(file=file) as stream:
        upstream_id = upstream.file_upload(filename=file.filename, stream=stream, param=param)
    try:
        ForwardedFile.objects.create(
            file=file,
            upstream=upstream.account,
            upstream_file_id=upstream_id,
            created_at=timezone.now(),
        )
    except IntegrityError:  # another job forwarded it meanwhile: use the first copy
        return ForwardedFile.objects.get(file=file, upstream=upstream.account).upstream_file_id
    return upstream_id


def job_create(
    *,
    caller: Caller,
    model: str,
    training_file: str,
    validation_file: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    method: dict[str, Any] | None = None,
    suffix: str | None = None,
    seed: int | None = None,
    metadata: dict[str, str] | None = None,
) -> FineTuningJob:
    """A job at the provider behind `model` on the caller's files, and its row. The provider's
    refusal (a bad file, say) is answered as the provider's error, and nothing is stored."""
    if not caller.is_master and caller.organization_id is None:
        # Its fine-tuned model would be served to every organization.
        raise PermissionDeniedError(
            "Fine-tuning needs a key of an organization (or the master key).",
            code="organization_required",
        )
    training = _fine_tune_file(caller=caller, file_id=training_file, param="training_file")
    validation = (
        _fine_tune_file(caller=caller, file_id=validation_file, param="validation_file")
        if validation_file
        else None
    )
    deployment = fine_tuning_deployment(caller=caller, model=model)
    upstream = fine_tuning_api(deployment)
    body: dict[str, Any] = {
        "model": _base_model(deployment),
        "suffix": suffix,
        "seed": seed,
        "metadata": metadata,
    }
    if hyperparameters:
        body["hyperparameters"] = hyperparameters
    if method:
        body["method"] = method
    # A job the provider cannot run uploads nothing.
    upstream.job_check(body=body)
    body["training_file"] = file_forward(file=training, upstream=upstream, param="training_file")
    body["validation_file"] = (
        file_forward(file=validation, upstream=upstream, param="validation_file")
        if validation
        else None
    )
    answer = upstream.job_create(body=body)
    with transaction.atomic():
        job = FineTuningJob(
            job_id=f"ftjob-{uuid.uuid4().hex[:24]}",
            organization_id=caller.organization_id,
            team_id=caller.team_id,
            key_id=caller.key_id,
            by_master=caller.is_master,
            deployment_id=deployment.id,
            provider=deployment.provider,
            model=model,
            base_model=body["model"],
            upstream_job_id=str(answer["id"]),
            training_file=training.file_id,
            validation_file=validation.file_id if validation else "",
            suffix=suffix or "",
            seed=answer.get("seed") if isinstance(answer.get("seed"), int) else seed,
            hyperparameters=hyperparameters or {},
            method=method,
            metadata=metadata or None,
            created_at=timezone.now(),
        )
        job_copy(job=job, answer=answer)
        job.save()
        job_id = job.job_id
        transaction.on_commit(lambda: job_sync_enqueue(job_id=job_id))
    return job


def job_cancel(*, job: FineTuningJob) -> FineTuningJob:
    return _job_action(job=job, action="cancel")


def job_pause(*, job: FineTuningJob) -> FineTuningJob:
    return _job_action(job=job, action="pause")


def job_resume(*, job: FineTuningJob) -> FineTuningJob:
    return _job_action(job=job, action="resume")


def _job_action(*, job: FineTuningJob, action: str) -> FineTuningJob:
    """Forward `cancel`, `pause` or `resume` to the provider and copy its answer. A job that
    ended can do none of them (400, as OpenAI answers)."""
    if job.status in ENDED:
        done = {"cancel": "cancelled", "pause": "paused", "resume": "resumed"}[action]
        raise InvalidRequestError(
            f"Fine-tuning job {job.job_id} has already {job.status}; it cannot be {done}.",
            param="fine_tuning_job_id",
            code="invalid_state",
        )
    answer = job_upstream(job=job).job_action(job_id=job.upstream_job_id, action=action)
    with transaction.atomic():
        job = FineTuningJob.objects.select_for_update().get(pk=job.pk)
        job_copy(job=job, answer=answer)
        job.save()
        job_id = job.job_id
        # The end (a cancel) is recorded and announced by the poller, as any other end.
        transaction.on_commit(lambda: job_sync_enqueue(job_id=job_id))
    return job


def fine_tuned_model_delete(*, caller: Caller, model: str) -> dict[str, Any]:
    """Delete the caller's fine-tuned model at the provider and stop serving it (its deployment
    and price row go; workers drop it at their next database check). Another tenant's model,
    and any model not fine-tuned here, is 404."""
    job = fine_tuned_job_for_model(caller=caller, model=model)
    if job is None:
        raise NotFoundError(
            f"The model `{model}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    try:
        job_upstream(job=job).model_delete(model=job.fine_tuned_model)
    except NotFoundError:
        pass  # deleted at the provider already: finish deleting it here
    with transaction.atomic():
        job = FineTuningJob.objects.select_for_update().get(pk=job.pk)
        if job.served_by is not None:
            deployment_delete(deployment=job.served_by)
            model_price_changed()
        job.served_by = None
        job.model_deleted = True
        job.save(update_fields=["served_by", "model_deleted"])
    return {"id": model, "object": "model", "deleted": True}
