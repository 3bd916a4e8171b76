"""The Responses API's `file_search` tool in a streamed response (file_search.py runs it
unstreamed): each model turn streamed through the pipeline (`internal_stream`), its text sent as
it comes, each search shown with OpenAI's `file_search_call` events between the turns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gateway.context import Caller
from gateway.errors import GatewayError
from gateway.internal import InternalStreamError, internal_stream
from gateway.responses_api.file_search import (
    MAX_ROUNDS,
    TOOL_NAME,
    call_item,
    file_search_check,
    file_search_runner,
    queries_of,
    results_for_model,
    usage_add,
)
from gateway.responses_api.stream import EventTranslator
from providers.base import Endpoint


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
                usage_add(total, chunk.get("usage"))
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
            queries = queries_of(call, messages)
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
            done = call_item(item_id, queries, results, search.include_results)
            for event in translator.file_search_done(done, output_index):
                yield event
            messages.append(
                {"role": "tool", "tool_call_id": call["id"], "content": results_for_model(results)}
            )
    translator.usage_total = total or None
    for event in translator.finish():
        yield event
