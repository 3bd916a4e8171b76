"""The Responses API's hosted `file_search` tool, over chat: the model is offered a function of
that name; when it calls it, Ogem searches the tool's vector stores with the model's queries,
hands the results back to the model, and reports the search as a `file_search_call` item.

Vector stores are an app above the gateway (it may not import them): the app registers its
search here when Django loads it (vector_stores/apps.py). Without it, `file_search` is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from gateway.context import Caller
from gateway.errors import GatewayError
from gateway.internal import InternalStreamError, internal_call, internal_stream
from providers.base import Endpoint

if TYPE_CHECKING:  # stream.py imports translate.py, which imports this module
    from gateway.responses_api.stream import EventTranslator

# vector_stores.search.vector_stores_search's signature.
SearchRunner = Callable[..., Awaitable[list[dict[str, Any]]]]
_runner: SearchRunner | None = None
# vector_stores.search.vector_stores_check's: the stores' errors, raised before a response starts.
StoresCheck = Callable[..., Awaitable[None]]
_check: StoresCheck | None = None

TOOL_NAME = "file_search"
# The function the model sees in place of the hosted tool.
CHAT_FUNCTION = {
    "name": TOOL_NAME,
    "description": (
        "Search the user's uploaded files for passages relevant to the question. Call it with "
        "one or more short search queries; it returns the best matching passages."
    ),
    "parameters": {
        "type": "object",
        "properties": {
            "queries": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Search queries, each a short phrase or question.",
            }
        },
        "required": ["queries"],
        "additionalProperties": False,
    },
}


def file_search_runner_set(runner: SearchRunner | None, check: StoresCheck | None = None) -> None:
    global _runner, _check
    _runner, _check = runner, check


async def file_search_check(*, caller: Caller, tool: dict[str, Any]) -> None:
    """A store the caller cannot see (404) or an expired one (400) refuses a streamed or
    background response before it starts, as it refuses a plain one."""
    if _check is not None:
        await _check(caller=caller, vector_store_ids=tool["vector_store_ids"])


def file_search_runner() -> SearchRunner | None:
    return _runner


def results_for_model(results: list[dict[str, Any]]) -> str:
    """The tool result the model reads: each passage with its file and score."""
    if not results:
        return "No matching passages were found in the files."
    blocks = []
    for number, result in enumerate(results, start=1):
        text = "\n".join(part.get("text", "") for part in result.get("content", []))
        blocks.append(
            f"[{number}] {result.get('filename')} (file {result.get('file_id')}, "
            f"score {result.get('score', 0):.3f})\n{text}"
        )
    return "\n\n".join(blocks)


# ---- the round trip ------------------------------------------------------------------------------

# Model turns at most in one response: a search round trip or two, then the answer.
MAX_ROUNDS = 3


@dataclass(slots=True)
class Rounds:
    """What the round trips produced: the `file_search_call` items, the last chat completion
    (or the pipeline's error answer), the usage of every turn added up, the last headers."""

    items: list[dict[str, Any]] = field(default_factory=list)
    completion: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


async def file_search_rounds(
    *,
    caller: Caller,
    chat: dict[str, Any],
    tool: dict[str, Any],
    include_results: bool,
    request_id: str,
) -> Rounds:
    """Run the chat request; while the model calls `file_search` (and nothing else), search,
    hand it the results and ask again. Each turn is a /v1 chat request of the caller's (routing,
    limits, budget, a RequestLog row recorded as `responses`)."""
    runner = file_search_runner()
    assert runner is not None  # the tool is refused at the request's check without it
    messages = list(chat["messages"])
    done = Rounds()
    for turn in range(MAX_ROUNDS):
        body = {**chat, "messages": messages}
        if turn == MAX_ROUNDS - 1:
            body["tool_choice"] = "none"  # the last turn answers
        answer = await internal_call(
            caller=caller,
            endpoint=Endpoint.CHAT,
            body=body,
            request_id=f"{request_id}-{turn}" if turn else request_id,
            recorded_as=Endpoint.RESPONSES,
        )
        done.status, done.completion, done.headers = answer.status, answer.body, answer.headers
        if not answer.ok:
            return done
        for name, value in (answer.body.get("usage") or {}).items():
            if isinstance(value, int):
                done.usage[name] = done.usage.get(name, 0) + value
        message = ((answer.body.get("choices") or [{}])[0] or {}).get("message") or {}
        calls = message.get("tool_calls") or []
        if not calls or any((c.get("function") or {}).get("name") != TOOL_NAME for c in calls):
            return done  # an answer, or the client's own function calls: theirs to handle
        messages.append({"role": "assistant", "content": None, "tool_calls": calls})
        for call in calls:
            queries = _queries(call, messages)
            results = await runner(
                caller=caller,
                vector_store_ids=tool["vector_store_ids"],
                query=queries,
                max_num_results=tool.get("max_num_results") or 10,
                filters=tool.get("filters"),
                score_threshold=float(
                    (tool.get("ranking_options") or {}).get("score_threshold", 0)
                ),
            )
            done.items.append(
                {
                    "id": f"fs_{uuid.uuid4().hex}",
                    "type": "file_search_call",
                    "status": "completed",
                    "queries": queries,
                    "results": [_result_item(result) for result in results]
                    if include_results
                    else None,
                }
            )
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.get("id"),
                    "content": results_for_model(results),
                }
            )
    return done


def _call_item(
    item_id: str, queries: list[str], results: list[dict[str, Any]], include_results: bool
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "file_search_call",
        "status": "completed",
        "queries": queries,
        "results": [_result_item(result) for result in results] if include_results else None,
    }


def _usage_add(total: dict[str, int], usage: Any) -> None:
    if isinstance(usage, dict):
        for name, value in usage.items():
            if isinstance(value, int):
                total[name] = total.get(name, 0) + value


# ---- streamed ------------------------------------------------------------------------------------


@dataclass(slots=True)
class StreamedSearch:
    """A streamed file_search response whose first turn is open (its first chunk read, so a
    refusal was answered with its status before the response started)."""

    caller: Caller
    chat: dict[str, Any]
    tool: dict[str, Any]
    include_results: bool
    request_id: str
    chunks: AsyncIterator[dict[str, Any]]
    first: dict[str, Any] | None


def _turn_body(chat: dict[str, Any], messages: list[dict[str, Any]], turn: int) -> dict[str, Any]:
    body = {**chat, "messages": messages}
    if turn == MAX_ROUNDS - 1:
        body["tool_choice"] = "none"  # the last turn answers
    return body


async def file_search_stream_open(
    *,
    caller: Caller,
    chat: dict[str, Any],
    tool: dict[str, Any],
    include_results: bool,
    request_id: str,
) -> StreamedSearch:
    """Check the stores and open the first turn. Raises the stores' GatewayError, or
    InternalStreamError with the pipeline's refusal."""
    await file_search_check(caller=caller, tool=tool)
    chunks = internal_stream(
        caller=caller,
        body=_turn_body(chat, list(chat["messages"]), 0),
        request_id=request_id,
        recorded_as=Endpoint.RESPONSES,
    )
    first = await anext(chunks, None)
    return StreamedSearch(caller, chat, tool, include_results, request_id, chunks, first)


async def _chained(
    first: dict[str, Any] | None, rest: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    if first is not None:
        yield first
    async for chunk in rest:
        yield chunk


def _searches_held(chunk: dict[str, Any], calls: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The chunk without its file_search call deltas (assembled into `calls` with every other
    call): the translator shows the text and the client's function calls as they come."""
    choices = chunk.get("choices")
    if not choices:
        return chunk
    shown = []
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict) or not delta.get("tool_calls"):
            shown.append(choice)
            continue
        passed = []
        for call in delta["tool_calls"]:
            if not isinstance(call, dict):
                continue
            index = call.get("index", 0) if isinstance(call.get("index"), int) else 0
            function = call.get("function") or {}
            known = calls.setdefault(
                index, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            )
            if call.get("id"):
                known["id"] = call["id"]
            known["function"]["name"] += function.get("name") or ""
            known["function"]["arguments"] += function.get("arguments") or ""
            if known["function"]["name"] != TOOL_NAME:
                passed.append(call)
        kept = {name: value for name, value in delta.items() if name != "tool_calls"}
        if passed:
            kept["tool_calls"] = passed
        shown.append({**choice, "delta": kept})
    return {**chunk, "choices": shown}


async def file_search_events(
    search: StreamedSearch, translator: EventTranslator
) -> AsyncIterator[dict[str, Any]]:
    """The Responses events of a streamed file_search response, after `translator.start()`:
    each turn's text as it comes; each search as a `file_search_call` item
    (`response.output_item.added`, `response.file_search_call.in_progress`, `.searching`,
    `.completed`, `response.output_item.done`); then `response.completed` (or `.failed`)."""
    runner = file_search_runner()
    assert runner is not None  # the tool is refused at the request's check without it
    messages = list(search.chat["messages"])
    total: dict[str, int] = {}
    chunks: AsyncIterator[dict[str, Any]] = _chained(search.first, search.chunks)
    for turn in range(MAX_ROUNDS):
        if turn:
            chunks = internal_stream(
                caller=search.caller,
                body=_turn_body(search.chat, messages, turn),
                request_id=f"{search.request_id}-{turn}",
                recorded_as=Endpoint.RESPONSES,
            )
        calls: dict[int, dict[str, Any]] = {}
        try:
            async for chunk in chunks:
                _usage_add(total, chunk.get("usage"))
                for event in translator.feed(_searches_held(chunk, calls)):
                    yield event
        except InternalStreamError as error:
            for event in translator.fail(error.answer.body.get("error") or {}):
                yield event
            return
        assembled = [calls[index] for index in sorted(calls)]
        searches = [call for call in assembled if call["function"]["name"] == TOOL_NAME]
        if not searches or len(searches) != len(assembled):
            if searches:  # beside the client's own calls: theirs to handle, as those are
                held = [
                    {"index": index, **call}
                    for index, call in calls.items()
                    if call["function"]["name"] == TOOL_NAME
                ]
                for event in translator.feed(
                    {"choices": [{"index": 0, "delta": {"tool_calls": held}}]}
                ):
                    yield event
            break
        messages.append({"role": "assistant", "content": None, "tool_calls": assembled})
        for call in searches:
            queries = _queries(call, messages)
            item_id, output_index, events = translator.file_search_start(queries)
            for event in events:
                yield event
            try:
                results = await runner(
                    caller=search.caller,
                    vector_store_ids=search.tool["vector_store_ids"],
                    query=queries,
                    max_num_results=search.tool.get("max_num_results") or 10,
                    filters=search.tool.get("filters"),
                    score_threshold=float(
                        (search.tool.get("ranking_options") or {}).get("score_threshold", 0)
                    ),
                )
            except GatewayError as error:
                for event in translator.fail(error.to_body()["error"]):
                    yield event
                return
            done = _call_item(item_id, queries, results, search.include_results)
            for event in translator.file_search_done(done, output_index):
                yield event
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": results_for_model(results)}
            )
    translator.usage_total = total or None
    for event in translator.finish():
        yield event


def _queries(call: dict[str, Any], messages: list[dict[str, Any]]) -> list[str]:
    """The model's queries; arguments that are not what the function asks for search with the
    last user message instead."""
    try:
        arguments = orjson.loads((call.get("function") or {}).get("arguments") or "{}")
    except orjson.JSONDecodeError:
        arguments = {}
    queries = arguments.get("queries") if isinstance(arguments, dict) else None
    if isinstance(queries, str):
        queries = [queries]
    if isinstance(queries, list):
        queries = [q for q in queries if isinstance(q, str) and q.strip()][:5]
    if queries:
        return queries
    for message in reversed(messages):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str) and content.strip():
            return [content]
        if message.get("role") == "user" and isinstance(content, list):
            text = " ".join(p.get("text", "") for p in content if isinstance(p, dict)).strip()
            if text:
                return [text]
    return ["*"]


def _result_item(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "file_id": result["file_id"],
        "filename": result["filename"],
        "score": result["score"],
        "attributes": result.get("attributes") or {},
        "text": "\n".join(part.get("text", "") for part in result.get("content", [])),
    }
