"""/v1/assistants and /v1/threads (OpenAI's Assistants API v2) served by Ogem over chat
completions (docs/assistants.md); mounted on the gateway's Ninja API by the URL configuration
(`assistants_mount`).

The views are thin: they authenticate, check the request and run the selectors and services in
a worker thread. Another tenant's object answers 404 like one that never existed. A run is
advanced by a Celery task, or, when `stream` is true, by the request itself, whose answer is the
run's events as server-sent events.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from ninja import NinjaAPI

from assistants import checks
from assistants.models import Assistant, Message, Run, RunStep, Thread
from assistants.records import runs_expire
from assistants.runner import run_advance
from assistants.selectors import (
    QUEUED_GRACE,
    RUN_ACTIVE,
    assistant_get_visible,
    assistant_object,
    assistants_visible,
    message_get,
    message_object,
    messages_of,
    object_page,
    run_get,
    run_object,
    run_step_get,
    run_step_object,
    thread_get_visible,
    thread_object,
)
from assistants.services import (
    assistant_create,
    assistant_delete,
    assistant_update,
    message_create,
    message_delete,
    message_update,
    run_cancel,
    run_create,
    run_tool_outputs_submit,
    run_update,
    thread_create,
    thread_delete,
    thread_update,
    tool_resources_merge,
)
from gateway.blocking import blocking_run
from gateway.body import body_read_json
from gateway.context import Caller
from gateway.errors import GatewayError, InvalidRequestError
from gateway.registry import registry_get
from gateway.router import deployments_for
from gateway.views.common import (
    answer_headers,
    list_object,
    object_answer,
    object_caller,
)
from providers.base import Endpoint

logger = logging.getLogger(__name__)

_ASSISTANT_FIELDS = {
    "model",
    "name",
    "description",
    "instructions",
    "tools",
    "tool_resources",
    "metadata",
    "temperature",
    "top_p",
    "response_format",
    "reasoning_effort",
}
_RUN_FIELDS = {
    "assistant_id",
    "model",
    "instructions",
    "additional_instructions",
    "additional_messages",
    "tools",
    "metadata",
    "temperature",
    "top_p",
    "stream",
    "max_prompt_tokens",
    "max_completion_tokens",
    "truncation_strategy",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "reasoning_effort",
}
_THREAD_FIELDS = {"messages", "tool_resources", "metadata"}
_FILE_SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


async def _caller(request: HttpRequest) -> Caller:
    caller = await object_caller(request)
    beta = request.headers.get("OpenAI-Beta", "")
    if "assistants=v2" not in beta:
        raise InvalidRequestError(
            "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please try "
            "again by setting the header 'OpenAI-Beta: assistants=v2'.",
            param=None,
            code="invalid_beta",
        )
    return caller


def _body(request: HttpRequest) -> dict[str, Any]:
    return body_read_json(request).body


def _model_check(caller: Caller, model: Any) -> str:
    checks.text_check(model, param="model", limit=256, required=True)
    deployments_for(caller=caller, model=model, endpoint=Endpoint.CHAT, registry=registry_get())
    return str(model)


def _page_params(request: HttpRequest) -> dict[str, Any]:
    return {
        "order": checks.order_check(request.GET.get("order")),
        "after": request.GET.get("after") or None,
        "before": request.GET.get("before") or None,
        "limit": checks.limit_check(request.GET.get("limit")),
    }


def _assistant_fields(caller: Caller, body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    checks.unknown_check(body, _ASSISTANT_FIELDS)
    fields: dict[str, Any] = {}
    if not partial or "model" in body:
        fields["model"] = _model_check(caller, body.get("model"))
    makers: dict[str, Callable[[Any], Any]] = {
        "name": lambda v: checks.text_check(v, param="name", limit=checks.NAME_MAX),
        "description": lambda v: checks.text_check(
            v, param="description", limit=checks.DESCRIPTION_MAX
        ),
        "instructions": lambda v: checks.text_check(
            v, param="instructions", limit=checks.INSTRUCTIONS_MAX
        ),
        "tools": checks.tools_check,
        "tool_resources": checks.tool_resources_check,
        "metadata": checks.metadata_check,
        "temperature": lambda v: checks.number_check(v, param="temperature", low=0, high=2),
        "top_p": lambda v: checks.number_check(v, param="top_p", low=0, high=1),
        "response_format": checks.response_format_check,
        "reasoning_effort": checks.reasoning_effort_check,
    }
    for name, make in makers.items():
        if not partial or name in body:
            fields[name] = make(body.get(name))
    return fields


# ---- assistants ---------------------------------------------------------------------------------


async def assistants_create(request: HttpRequest) -> HttpResponse:
    caller = await _caller(request)
    fields = _assistant_fields(caller, _body(request), partial=False)
    assistant = await blocking_run(assistant_create, caller=caller, fields=fields)
    return object_answer(request, assistant_object(assistant))


async def assistants_list(request: HttpRequest) -> HttpResponse:
    caller = await _caller(request)
    params = _page_params(request)

    def read() -> tuple[list[Assistant], bool]:
        return object_page(assistants_visible(caller=caller), id_field="assistant_id", **params)

    rows, has_more = await blocking_run(read)
    return object_answer(request, list_object([assistant_object(r) for r in rows], has_more))


async def assistants_retrieve(request: HttpRequest, assistant_id: str) -> HttpResponse:
    caller = await _caller(request)
    assistant = await blocking_run(assistant_get_visible, caller=caller, assistant_id=assistant_id)
    return object_answer(request, assistant_object(assistant))


async def assistants_modify(request: HttpRequest, assistant_id: str) -> HttpResponse:
    caller = await _caller(request)
    changes = _assistant_fields(caller, _body(request), partial=True)

    def write() -> Assistant:
        assistant = assistant_get_visible(caller=caller, assistant_id=assistant_id)
        return assistant_update(assistant=assistant, changes=changes)

    return object_answer(request, assistant_object(await blocking_run(write)))


async def assistants_delete(request: HttpRequest, assistant_id: str) -> HttpResponse:
    caller = await _caller(request)

    def write() -> None:
        assistant_delete(assistant=assistant_get_visible(caller=caller, assistant_id=assistant_id))

    await blocking_run(write)
    return object_answer(
        request, {"id": assistant_id, "object": "assistant.deleted", "deleted": True}
    )


# ---- threads ------------------------------------------------------------------------------------


def _thread_fields(body: dict[str, Any], *, param: str = "") -> dict[str, Any]:
    prefix = f"{param}." if param else ""
    if param:
        checks.unknown_check_param(body, _THREAD_FIELDS, param)
    else:
        checks.unknown_check(body, _THREAD_FIELDS)
    return {
        "messages": checks.messages_check(body.get("messages"), param=f"{prefix}messages"),
        "tool_resources": checks.tool_resources_check(
            body.get("tool_resources"), param=f"{prefix}tool_resources"
        ),
        "metadata": checks.metadata_check(body.get("metadata")),
    }


async def threads_create(request: HttpRequest) -> HttpResponse:
    caller = await _caller(request)
    fields = _thread_fields(_body(request))
    thread = await blocking_run(thread_create, caller=caller, **fields)
    return object_answer(request, thread_object(thread))


async def threads_retrieve(request: HttpRequest, thread_id: str) -> HttpResponse:
    caller = await _caller(request)
    thread = await blocking_run(thread_get_visible, caller=caller, thread_id=thread_id)
    return object_answer(request, thread_object(thread))


async def threads_modify(request: HttpRequest, thread_id: str) -> HttpResponse:
    caller = await _caller(request)
    body = _body(request)
    checks.unknown_check(body, {"tool_resources", "metadata"})
    changes: dict[str, Any] = {}
    if "metadata" in body:
        changes["metadata"] = checks.metadata_check(body["metadata"])
    if "tool_resources" in body:
        changes["tool_resources"] = checks.tool_resources_check(body["tool_resources"])

    def write() -> Thread:
        thread = thread_get_visible(caller=caller, thread_id=thread_id)
        return thread_update(thread=thread, changes=changes)

    return object_answer(request, thread_object(await blocking_run(write)))


async def threads_delete(request: HttpRequest, thread_id: str) -> HttpResponse:
    caller = await _caller(request)

    def write() -> None:
        thread_delete(thread=thread_get_visible(caller=caller, thread_id=thread_id))

    await blocking_run(write)
    return object_answer(request, {"id": thread_id, "object": "thread.deleted", "deleted": True})


# ---- messages -----------------------------------------------------------------------------------


async def messages_create(request: HttpRequest, thread_id: str) -> HttpResponse:
    caller = await _caller(request)
    body = _body(request)
    checks.unknown_check(body, {"role", "content", "attachments", "metadata"})
    if "content" not in body:
        raise InvalidRequestError("Missing required parameter: 'content'.", param="content")
    fields = {
        "role": checks.role_check(body.get("role")),
        "content": checks.content_check(body.get("content")),
        "attachments": checks.attachments_check(body.get("attachments")),
        "metadata": checks.metadata_check(body.get("metadata")),
    }

    def write() -> Message:
        thread = thread_get_visible(caller=caller, thread_id=thread_id)
        return message_create(thread=thread, **fields)

    message = await blocking_run(write)
    return object_answer(request, message_object(message, thread_id=thread_id))


async def messages_list(request: HttpRequest, thread_id: str) -> HttpResponse:
    caller = await _caller(request)
    params = _page_params(request)
    run_id = request.GET.get("run_id")

    def read() -> tuple[list[Message], bool]:
        thread = thread_get_visible(caller=caller, thread_id=thread_id)
        return object_page(
            messages_of(thread=thread, run_id=run_id), id_field="message_id", **params
        )

    rows, has_more = await blocking_run(read)
    data = [message_object(row, thread_id=thread_id) for row in rows]
    return object_answer(request, list_object(data, has_more))


async def messages_retrieve(request: HttpRequest, thread_id: str, message_id: str) -> HttpResponse:
    caller = await _caller(request)

    def read() -> Message:
        thread = thread_get_visible(caller=caller, thread_id=thread_id)
        return message_get(thread=thread, message_id=message_id)

    return object_answer(request, message_object(await blocking_run(read), thread_id=thread_id))


async def messages_modify(request: HttpRequest, thread_id: str, message_id: str) -> HttpResponse:
    caller = await _caller(request)
    body = _body(request)
    checks.unknown_check(body, {"metadata"})
    metadata = checks.metadata_check(body.get("metadata"))

    def write() -> Message:
        thread = thread_get_visible(caller=caller, thread_id=thread_id)
        return message_update(
            message=message_get(thread=thread, message_id=message_id), metadata=metadata
        )

    return object_answer(request, message_object(await blocking_run(write), thread_id=thread_id))


async def messages_delete(request: HttpRequest, thread_id: str, message_id: str) -> HttpResponse:
    caller = await _caller(request)

    def write() -> None:
        thread = thread_get_visible(caller=caller, thread_id=thread_id)
        message_delete(message=message_get(thread=thread, message_id=message_id))

    await blocking_run(write)
    return object_answer(
        request, {"id": message_id, "object": "thread.message.deleted", "deleted": True}
    )


# ---- runs ---------------------------------------------------------------------------------------


def _run_request(
    caller: Caller, body: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The run's request checked: its assistant id, the overrides given, and the rest (stream,
    additional_instructions, additional_messages)."""
    assistant_id = checks.text_check(
        body.get("assistant_id"), param="assistant_id", limit=64, required=True
    )
    overrides: dict[str, Any] = {}
    if body.get("model") is not None:
        overrides["model"] = _model_check(caller, body["model"])
    if body.get("instructions") is not None:
        overrides["instructions"] = checks.text_check(
            body["instructions"], param="instructions", limit=checks.INSTRUCTIONS_MAX
        )
    if body.get("tools") is not None:
        overrides["tools"] = checks.tools_check(body["tools"])
    if body.get("temperature") is not None:
        overrides["temperature"] = checks.number_check(
            body["temperature"], param="temperature", low=0, high=2
        )
    if body.get("top_p") is not None:
        overrides["top_p"] = checks.number_check(body["top_p"], param="top_p", low=0, high=1)
    if body.get("response_format") is not None:
        overrides["response_format"] = checks.response_format_check(body["response_format"])
    if body.get("reasoning_effort") is not None:
        overrides["reasoning_effort"] = checks.reasoning_effort_check(body["reasoning_effort"])
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError("Invalid type for 'stream': expected a boolean.", param="stream")
    parallel = body.get("parallel_tool_calls", True)
    if not isinstance(parallel, bool):
        raise InvalidRequestError(
            "Invalid type for 'parallel_tool_calls': expected a boolean.",
            param="parallel_tool_calls",
        )
    rest = {
        "stream": bool(stream),
        "additional_instructions": checks.text_check(
            body.get("additional_instructions"),
            param="additional_instructions",
            limit=checks.INSTRUCTIONS_MAX,
        ),
        "additional_messages": checks.messages_check(
            body.get("additional_messages"), param="additional_messages"
        ),
        "metadata": checks.metadata_check(body.get("metadata")),
        "max_prompt_tokens": checks.tokens_check(
            body.get("max_prompt_tokens"), param="max_prompt_tokens"
        ),
        "max_completion_tokens": checks.tokens_check(
            body.get("max_completion_tokens"), param="max_completion_tokens"
        ),
        "truncation_strategy": checks.truncation_check(body.get("truncation_strategy")),
        "tool_choice": body.get("tool_choice"),
        "parallel_tool_calls": parallel,
    }
    return str(assistant_id), overrides, rest


def _run_fields(
    assistant: Assistant, overrides: dict[str, Any], rest: dict[str, Any]
) -> dict[str, Any]:
    """The run's settings: the request's overrides over the assistant's."""
    instructions = overrides.get("instructions", assistant.instructions) or ""
    if rest["additional_instructions"]:
        instructions = f"{instructions}\n\n{rest['additional_instructions']}".strip()
    tools = overrides.get("tools", assistant.tools)
    return {
        "model": overrides.get("model", assistant.model),
        "instructions": instructions,
        "tools": tools,
        "temperature": overrides.get("temperature", assistant.temperature),
        "top_p": overrides.get("top_p", assistant.top_p),
        "response_format": overrides.get("response_format", assistant.response_format),
        "reasoning_effort": overrides.get("reasoning_effort", assistant.reasoning_effort),
        "metadata": rest["metadata"],
        "max_prompt_tokens": rest["max_prompt_tokens"],
        "max_completion_tokens": rest["max_completion_tokens"],
        "truncation_strategy": rest["truncation_strategy"],
        "tool_choice": checks.tool_choice_check(rest["tool_choice"], tools),
        "parallel_tool_calls": rest["parallel_tool_calls"],
    }


def _sse(event: str, data: Any) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _run_stream(
    caller: Caller, run_id: str, opening: list[tuple[str, dict[str, Any]]]
) -> AsyncIterator[bytes]:
    """The run's events as server-sent events while this request advances it, then `done`. A
    client that goes away leaves the run to the sweep (its hold lapses)."""
    for event, data in opening:
        yield _sse(event, data)
    try:
        async for event, data in run_advance(run_id=run_id, caller=caller, stream=True):
            yield _sse(event, data)
    except GatewayError as error:
        yield _sse("error", error.to_body()["error"])
    except Exception:
        logger.exception("streamed run %s failed", run_id)
        yield _sse("error", {"message": "The run stopped on a server error.", "type": "api_error"})
    yield b"event: done\ndata: [DONE]\n\n"


def _streamed(
    request: HttpRequest, caller: Caller, run_id: str, opening: list[tuple[str, dict[str, Any]]]
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        _run_stream(caller, run_id, opening), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    answer_headers(request, response)
    return response


async def runs_create(request: HttpRequest, thread_id: str) -> HttpResponse:
    caller = await _caller(request)
    body = _body(request)
    checks.unknown_check(body, _RUN_FIELDS)
    assistant_id, overrides, rest = _run_request(caller, body)

    def write() -> Run:
        thread = thread_get_visible(caller=caller, thread_id=thread_id)
        assistant = assistant_get_visible(caller=caller, assistant_id=assistant_id)
        return run_create(
            caller=caller,
            thread=thread,
            assistant=assistant,
            fields=_run_fields(assistant, overrides, rest),
            additional_messages=rest["additional_messages"],
            enqueue=not rest["stream"],
        )

    run = await blocking_run(write)
    created = run_object(run, thread_id=thread_id)
    if rest["stream"]:
        opening = [("thread.run.created", created), ("thread.run.queued", created)]
        return _streamed(request, caller, run.run_id, opening)
    return object_answer(request, created)


async def threads_create_and_run(request: HttpRequest) -> HttpResponse:
    """Create a thread and run it in one request (POST /v1/threads/runs)."""
    caller = await _caller(request)
    body = _body(request)
    checks.unknown_check(
        body,
        (_RUN_FIELDS - {"additional_messages", "additional_instructions"})
        | {"thread", "tool_resources"},
    )
    thread_body = body.get("thread") or {}
    if not isinstance(thread_body, dict):
        raise InvalidRequestError("Invalid type for 'thread': expected an object.", param="thread")
    thread_fields = _thread_fields(thread_body, param="thread")
    run_resources = checks.tool_resources_check(body.get("tool_resources"))
    assistant_id, overrides, rest = _run_request(caller, body)

    def write() -> tuple[Thread, Run]:
        from django.db import transaction

        assistant = assistant_get_visible(caller=caller, assistant_id=assistant_id)
        with transaction.atomic():
            thread = thread_create(caller=caller, **thread_fields)
            run = run_create(
                caller=caller,
                thread=thread,
                assistant=assistant,
                fields=_run_fields(assistant, overrides, rest),
                additional_messages=[],
                enqueue=not rest["stream"],
            )
            if run_resources:
                run.tool_resources = tool_resources_merge(run.tool_resources, run_resources)
                run.save(update_fields=["tool_resources"])
        return thread, run

    thread, run = await blocking_run(write)
    created = run_object(run, thread_id=thread.thread_id)
    if rest["stream"]:
        opening = [
            ("thread.created", thread_object(thread)),
            ("thread.run.created", created),
            ("thread.run.queued", created),
        ]
        return _streamed(request, caller, run.run_id, opening)
    return object_answer(request, created)


async def runs_list(request: HttpRequest, thread_id: str) -> HttpResponse:
    caller = await _caller(request)
    params = _page_params(request)

    def read() -> tuple[list[Run], bool]:
        thread = thread_get_visible(caller=caller, thread_id=thread_id)
        return object_page(thread.runs.all(), id_field="run_id", **params)

    rows, has_more = await blocking_run(read)
    data = [run_object(row, thread_id=thread_id) for row in rows]
    return object_answer(request, list_object(data, has_more))


def _run_current(caller: Caller, thread_id: str, run_id: str) -> Run:
    """The caller's run, brought up to date: expired once past `expires_at`; enqueued again
    when no live worker holds it (its worker died: no beat runs in the embedded default)."""
    from assistants.tasks import run_advance_enqueue

    thread = thread_get_visible(caller=caller, thread_id=thread_id)
    run = run_get(thread=thread, run_id=run_id)
    now = timezone.now()
    if run.status in RUN_ACTIVE and run.expires_at is not None and run.expires_at <= now:
        runs_expire(runs=[run])
        run.refresh_from_db()
    elif run.status in (Run.Status.QUEUED, Run.Status.IN_PROGRESS, Run.Status.CANCELLING) and (
        (run.lease_expires_at is not None and run.lease_expires_at < now)
        or (run.lease_expires_at is None and (now - run.created_at).total_seconds() > QUEUED_GRACE)
    ):
        run_advance_enqueue(run_id=run.run_id)
        run.refresh_from_db()
    return run


async def runs_retrieve(request: HttpRequest, thread_id: str, run_id: str) -> HttpResponse:
    caller = await _caller(request)
    run = await blocking_run(_run_current, caller=caller, thread_id=thread_id, run_id=run_id)
    return object_answer(request, run_object(run, thread_id=thread_id))


async def runs_modify(request: HttpRequest, thread_id: str, run_id: str) -> HttpResponse:
    caller = await _caller(request)
    body = _body(request)
    checks.unknown_check(body, {"metadata"})
    metadata = checks.metadata_check(body.get("metadata"))

    def write() -> Run:
        thread = thread_get_visible(caller=caller, thread_id=thread_id)
        return run_update(run=run_get(thread=thread, run_id=run_id), metadata=metadata)

    return object_answer(request, run_object(await blocking_run(write), thread_id=thread_id))


async def runs_cancel(request: HttpRequest, thread_id: str, run_id: str) -> HttpResponse:
    caller = await _caller(request)

    def write() -> Run:
        return run_cancel(run=_run_current(caller, thread_id, run_id))

    return object_answer(request, run_object(await blocking_run(write), thread_id=thread_id))


async def runs_submit_tool_outputs(
    request: HttpRequest, thread_id: str, run_id: str
) -> HttpResponse:
    caller = await _caller(request)
    body = _body(request)
    checks.unknown_check(body, {"tool_outputs", "stream"})
    outputs = body.get("tool_outputs")
    if not isinstance(outputs, list):
        raise InvalidRequestError(
            "Missing required parameter: 'tool_outputs'.", param="tool_outputs"
        )
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequestError("Invalid type for 'stream': expected a boolean.", param="stream")

    def write() -> tuple[Run, RunStep | None]:
        run = _run_current(caller, thread_id, run_id)
        return run_tool_outputs_submit(run=run, tool_outputs=outputs, enqueue=not stream)

    run, step = await blocking_run(write)
    queued = run_object(run, thread_id=thread_id)
    if stream:
        opening = []
        if step is not None:
            opening.append(("thread.run.step.completed", run_step_object(step, run=run)))
        opening.append(("thread.run.queued", queued))
        return _streamed(request, caller, run.run_id, opening)
    return object_answer(request, queued)


# ---- run steps ----------------------------------------------------------------------------------


def _step_answer(step: RunStep, run: Run, *, with_content: bool) -> dict[str, Any]:
    data = run_step_object(step, run=run)
    if not with_content and step.type == "tool_calls":
        # OpenAI gives file_search results' content only when `include[]` asks for it.
        calls = []
        for call in data["step_details"]["tool_calls"]:
            if call["type"] == "file_search":
                results = [
                    {k: v for k, v in result.items() if k != "content"}
                    for result in call["file_search"]["results"]
                ]
                call = {**call, "file_search": {**call["file_search"], "results": results}}
            calls.append(call)
        data["step_details"] = {**data["step_details"], "tool_calls": calls}
    return data


def _include(request: HttpRequest) -> bool:
    included = request.GET.getlist("include[]") + request.GET.getlist("include")
    for value in included:
        if value != _FILE_SEARCH_CONTENT:
            raise InvalidRequestError(
                f"Invalid value for 'include[]': '{value}'.", param="include", code="invalid_value"
            )
    return bool(included)


async def run_steps_list(request: HttpRequest, thread_id: str, run_id: str) -> HttpResponse:
    caller = await _caller(request)
    params = _page_params(request)
    with_content = _include(request)

    def read() -> tuple[Run, list[RunStep], bool]:
        thread = thread_get_visible(caller=caller, thread_id=thread_id)
        run = run_get(thread=thread, run_id=run_id)
        rows, has_more = object_page(run.steps.all(), id_field="step_id", **params)
        return run, rows, has_more

    run, rows, has_more = await blocking_run(read)
    data = [_step_answer(row, run, with_content=with_content) for row in rows]
    return object_answer(request, list_object(data, has_more))


async def run_steps_retrieve(
    request: HttpRequest, thread_id: str, run_id: str, step_id: str
) -> HttpResponse:
    caller = await _caller(request)
    with_content = _include(request)

    def read() -> tuple[Run, RunStep]:
        thread = thread_get_visible(caller=caller, thread_id=thread_id)
        run = run_get(thread=thread, run_id=run_id)
        return run, run_step_get(run=run, step_id=step_id)

    run, step = await blocking_run(read)
    return object_answer(request, _step_answer(step, run, with_content=with_content))


# ---- routes -------------------------------------------------------------------------------------


def assistants_mount(api: NinjaAPI) -> None:
    """Add the /v1/assistants and /v1/threads routes to the gateway's API (before its
    catch-all). /threads/runs comes before /threads/{thread_id}."""
    json_body = {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }
    routes: list[tuple[str, str, Callable[..., Any], str]] = [
        ("post", "/assistants", assistants_create, "Create an assistant"),
        ("get", "/assistants", assistants_list, "List assistants"),
        ("get", "/assistants/{assistant_id}", assistants_retrieve, "Retrieve an assistant"),
        ("post", "/assistants/{assistant_id}", assistants_modify, "Modify an assistant"),
        ("delete", "/assistants/{assistant_id}", assistants_delete, "Delete an assistant"),
        ("post", "/threads/runs", threads_create_and_run, "Create a thread and run it"),
        ("post", "/threads", threads_create, "Create a thread"),
        ("get", "/threads/{thread_id}", threads_retrieve, "Retrieve a thread"),
        ("post", "/threads/{thread_id}", threads_modify, "Modify a thread"),
        ("delete", "/threads/{thread_id}", threads_delete, "Delete a thread"),
        ("post", "/threads/{thread_id}/messages", messages_create, "Create a message"),
        ("get", "/threads/{thread_id}/messages", messages_list, "List messages"),
        (
            "get",
            "/threads/{thread_id}/messages/{message_id}",
            messages_retrieve,
            "Retrieve a message",
        ),
        ("post", "/threads/{thread_id}/messages/{message_id}", messages_modify, "Modify a message"),
        (
            "delete",
            "/threads/{thread_id}/messages/{message_id}",
            messages_delete,
            "Delete a message",
        ),
        ("post", "/threads/{thread_id}/runs", runs_create, "Create a run"),
        ("get", "/threads/{thread_id}/runs", runs_list, "List runs"),
        ("get", "/threads/{thread_id}/runs/{run_id}", runs_retrieve, "Retrieve a run"),
        ("post", "/threads/{thread_id}/runs/{run_id}", runs_modify, "Modify a run"),
        ("post", "/threads/{thread_id}/runs/{run_id}/cancel", runs_cancel, "Cancel a run"),
        (
            "post",
            "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
            runs_submit_tool_outputs,
            "Submit tool outputs to a run",
        ),
        ("get", "/threads/{thread_id}/runs/{run_id}/steps", run_steps_list, "List run steps"),
        (
            "get",
            "/threads/{thread_id}/runs/{run_id}/steps/{step_id}",
            run_steps_retrieve,
            "Retrieve a run step",
        ),
    ]
    for method, path, view, summary in routes:
        extra = json_body if method == "post" and "{" not in path.rsplit("/", 1)[-1] else None
        # Unique among /v1's operations (`messages_create` is Anthropic's Messages API).
        name = view.__name__
        operation = name if name.startswith(("assistants_", "threads_")) else f"threads_{name}"
        getattr(api, method)(path, summary=summary, operation_id=operation, openapi_extra=extra)(
            view
        )
