"""Stored chat completions (`store: true`), the request side: what is kept and when.

A `store: true` chat request gets an id of Ogem's (`chatcmpl-` and 32 hex digits, unique across
tenants, where an upstream's ids need not be) and, once its answer is complete (the JSON body
built, or the stream's last chunk relayed), its row is written by a task of the event loop in a
worker thread: never before the answer, and a request without `store` pays nothing. A read of
stored completions in the same worker process first waits for that process's pending writes
(`stored_writes_wait`), so a GET after the answer finds it; another worker finds it once the
write lands, milliseconds later (docs/stored-completions.md).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async

from gateway.body import metadata_stored
from gateway.context import RequestContext, StoredRequest
from gateway.errors import InvalidRequestError
from gateway.governance import settle_deferred
from gateway.streaming import usage_block

logger = logging.getLogger(__name__)

WAIT_SECONDS = 5.0  # the longest a read waits for this process's pending writes

# completion id -> its write, while it runs (a strong reference: the loop keeps only weak ones).
_pending: dict[str, asyncio.Task[None]] = {}


def stored_request_build(*, body: dict[str, Any]) -> StoredRequest:
    """The stored part of a checked `store: true` chat body: its messages copied (adapters may
    reshape the body they are given) and its metadata (checked by `body_check`)."""
    metadata = metadata_stored(body.get("metadata")) or {}
    try:
        messages = _json_copy(body["messages"])
    except _HasNulError:
        raise InvalidRequestError(
            "A stored completion's messages cannot hold NUL characters.", param="messages"
        ) from None
    return StoredRequest(
        completion_id=f"chatcmpl-{uuid.uuid4().hex}",
        messages=messages,
        metadata=dict(metadata),
    )


class _HasNulError(Exception):
    pass


def _json_copy(value: Any, *, nul: str | None = None) -> Any:
    """A copy of a JSON value whose strings' NULs (which PostgreSQL's jsonb cannot hold) become
    `nul`, or are refused (_HasNulError) when `nul` is None."""
    if isinstance(value, str):
        if "\x00" not in value:
            return value
        if nul is None:
            raise _HasNulError
        return value.replace("\x00", nul)
    if isinstance(value, dict):
        return {_json_copy(k, nul=nul): _json_copy(v, nul=nul) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_copy(item, nul=nul) for item in value]
    return value


def stored_completion_keep(ctx: RequestContext, completion: dict[str, Any]) -> None:
    """Give a complete answer the stored id, and write it in the background."""
    stored = ctx.stored
    assert stored is not None
    completion["id"] = stored.completion_id
    row = {
        "completion_id": stored.completion_id,
        "organization_id": ctx.caller.organization_id,
        "team_id": ctx.caller.team_id,
        "key_id": ctx.caller.key_id,
        "model": str(completion.get("model") or ctx.model),
        "request_model": ctx.model,
        "created_at": datetime.fromtimestamp(ctx.created_unix, tz=UTC),
        "metadata": stored.metadata,
        "messages": stored.messages,
        # A copy: the caller goes on serializing the answer it was given.
        "completion": _json_copy(completion, nul="\ufffd"),
    }
    task = asyncio.get_running_loop().create_task(_write(row))
    _pending[stored.completion_id] = task
    task.add_done_callback(lambda _: _pending.pop(stored.completion_id, None))
    # A JSON answer's handler awaits it once the answer is sent (as it does the settle), so a
    # worker stopping gracefully finishes the write; a stream's end is not held up for it.
    deferred = settle_deferred.get()
    if deferred is not None:
        deferred.append(task)


async def _write(row: dict[str, Any]) -> None:
    try:
        await sync_to_async(_write_sync, thread_sensitive=False)(row)
    except Exception:
        # The team, organization or key was deleted meanwhile, or the database is away: the
        # answer was delivered; only its stored copy is lost, and said so.
        logger.exception("stored completion %s not written", row["completion_id"])


def _write_sync(row: dict[str, Any]) -> None:
    from django.db import close_old_connections, connection

    from gateway.services import stored_completion_create

    close_old_connections()
    try:
        stored_completion_create(**row)
    finally:
        connection.close()  # a worker thread of its own: hand its connection back


async def stored_writes_wait() -> None:
    """Wait (a few seconds at most) for this process's stored completions still being written."""
    loop = asyncio.get_running_loop()
    pending = [task for task in _pending.values() if task.get_loop() is loop]
    if pending:
        await asyncio.wait(pending, timeout=WAIT_SECONDS)


class StreamKeeper:
    """Rebuilds a streamed chat completion from its chunks, for `store: true` streams: each
    chunk gets the stored id as it passes; `finish` keeps the whole answer."""

    __slots__ = ("_choices", "_ctx", "_head")

    def __init__(self, ctx: RequestContext) -> None:
        self._ctx = ctx
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: dict[str, Any], usage: dict[str, Any] | None = None) -> None:
        assert self._ctx.stored is not None
        chunk["id"] = self._ctx.stored.completion_id
        for name in ("created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(name) is not None:
                self._head[name] = chunk[name]
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                self._choice_add(choice)

    def _choice_add(self, choice: dict[str, Any]) -> None:
        index = choice.get("index", 0)
        kept = self._choices.setdefault(
            index if isinstance(index, int) else 0,
            {
                "index": index,
                "message": {"role": "assistant", "content": None, "refusal": None},
                "logprobs": None,
                "finish_reason": None,
            },
        )
        if choice.get("finish_reason") is not None:
            kept["finish_reason"] = choice["finish_reason"]
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            into = kept["logprobs"] = kept["logprobs"] or {"content": [], "refusal": None}
            for name in ("content", "refusal"):
                if isinstance(logprobs.get(name), list):
                    into[name] = [*(into.get(name) or []), *logprobs[name]]
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return
        message = kept["message"]
        for name in ("content", "refusal", "reasoning_content"):
            if isinstance(delta.get(name), str):
                message[name] = (message.get(name) or "") + delta[name]
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                _tool_call_add(message.setdefault("tool_calls", []), call)

    def finish(self) -> None:
        ctx = self._ctx
        for choice in self._choices.values():
            message = choice["message"]
            if "tool_calls" in message:
                message["tool_calls"] = _tool_calls_finished(message["tool_calls"])
        completion = {
            "id": "",
            "object": "chat.completion",
            "created": self._head.get("created", int(ctx.created_unix)),
            "model": self._head.get("model", ctx.model),
            "choices": [self._choices[index] for index in sorted(self._choices)],
            "usage": usage_block(ctx.usage),
        }
        for name in ("system_fingerprint", "service_tier"):
            if name in self._head:
                completion[name] = self._head[name]
        stored_completion_keep(ctx, completion)


def _tool_call_add(calls: list[dict[str, Any]], delta: dict[str, Any]) -> None:
    """A streamed tool call's delta into its call: the first names it, the rest add arguments."""
    index = delta.get("index", len(calls))
    found = next((call for call in calls if call.get("_index") == index), None)
    if found is None:
        found = {"_index": index, "id": "", "type": "function"}
        found["function"] = {"name": "", "arguments": ""}
        calls.append(found)
    if delta.get("id"):
        found["id"] = delta["id"]
    if delta.get("type"):
        found["type"] = delta["type"]
    function = delta.get("function")
    if isinstance(function, dict):
        for name in ("name", "arguments"):
            if isinstance(function.get(name), str):
                found["function"][name] += function[name]


def _tool_calls_finished(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in call.items() if k != "_index"} for call in calls]
