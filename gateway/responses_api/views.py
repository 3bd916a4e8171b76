"""`/v1/responses`: create (streamed or not, in the background or not), retrieve, delete, cancel
and list input items (docs/responses.md).

A model whose every deployment is OpenAI or Azure gets the request as it came (pass-through, the
upstream's stream relayed); Ogem records who owns the response and which deployment holds it,
and forwards the other routes there. Every other model is served by Ogem over chat completions:
the request is translated (translate.py), runs through the /v1 pipeline as a chat completion
recorded as `responses` (routing, limits, budgets, one request log), and the answer or stream is
translated back (stream.py). Such a response, unless `store: false`, is kept in the database
(`StoredResponse`) before its answer (or its stream's `response.completed`) is sent, so a
`previous_response_id` on any worker finds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone

from gateway.auth import caller_authenticate
from gateway.blocking import blocking_run
from gateway.body import Inbound, body_read_json
from gateway.context import Caller
from gateway.errors import GatewayError, InvalidRequestError, NotFoundError
from gateway.internal import InternalStreamError, internal_call
from gateway.models import StoredResponse
from gateway.params import params_check
from gateway.registry import registry_get
from gateway.relay import relay
from gateway.responses import json_response, request_id_for
from gateway.responses_api.file_search import Rounds, file_search_check, file_search_rounds
from gateway.responses_api.file_search_stream import file_search_events, file_search_stream_open
from gateway.responses_api.stream import EventTranslator, sse
from gateway.responses_api.translate import (
    ResponsesRequest,
    chat_body_build,
    file_search_tool,
    model_check,
    new_id,
    output_from_completion,
    request_check,
    response_finish,
    response_shell,
    usage_from_chat,
)
from gateway.router import deployments_for
from gateway.selectors import stored_response_find, stored_response_get
from gateway.services import (
    RESPONSE_RUNNING,
    stored_response_cancel,
    stored_response_delete,
    stored_response_progress,
    stored_response_write,
)
from gateway.views.common import object_answer, request_timing_start
from ogem_site.pg import pg_enabled
from providers.base import Deployment, Endpoint
from providers.registry import adapter_get
from providers.sse import SSEParser

logger = logging.getLogger(__name__)
T = TypeVar("T")

LIMIT_DEFAULT = 20
LIMIT_MAX = 100
# A background response runs at most this long. One found still running after it has lost its
# worker (stopped or restarted): it is failed then, so that no response runs forever.
BACKGROUND_LIMIT_SECONDS = 3600.0
# Headers of the pipeline's answer that do not describe the translated body.
_NOT_COPIED = frozenset({"content-type", "content-length"})
# Background responses running in this process: response id -> its task (a strong reference).
_running: dict[str, asyncio.Task[None]] = {}


def _copy_headers(source: HttpResponse, target: HttpResponse) -> HttpResponse:
    for name, value in source.items():
        if name.lower() not in _NOT_COPIED:
            target[name] = value
    return target


def _not_found(response_id: str) -> NotFoundError:
    return NotFoundError(
        f"Response with id '{response_id}' not found.", param="response_id", code="not_found"
    )


def _native(candidates: tuple[Deployment, ...]) -> bool:
    """Whether every deployment the request may reach serves the Responses API itself."""
    for deployment in candidates:
        adapter = adapter_get(deployment.provider)
        if adapter is None or Endpoint.RESPONSES not in adapter.endpoints:
            return False
    return True


async def _caller(request: HttpRequest, response_id: str = "") -> Caller:
    request_timing_start(request)
    caller = await caller_authenticate(request)
    if "\x00" in response_id:  # in no id, and PostgreSQL refuses it in a query
        raise _not_found(response_id)
    return caller


async def _owned(caller: Caller, response_id: str) -> StoredResponse:
    stored = await blocking_run(stored_response_get, caller=caller, response_id=response_id)
    if stored is None:
        raise _not_found(response_id)
    if (
        stored.status in RESPONSE_RUNNING
        and not stored.deployment_id
        and response_id not in _running
        and (timezone.now() - stored.created_at).total_seconds() > BACKGROUND_LIMIT_SECONDS
    ):
        failed = _failed(stored.response, _LOST)
        if await blocking_run(stored_response_progress, response_id=response_id, response=failed):
            stored.status, stored.response = "failed", failed
        else:  # it changed meanwhile: read it again
            return await _owned(caller, response_id)
    return stored


_LOST = {
    "code": "server_error",
    "message": "The response did not finish in time: the worker running it stopped.",
}


def _failed(shell: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    return {
        **shell,
        "status": "failed",
        "error": {
            "code": str(error.get("code") or error.get("type") or "server_error"),
            "message": str(error.get("message") or "The response failed."),
        },
    }


# ---- create -------------------------------------------------------------------------------------


async def responses_create(request: HttpRequest) -> HttpResponse:
    request_timing_start(request)
    caller = await caller_authenticate(request)
    inbound = body_read_json(request)
    params_check(endpoint=Endpoint.RESPONSES, body=inbound.body)
    candidates = deployments_for(
        caller=caller, model=model_check(inbound.body), endpoint=None, registry=registry_get()
    )
    # LiteLLM's mock_response, where the key allows it, is answered by the mock provider over
    # chat (the relay's rule), never by a pass-through upstream.
    mocked = "mock_response" in inbound.body and caller.metadata.get("allow_mock_response") is True
    native = _native(candidates) and not mocked
    checked = request_check(inbound.body, passthrough=native)
    previous = None
    if checked.previous_response_id is not None:
        previous = await _previous(caller, checked.previous_response_id)
    if native:
        return await _passthrough(request, caller, inbound, checked, previous)
    if previous is not None and previous.deployment_id:
        raise InvalidRequestError(
            f"Previous response with id '{checked.previous_response_id}' was made by a model "
            "whose upstream keeps it (OpenAI or Azure); continue it on such a model.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    history = _history(previous) if previous is not None else []
    if checked.background and checked.stream:
        raise InvalidRequestError(
            "A background response cannot be streamed on this model; poll it with "
            "GET /v1/responses/{id}.",
            param="stream",
        )
    response_id = new_id("resp")
    created = int(time.time())
    chat = chat_body_build(checked, history=history, stream=checked.stream)
    search_tool = file_search_tool(checked)
    if search_tool is not None:
        return await _file_search_create(
            request, caller, checked, chat, response_id, created, history, search_tool
        )
    if checked.background:
        return await _background_start(request, caller, checked, chat, response_id, history)
    size = len(orjson.dumps(chat)) if history else inbound.size

    def read(_: HttpRequest) -> Inbound:
        return Inbound(body=chat, size=size)

    answer = await relay(
        request, endpoint=Endpoint.CHAT, reader=read, caller=caller, recorded_as=Endpoint.RESPONSES
    )
    shell = response_shell(
        checked, response_id=response_id, created_at=created, status="in_progress"
    )

    async def keep(final: dict[str, Any]) -> None:
        if checked.store:
            await _keep(caller, checked, final, history)

    if isinstance(answer, StreamingHttpResponse):
        events = StreamingHttpResponse(
            _events(answer.streaming_content, EventTranslator(shell), keep),  # type: ignore[arg-type]
            content_type="text/event-stream",
        )
        return _copy_headers(answer, events)
    if answer.status_code != 200:
        return answer
    final = _final(shell, orjson.loads(answer.content))
    content = orjson.dumps(final)  # once: the answer's body and the stored row's
    if checked.store:
        await _keep(caller, checked, final, history, encoded=content)
    return _copy_headers(answer, HttpResponse(content, content_type="application/json"))


async def _file_search_create(
    request: HttpRequest,
    caller: Caller,
    checked: ResponsesRequest,
    chat: dict[str, Any],
    response_id: str,
    created: int,
    history: list[dict[str, Any]],
    tool: dict[str, Any],
) -> HttpResponse:
    """A response whose model may search vector stores: the search round trips run here
    (file_search.py), then the Response carries a `file_search_call` item per search before the
    answer. Streamed, each turn's text comes as it is generated and each search as its events;
    in the background, the round trips run after the queued response was answered."""
    include = checked.body.get("include")
    include_results = isinstance(include, list) and "file_search_call.results" in include
    chat = {name: value for name, value in chat.items() if name not in ("stream", "stream_options")}
    if checked.background:
        await file_search_check(caller=caller, tool=tool)
        return await _background_start(
            request,
            caller,
            checked,
            chat,
            response_id,
            history,
            search=(tool, include_results),
        )
    shell = response_shell(
        checked, response_id=response_id, created_at=created, status="in_progress"
    )
    if checked.stream:
        return await _file_search_streamed(
            request, caller, checked, chat, shell, history, tool, include_results
        )
    rounds = await file_search_rounds(
        caller=caller,
        chat=chat,
        tool=tool,
        include_results=include_results,
        request_id=request_id_for(request),
    )
    if rounds.status != 200:
        response = json_response(rounds.completion, status=rounds.status)
    else:
        final = _searched_final(shell, rounds)
        if checked.store:
            await _keep(caller, checked, final, history)
        response = json_response(final)
    for name, value in rounds.headers.items():
        if name.startswith(("x-ogem-", "x-ratelimit-")) or name == "retry-after":
            response[name] = value
    response["x-request-id"] = request_id_for(request)
    return response


def _searched_final(shell: dict[str, Any], rounds: Rounds) -> dict[str, Any]:
    """The finished Response of file_search round trips: the searches, then the answer."""
    output, finish_reason = output_from_completion(rounds.completion)
    return response_finish(
        shell,
        output=[*rounds.items, *output],
        usage=usage_from_chat(rounds.usage),
        finish_reason=finish_reason,
        model=rounds.completion.get("model"),
    )


async def _file_search_streamed(
    request: HttpRequest,
    caller: Caller,
    checked: ResponsesRequest,
    chat: dict[str, Any],
    shell: dict[str, Any],
    history: list[dict[str, Any]],
    tool: dict[str, Any],
    include_results: bool,
) -> HttpResponse:
    """The first turn is opened before answering, so a refusal has its status (a store not
    found: 404, a budget: 429, ...); then every event follows as it comes."""
    try:
        search = await file_search_stream_open(
            caller=caller,
            chat=chat,
            tool=tool,
            include_results=include_results,
            request_id=request_id_for(request),
        )
    except InternalStreamError as error:
        refused = json_response(error.answer.body, status=error.answer.status)
        for name, value in error.answer.headers.items():
            if name.startswith(("x-ogem-", "x-ratelimit-")) or name == "retry-after":
                refused[name] = value
        refused["x-request-id"] = request_id_for(request)
        return refused

    async def events() -> AsyncIterator[bytes]:
        translator = EventTranslator(shell)
        for event in translator.start():
            yield sse(event)
        async for event in file_search_events(search, translator):
            if event["type"] in ("response.completed", "response.incomplete", "response.failed"):
                if checked.store:
                    await _keep_quietly(
                        lambda final: _keep(caller, checked, final, history), translator.final
                    )
            yield sse(event)

    response = StreamingHttpResponse(events(), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["x-request-id"] = request_id_for(request)
    return response


def _final(shell: dict[str, Any], completion: dict[str, Any]) -> dict[str, Any]:
    output, finish_reason = output_from_completion(completion)
    return response_finish(
        shell,
        output=output,
        usage=usage_from_chat(completion.get("usage")),
        finish_reason=finish_reason,
        model=completion.get("model"),
    )


async def _previous(caller: Caller, previous_id: str) -> StoredResponse:
    """The response `previous_response_id` names, the caller's, finished."""
    stored = None
    if "\x00" not in previous_id:
        if pg_enabled():
            stored = await stored_response_find(caller=caller, response_id=previous_id)
        else:
            stored = await blocking_run(stored_response_get, caller=caller, response_id=previous_id)
    if stored is None:
        raise InvalidRequestError(
            f"Previous response with id '{previous_id}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    if not stored.deployment_id and stored.status in (*RESPONSE_RUNNING, "failed", "cancelled"):
        raise InvalidRequestError(
            f"Previous response with id '{previous_id}' is {stored.status}; only a finished "
            "response can be continued.",
            param="previous_response_id",
        )
    return stored


def _history(previous: StoredResponse) -> list[dict[str, Any]]:
    """The conversation so far: what the previous response inherited, its input, its output."""
    return [*previous.history, *previous.input_items, *previous.response.get("output", [])]


async def _keep(
    caller: Caller,
    checked: ResponsesRequest,
    response: dict[str, Any],
    history: list[dict[str, Any]],
    *,
    deployment_id: str = "",
    encoded: bytes | None = None,
) -> None:
    """Keep the response, committed before its answer goes out (stored_response_write).
    `encoded`: the response's JSON when the answer has it already."""
    passed_through = bool(deployment_id)  # the upstream keeps its input and the response
    await stored_response_write(
        response_id=response["id"],
        organization_id=caller.organization_id,
        team_id=caller.team_id,
        key_id=caller.key_id,
        model=checked.model,
        status=str(response.get("status") or "completed"),
        background=checked.background,
        deployment_id=deployment_id,
        previous_response_id=checked.previous_response_id or "",
        created_at=datetime.fromtimestamp(response.get("created_at") or time.time(), tz=UTC),
        input_items=[] if passed_through else checked.input_items,
        history=history,
        response={} if passed_through else response,
        encoded=None if passed_through else encoded,
    )


async def _events(
    upstream: AsyncIterator[bytes],
    translator: EventTranslator,
    keep: Callable[[dict[str, Any]], Awaitable[None]],
) -> AsyncIterator[bytes]:
    """The pipeline's chat SSE bytes as Responses events (its comments passed on). The response
    is kept before `response.completed` is sent, so a client that continues it finds it."""
    parser = SSEParser()
    try:
        for event in translator.start():
            yield sse(event)
        async for part in upstream:
            if part.startswith(b":"):
                yield part
                continue
            for data in parser.feed(part):
                if data == "[DONE]":
                    events = translator.finish()
                    await _keep_quietly(keep, translator.final)
                    for event in events:
                        yield sse(event)
                    return
                chunk = orjson.loads(data)
                if "error" in chunk and "choices" not in chunk:
                    events = translator.fail(chunk["error"])
                    await _keep_quietly(keep, translator.final)
                    for event in events:
                        yield sse(event)
                    return
                for event in translator.feed(chunk):
                    yield sse(event)
    finally:
        await upstream.aclose()  # type: ignore[attr-defined]


async def _keep_quietly(
    keep: Callable[[dict[str, Any]], Awaitable[None]], final: dict[str, Any] | None
) -> None:
    # The answer is being delivered: a lost write loses only its stored copy, and says so.
    if final is None:
        return
    try:
        await keep(final)
    except Exception:
        logger.exception("response %s not stored", final.get("id"))


# ---- background ---------------------------------------------------------------------------------


async def _background_start(
    request: HttpRequest,
    caller: Caller,
    checked: ResponsesRequest,
    chat: dict[str, Any],
    response_id: str,
    history: list[dict[str, Any]],
    search: tuple[dict[str, Any], bool] | None = None,
) -> HttpResponse:
    """Keep the response as queued, answer with it, and run it in this process's event loop.
    `search`: the file_search tool and whether its results are included."""
    shell = response_shell(
        checked, response_id=response_id, created_at=int(time.time()), status="queued"
    )
    await _keep(caller, checked, shell, history)
    task = asyncio.get_running_loop().create_task(
        _background_run(caller, shell, chat, request_id_for(request), search)
    )
    _running[response_id] = task
    task.add_done_callback(lambda _: _running.pop(response_id, None))
    return object_answer(request, shell)


async def _background_run(
    caller: Caller,
    shell: dict[str, Any],
    chat: dict[str, Any],
    request_id: str,
    search: tuple[dict[str, Any], bool] | None = None,
) -> None:
    response_id = shell["id"]
    try:
        running = {**shell, "status": "in_progress"}
        if not await blocking_run(
            stored_response_progress, response_id=response_id, response=running
        ):
            return  # cancelled before it started
        try:
            async with asyncio.timeout(BACKGROUND_LIMIT_SECONDS):
                if search is not None:
                    rounds = await file_search_rounds(
                        caller=caller,
                        chat=chat,
                        tool=search[0],
                        include_results=search[1],
                        request_id=request_id,
                    )
                else:
                    answer = await internal_call(
                        caller=caller,
                        endpoint=Endpoint.CHAT,
                        body=chat,
                        request_id=request_id,
                        recorded_as=Endpoint.RESPONSES,
                    )
        except TimeoutError:
            final = _failed(shell, {"message": "The response did not finish in time."})
        except GatewayError as error:  # a search refused (a store deleted since the request)
            final = _failed(shell, error.to_body()["error"])
        else:
            if search is not None:
                if rounds.status == 200:
                    final = _searched_final(shell, rounds)
                else:
                    final = _failed(shell, rounds.completion.get("error") or {})
            elif answer.ok:
                final = _final(shell, answer.body)
            else:
                final = _failed(shell, answer.body.get("error") or {})
        await blocking_run(stored_response_progress, response_id=response_id, response=final)
    except asyncio.CancelledError:
        raise  # cancelled: the row says so already
    except Exception:
        logger.exception("background response %s failed", response_id)
        failed = _failed(shell, {})
        try:
            await blocking_run(stored_response_progress, response_id=response_id, response=failed)
        except Exception:
            logger.exception("background response %s: its failure not stored", response_id)


# ---- pass-through -------------------------------------------------------------------------------


async def _passthrough(
    request: HttpRequest,
    caller: Caller,
    inbound: Inbound,
    checked: ResponsesRequest,
    previous: StoredResponse | None,
) -> HttpResponse:
    body = inbound.body
    if previous is not None and not previous.deployment_id:
        # Ogem served the previous response itself: the upstream never saw it, so the
        # conversation so far is sent as input, before the new input as it came.
        given = body.get("input")
        if isinstance(given, str):
            given = [{"role": "user", "content": given}]
        items = [_unstored(item) for item in _history(previous)]
        body = {k: v for k, v in body.items() if k != "previous_response_id"}
        body["input"] = [*items, *(given if isinstance(given, list) else [])]
    sent = body

    def read(_: HttpRequest) -> Inbound:
        return Inbound(body=sent, size=inbound.size)

    answer = await relay(request, endpoint=Endpoint.RESPONSES, reader=read, caller=caller)
    deployment_id = answer.get("x-ogem-deployment", "")
    if not checked.store or answer.status_code != 200:
        return answer

    async def keep(response: dict[str, Any]) -> None:
        await _keep(caller, checked, response, [], deployment_id=deployment_id)

    if isinstance(answer, StreamingHttpResponse):
        relayed = StreamingHttpResponse(
            _recorded(answer.streaming_content, keep),  # type: ignore[arg-type]
            content_type="text/event-stream",
        )
        return _copy_headers(answer, relayed)
    response = orjson.loads(answer.content)
    if isinstance(response, dict) and isinstance(response.get("id"), str):
        await keep(response)
    return answer


def _unstored(item: dict[str, Any]) -> dict[str, Any]:
    """An item of Ogem's as input for an upstream that does not know its id."""
    return {k: v for k, v in item.items() if k != "id"}


async def _recorded(
    upstream: AsyncIterator[bytes], keep: Callable[[dict[str, Any]], Awaitable[None]]
) -> AsyncIterator[bytes]:
    """A passed-through stream, relayed as it comes; its owner is recorded from its first
    event (`response.created`), before that event is relayed."""
    parser: SSEParser | None = SSEParser()
    try:
        async for part in upstream:
            if parser is not None and not part.startswith(b":"):
                for data in parser.feed(part):
                    event = orjson.loads(data) if data.startswith("{") else {}
                    response = event.get("response") if isinstance(event, dict) else None
                    if isinstance(response, dict) and isinstance(response.get("id"), str):
                        await _keep_quietly(keep, response)
                        parser = None
                        break
            yield part
    finally:
        await upstream.aclose()  # type: ignore[attr-defined]


async def _upstream(
    stored: StoredResponse,
    *,
    method: str,
    suffix: str = "",
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A stored response's route at the deployment that holds it."""
    deployment = registry_get().by_id.get(stored.deployment_id)
    adapter = adapter_get(deployment.provider) if deployment is not None else None
    route = getattr(adapter, "response_route", None)
    if deployment is None or route is None:
        raise NotFoundError(
            f"Response with id '{stored.response_id}' is held by a deployment that is no longer "
            "served.",
            param="response_id",
            code="not_found",
        )
    return await route(
        deployment=deployment,
        method=method,
        response_id=stored.response_id,
        suffix=suffix,
        query=query,
    )


# ---- retrieve, delete, cancel, input items ------------------------------------------------------


async def response_retrieve(request: HttpRequest, response_id: str) -> HttpResponse:
    caller = await _caller(request, response_id)
    stored = await _owned(caller, response_id)
    if request.GET.get("stream") in ("true", "1"):
        if not stored.deployment_id:
            raise InvalidRequestError(
                "Only a passed-through background response can be streamed again.",
                param="stream",
            )
        return await _replay(request, stored)
    if stored.deployment_id:
        return object_answer(request, await _upstream(stored, method="GET"))
    return object_answer(request, stored.response)


async def _replay(request: HttpRequest, stored: StoredResponse) -> HttpResponse:
    """The upstream's stream of a passed-through response again, from `starting_after`; its
    generation was accounted when it was created."""
    query = {"stream": "true"}
    after = request.GET.get("starting_after")
    if after is not None:
        if not after.isdigit():
            raise InvalidRequestError(
                "`starting_after` must be a sequence number.", param="starting_after"
            )
        query["starting_after"] = after
    deployment = registry_get().by_id.get(stored.deployment_id)
    adapter = adapter_get(deployment.provider) if deployment is not None else None
    replay = getattr(adapter, "response_replay", None)
    if deployment is None or replay is None:
        raise _not_found(stored.response_id)
    chunks = await replay(deployment=deployment, response_id=stored.response_id, query=query)
    response = StreamingHttpResponse(chunks, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["x-request-id"] = request_id_for(request)
    return response


async def response_delete(request: HttpRequest, response_id: str) -> HttpResponse:
    caller = await _caller(request, response_id)
    stored = await _owned(caller, response_id)
    if stored.deployment_id:
        try:
            await _upstream(stored, method="DELETE")
        except GatewayError as error:
            if error.status != 404:  # already gone upstream: forget it here too
                raise
    task = _running.pop(response_id, None)
    if task is not None:
        task.cancel()
    await blocking_run(stored_response_delete, stored=stored)
    return object_answer(request, {"id": response_id, "object": "response", "deleted": True})


async def response_cancel(request: HttpRequest, response_id: str) -> HttpResponse:
    caller = await _caller(request, response_id)
    stored = await _owned(caller, response_id)
    if not stored.background:
        raise InvalidRequestError(
            "Only responses created with `background: true` can be cancelled.",
            param="response_id",
        )
    if stored.deployment_id:
        return object_answer(request, await _upstream(stored, method="POST", suffix="/cancel"))
    if stored.status != "cancelled" and not await blocking_run(
        stored_response_cancel, stored=stored
    ):
        raise InvalidRequestError(
            f"Cannot cancel a response that is {stored.status}.",
            param="response_id",
        )
    task = _running.pop(response_id, None)
    if task is not None:
        task.cancel()
    stored = await _owned(caller, response_id)
    return object_answer(request, stored.response)


async def response_input_items(request: HttpRequest, response_id: str) -> HttpResponse:
    caller = await _caller(request, response_id)
    query = request.GET
    raw_limit = query.get("limit")
    limit = LIMIT_DEFAULT
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIMIT_MAX:
            raise InvalidRequestError(
                f"`limit` must be an integer from 1 to {LIMIT_MAX}.", param="limit"
            )
        limit = int(raw_limit)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("`order` must be `asc` or `desc`.", param="order")
    after = query.get("after") or None
    stored = await _owned(caller, response_id)
    if stored.deployment_id:
        forwarded = {"limit": str(limit), "order": order, **({"after": after} if after else {})}
        page = await _upstream(stored, method="GET", suffix="/input_items", query=forwarded)
        return object_answer(request, page)
    items = [*stored.history, *stored.input_items]
    if order == "desc":
        items.reverse()
    if after is not None:
        position = next((i for i, item in enumerate(items) if item.get("id") == after), None)
        if position is None:
            raise InvalidRequestError(f"No input item found with id '{after}'.", param="after")
        items = items[position + 1 :]
    data = items[:limit]
    return object_answer(
        request,
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(items) > limit,
        },
    )
