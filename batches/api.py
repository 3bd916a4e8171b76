"""/v1/batches (OpenAI's Batch API): create, retrieve, list, cancel; mounted on the gateway's
Ninja API by the URL configuration (`batches_mount`).

The views are thin: they authenticate, check the request, and run the selectors and services in
a worker thread (the database is blocking). Another tenant's batch answers 404 like one that
never existed.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI

from batches.models import Batch
from batches.selectors import batch_get_visible, batch_object, batch_page, batches_visible
from batches.services import COMPLETION_WINDOWS, batch_cancel, batch_create, batch_resume_stale
from files.batch_input import BATCH_ENDPOINTS
from files.services import expires_after_check
from gateway.blocking import blocking_run
from gateway.body import body_read_json, stored_metadata_check
from gateway.errors import InvalidRequestError
from gateway.views.common import list_object, object_answer, object_caller

T = TypeVar("T")

LIMIT_DEFAULT = 20
LIMIT_MAX = 100
_FIELDS = {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"}


def _string(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        raise InvalidRequestError(f"Missing required parameter: `{name}`.", param=name)
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidRequestError(f"`{name}` must be a string.", param=name)
    return value


async def batches_create(request: HttpRequest) -> HttpResponse:
    caller = await object_caller(request)
    body = body_read_json(request).body
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise InvalidRequestError(f"Unknown parameter: `{unknown[0]}`.", param=unknown[0])
    input_file_id = _string(body, "input_file_id")
    endpoint = _string(body, "endpoint")
    if endpoint not in BATCH_ENDPOINTS:
        raise InvalidRequestError(
            f"`endpoint` {endpoint!r} is not supported; use one of {', '.join(BATCH_ENDPOINTS)}.",
            param="endpoint",
            code="invalid_value",
        )
    window = _string(body, "completion_window")
    if window not in COMPLETION_WINDOWS:
        raise InvalidRequestError(
            f"`completion_window` {window!r} is not supported; use one of "
            f"{', '.join(COMPLETION_WINDOWS)}.",
            param="completion_window",
            code="invalid_value",
        )
    metadata = stored_metadata_check(body.get("metadata"))
    output_expires_after = _expires_after(body.get("output_expires_after"))
    batch = await blocking_run(
        batch_create,
        caller=caller,
        input_file_id=input_file_id,
        endpoint=endpoint,
        completion_window=window,
        metadata=metadata,
        output_expires_after=output_expires_after,
    )
    return object_answer(request, batch_object(batch))


def _expires_after(value: Any) -> int | None:
    """`output_expires_after` (`{"anchor": "created_at", "seconds": N}`, bounded as a file's
    `expires_after`): the seconds, or None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequestError(
            "`output_expires_after` must be an object.", param="output_expires_after"
        )
    try:
        return expires_after_check(anchor=value.get("anchor"), seconds=value.get("seconds"))
    except InvalidRequestError as error:
        error.param = f"output_{error.param}" if error.param else "output_expires_after"
        raise


async def batches_list(request: HttpRequest) -> HttpResponse:
    caller = await object_caller(request)
    raw_limit = request.GET.get("limit")
    limit = LIMIT_DEFAULT
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIMIT_MAX:
            raise InvalidRequestError(
                f"`limit` must be an integer from 1 to {LIMIT_MAX}.", param="limit"
            )
        limit = int(raw_limit)
    after_id = request.GET.get("after") or None

    def read() -> tuple[list[Batch], bool]:
        after = None
        if after_id is not None:
            after = batches_visible(caller=caller).filter(batch_id=after_id).first()
            if after is None:
                raise InvalidRequestError(f"No batch found with id '{after_id}'.", param="after")
        return batch_page(caller=caller, after=after, limit=limit)

    rows, has_more = await blocking_run(read)
    data = [batch_object(row) for row in rows]
    return object_answer(
        request,
        list_object(data, has_more),
    )


async def batches_retrieve(request: HttpRequest, batch_id: str) -> HttpResponse:
    caller = await object_caller(request)

    def read() -> Batch:
        batch = batch_get_visible(caller=caller, batch_id=batch_id)
        if settings.OGEM_BATCH_RUNNER == "thread":
            # No beat in the embedded default: a batch whose thread died with its process
            # resumes when it is next looked at.
            batch_resume_stale(batch=batch)
        return batch

    return object_answer(request, batch_object(await blocking_run(read)))


async def batches_cancel(request: HttpRequest, batch_id: str) -> HttpResponse:
    caller = await object_caller(request)

    def cancel() -> Batch:
        return batch_cancel(batch=batch_get_visible(caller=caller, batch_id=batch_id))

    return object_answer(request, batch_object(await blocking_run(cancel)))


def batches_mount(api: NinjaAPI) -> None:
    """Add the /v1/batches routes to the gateway's API (before its catch-all)."""
    json_body = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }
    api.post(
        "/batches", summary="Create a batch", openapi_extra=json_body, operation_id="batches_create"
    )(batches_create)
    api.get("/batches", summary="List batches", operation_id="batches_list")(batches_list)
    api.get("/batches/{batch_id}", summary="Retrieve a batch", operation_id="batches_retrieve")(
        batches_retrieve
    )
    api.post("/batches/{batch_id}/cancel", summary="Cancel a batch", operation_id="batches_cancel")(
        batches_cancel
    )
