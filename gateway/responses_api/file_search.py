"""The Responses API's hosted `file_search` tool, over chat: the model is offered a function of
that name; when it calls it, Ogem searches the tool's vector stores with the model's queries,
hands the results back to the model, and reports the search as a `file_search_call` item.

Vector stores are an app above the gateway (it may not import them): the app registers its
search here when Django loads it (vector_stores/apps.py). Without it, `file_search` is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.context import Caller
from gateway.internal import internal_call
from providers.base import Endpoint

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
            queries = queries_of(call, messages)
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


def call_item(
    item_id: str, queries: list[str], results: list[dict[str, Any]], include_results: bool
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "file_search_call",
        "status": "completed",
        "queries": queries,
        "results": [_result_item(result) for result in results] if include_results else None,
    }


def usage_add(total: dict[str, int], usage: Any) -> None:
    if isinstance(usage, dict):
        for name, value in usage.items():
            if isinstance(value, int):
                total[name] = total.get(name, 0) + value


def queries_of(call: dict[str, Any], messages: list[dict[str, Any]]) -> list[str]:
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
