"""/v1/fine_tuning/jobs (OpenAI's fine-tuning API): create, list, retrieve, cancel, pause,
resume, events, checkpoints; and DELETE /v1/models/{model} for a fine-tuned model. Mounted on the
gateway's Ninja API by the URL configuration (`fine_tuning_mount`).

The views are thin: they authenticate, check the request, and run the selectors and services in
a worker thread (the database and the provider's API are blocking). Another tenant's job answers
404 like one that never existed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import NinjaAPI

from fine_tuning.models import FineTuningJob
from fine_tuning.poller import job_sync
from fine_tuning.selectors import (
    ENDED,
    checkpoint_object,
    checkpoint_page,
    event_object,
    event_page,
    job_get_visible,
    job_object,
    job_page,
    jobs_visible,
)
from fine_tuning.services import (
    fine_tuned_model_delete,
    job_cancel,
    job_create,
    job_pause,
    job_resume,
)
from gateway.blocking import blocking_run
from gateway.body import body_read_json, stored_metadata_check
from gateway.errors import GatewayError, InvalidRequestError
from gateway.views.common import list_object, object_answer, object_caller

LIMIT_DEFAULT = 20
LIMIT_MAX = 100
_FIELDS = {
    "model",
    "training_file",
    "validation_file",
    "hyperparameters",
    "suffix",
    "seed",
    "method",
    "metadata",
    "integrations",
}
_METADATA_QUERY = re.compile(r"metadata\[([A-Za-z0-9_\-.]{1,64})\]")
SUFFIX_MAX = 64
SEED_MAX = 2_147_483_647
METHODS = ("supervised", "dpo", "reinforcement")


def _string(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequestError(f"Missing required parameter: `{name}`.", param=name)
        return None
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidRequestError(f"`{name}` must be a non-empty string.", param=name)
    return value


def _auto_or_number(value: Any, *, name: str, integer: bool, low: float, high: float | None) -> Any:
    if value == "auto":
        return value
    kinds = (int,) if integer else (int, float)
    if (
        isinstance(value, bool)
        or not isinstance(value, kinds)
        or value < low
        or (value == low and not integer)
        or (high is not None and value > high)
    ):
        bound = f"from {low:g} to {high:g}" if high is not None else f"above {low:g}"
        kind = "an integer" if integer else "a number"
        raise InvalidRequestError(
            f'`hyperparameters.{name}` must be "auto" or {kind} {bound}.',
            param=f"hyperparameters.{name}",
            code="invalid_value",
        )
    return value


def _hyperparameters(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError("`hyperparameters` must be an object.", param="hyperparameters")
    unknown = sorted(set(value) - {"batch_size", "learning_rate_multiplier", "n_epochs"})
    if unknown:
        raise InvalidRequestError(
            f"Unknown parameter: `hyperparameters.{unknown[0]}`.",
            param=f"hyperparameters.{unknown[0]}",
        )
    checked: dict[str, Any] = {}
    if "batch_size" in value:
        checked["batch_size"] = _auto_or_number(
            value["batch_size"], name="batch_size", integer=True, low=1, high=256
        )
    if "learning_rate_multiplier" in value:
        checked["learning_rate_multiplier"] = _auto_or_number(
            value["learning_rate_multiplier"],
            name="learning_rate_multiplier",
            integer=False,
            low=0,
            high=None,
        )
    if "n_epochs" in value:
        checked["n_epochs"] = _auto_or_number(
            value["n_epochs"], name="n_epochs", integer=True, low=1, high=50
        )
    return checked


def _method(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in METHODS:
        raise InvalidRequestError(
            f"`method.type` must be one of {', '.join(METHODS)}.",
            param="method.type",
            code="invalid_value",
        )
    return value


async def jobs_create(request: HttpRequest) -> HttpResponse:
    caller = await object_caller(request)
    body = body_read_json(request).body
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidRequestError(f"Unknown parameter: `{unknown[0]}`.", param=unknown[0])
    if body.get("integrations"):
        raise InvalidRequestError(
            "`integrations` are not supported by this gateway.",
            param="integrations",
            code="unsupported_parameter",
        )
    suffix = _string(body, "suffix", required=False)
    if suffix is not None and len(suffix) > SUFFIX_MAX:
        raise InvalidRequestError(
            f"`suffix` may be at most {SUFFIX_MAX} characters long.", param="suffix"
        )
    seed = body.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX
    ):
        raise InvalidRequestError(
            f"`seed` must be an integer from 0 to {SEED_MAX}.", param="seed", code="invalid_value"
        )
    job = await blocking_run(
        job_create,
        caller=caller,
        model=_string(body, "model"),
        training_file=_string(body, "training_file"),
        validation_file=_string(body, "validation_file", required=False),
        hyperparameters=_hyperparameters(body.get("hyperparameters")),
        method=_method(body.get("method")),
        suffix=suffix,
        seed=seed,
        metadata=stored_metadata_check(body.get("metadata")) or None,
    )
    return object_answer(request, job_object(job))


def _limit(request: HttpRequest) -> int:
    raw = request.GET.get("limit")
    if raw is None:
        return LIMIT_DEFAULT
    if not raw.isdigit() or not 1 <= int(raw) <= LIMIT_MAX:
        raise InvalidRequestError(
            f"`limit` must be an integer from 1 to {LIMIT_MAX}.", param="limit"
        )
    return int(raw)


async def jobs_list(request: HttpRequest) -> HttpResponse:
    caller = await object_caller(request)
    limit = _limit(request)
    after_id = request.GET.get("after") or None
    metadata: dict[str, str] = {}
    for name, value in request.GET.items():
        match = _METADATA_QUERY.fullmatch(name)
        if match:
            metadata[match.group(1)] = value

    def read() -> tuple[list[FineTuningJob], bool]:
        after = None
        if after_id is not None:
            after = jobs_visible(caller=caller).filter(job_id=after_id).first()
            if after is None:
                raise InvalidRequestError(
                    f"No fine-tuning job found with id '{after_id}'.", param="after"
                )
        return job_page(caller=caller, after=after, limit=limit, metadata=metadata)

    rows, has_more = await blocking_run(read)
    return object_answer(
        request, {"object": "list", "data": [job_object(r) for r in rows], "has_more": has_more}
    )


def _fresh(job: FineTuningJob) -> FineTuningJob:
    """With no beat to poll (the embedded default, OGEM_FINE_TUNING_SYNC_ON_READ), a job not
    ended is synced when it is looked at, at most once a second; the provider being away leaves
    the stored job as it is."""
    if not settings.OGEM_FINE_TUNING_SYNC_ON_READ:
        return job
    if job.status in ENDED and job.ended_notified:
        return job
    if job.synced_at is not None and timezone.now() - job.synced_at < timedelta(seconds=1):
        return job
    try:
        return job_sync(job_id=job.job_id) or job
    except GatewayError:
        return job


def _visible(caller: Any, job_id: str) -> FineTuningJob:
    return _fresh(job_get_visible(caller=caller, job_id=job_id))


async def jobs_retrieve(request: HttpRequest, fine_tuning_job_id: str) -> HttpResponse:
    caller = await object_caller(request)
    job = await blocking_run(_visible, caller=caller, job_id=fine_tuning_job_id)
    return object_answer(request, job_object(job))


def _action(
    service: Callable[..., FineTuningJob],
) -> Callable[[HttpRequest, str], Any]:
    async def view(request: HttpRequest, fine_tuning_job_id: str) -> HttpResponse:
        caller = await object_caller(request)

        def act() -> FineTuningJob:
            return service(job=job_get_visible(caller=caller, job_id=fine_tuning_job_id))

        return object_answer(request, job_object(await blocking_run(act)))

    return view


async def jobs_events(request: HttpRequest, fine_tuning_job_id: str) -> HttpResponse:
    caller = await object_caller(request)
    limit = _limit(request)
    after = request.GET.get("after") or None

    def read() -> dict[str, Any]:
        job = _visible(caller, fine_tuning_job_id)
        rows, has_more = event_page(job=job, after=after, limit=limit)
        return {"object": "list", "data": [event_object(r) for r in rows], "has_more": has_more}

    return object_answer(request, await blocking_run(read))


async def jobs_checkpoints(request: HttpRequest, fine_tuning_job_id: str) -> HttpResponse:
    caller = await object_caller(request)
    limit = _limit(request)
    after = request.GET.get("after") or None

    def read() -> dict[str, Any]:
        job = _visible(caller, fine_tuning_job_id)
        rows, has_more = checkpoint_page(job=job, after=after, limit=limit)
        data = [checkpoint_object(r, job=job) for r in rows]
        return list_object(data, has_more)

    return object_answer(request, await blocking_run(read))


async def model_delete(request: HttpRequest, model: str) -> HttpResponse:
    caller = await object_caller(request)
    answer = await blocking_run(fine_tuned_model_delete, caller=caller, model=model)
    return object_answer(request, answer)


def fine_tuning_mount(api: NinjaAPI) -> None:
    """Add the /v1/fine_tuning routes and DELETE /v1/models/{model} to the gateway's API
    (before its catch-all)."""
    json_body = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }
    jobs = "/fine_tuning/jobs"
    job = "/fine_tuning/jobs/{fine_tuning_job_id}"
    api.post(
        jobs,
        summary="Create a fine-tuning job",
        openapi_extra=json_body,
        operation_id="fine_tuning_jobs_create",
    )(jobs_create)
    api.get(jobs, summary="List fine-tuning jobs", operation_id="fine_tuning_jobs_list")(jobs_list)
    api.get(job, summary="Retrieve a fine-tuning job", operation_id="fine_tuning_jobs_retrieve")(
        jobs_retrieve
    )
    for action, service in (("cancel", job_cancel), ("pause", job_pause), ("resume", job_resume)):
        api.post(
            f"{job}/{action}",
            summary=f"{action.capitalize()} a fine-tuning job",
            operation_id=f"fine_tuning_jobs_{action}",
        )(_action(service))
    api.get(
        f"{job}/events",
        summary="List a fine-tuning job's events",
        operation_id="fine_tuning_jobs_events",
    )(jobs_events)
    api.get(
        f"{job}/checkpoints",
        summary="List a fine-tuning job's checkpoints",
        operation_id="fine_tuning_jobs_checkpoints",
    )(jobs_checkpoints)
    api.delete(
        "/models/{path:model}", summary="Delete a fine-tuned model", operation_id="models_delete"
    )(model_delete)
