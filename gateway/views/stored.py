"""Stored chat completions on /v1 (OpenAI's `store: true`): list, retrieve, update the metadata
of, delete, and list the messages of the completions the caller's tenant stored.

Another tenant's completion answers 404 like one that never existed. These reads are the
database's (in a worker thread), not the hot path's; they first wait for this process's pending
writes (gateway/stored.py), so a completion is found as soon as its answer was received.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse

from gateway.blocking import blocking_run
from gateway.body import body_read_json, stored_metadata_check
from gateway.context import Caller
from gateway.errors import InvalidRequestError, NotFoundError
from gateway.models import StoredCompletion
from gateway.selectors import stored_completion_get, stored_completion_page
from gateway.services import stored_completion_delete, stored_completion_metadata_update
from gateway.stored import stored_writes_wait
from gateway.views.common import list_object, object_answer, object_caller

T = TypeVar("T")

LIMIT_DEFAULT = 20
LIMIT_MAX = 100
_METADATA_FILTER = re.compile(r"^metadata\[(.+)\]$")


async def _caller(request: HttpRequest, completion_id: str = "") -> Caller:
    caller = await object_caller(request)
    # NUL is in no id, and PostgreSQL refuses it in a query.
    if "\x00" in completion_id:
        raise _not_found(completion_id)
    await stored_writes_wait()
    return caller


def _not_found(completion_id: str) -> NotFoundError:
    return NotFoundError(
        f"No chat completion found with id '{completion_id}'.",
        param="completion_id",
        code="not_found",
    )


def _completion_object(stored: StoredCompletion) -> dict[str, Any]:
    return {**stored.completion, "id": stored.completion_id, "metadata": stored.metadata}


def _page(request: HttpRequest) -> tuple[str | None, int, bool]:
    """`after`, `limit` (1 to 100, default 20) and `order` (`asc`, the default, or `desc`)."""
    query = request.GET
    raw_limit = query.get("limit")
    limit = LIMIT_DEFAULT
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIMIT_MAX:
            raise InvalidRequestError(
                f"`limit` must be an integer from 1 to {LIMIT_MAX}.", param="limit"
            )
        limit = int(raw_limit)
    order = query.get("order", "asc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("`order` must be `asc` or `desc`.", param="order")
    return query.get("after") or None, limit, order == "desc"


async def chat_completions_list(request: HttpRequest) -> HttpResponse:
    caller = await _caller(request)
    after_id, limit, descending = _page(request)
    metadata: dict[str, str] = {}
    for name, value in request.GET.items():
        matched = _METADATA_FILTER.match(name)
        if matched:
            metadata[matched.group(1)] = value
    stored_metadata_check(metadata)  # OpenAI's bounds hold for filters too
    model = request.GET.get("model") or None

    def read() -> tuple[list[StoredCompletion], bool]:
        after = None
        if after_id is not None:
            after = stored_completion_get(caller=caller, completion_id=after_id)
            if after is None:
                raise InvalidRequestError(
                    f"No chat completion found with id '{after_id}'.", param="after"
                )
        return stored_completion_page(
            caller=caller,
            model=model,
            metadata=metadata,
            after=after,
            limit=limit,
            descending=descending,
        )

    rows, has_more = await blocking_run(read)
    return object_answer(request, list_object([_completion_object(row) for row in rows], has_more))


async def chat_completion_retrieve(request: HttpRequest, completion_id: str) -> HttpResponse:
    caller = await _caller(request, completion_id)
    stored = await blocking_run(stored_completion_get, caller=caller, completion_id=completion_id)
    if stored is None:
        raise _not_found(completion_id)
    return object_answer(request, _completion_object(stored))


async def chat_completion_update(request: HttpRequest, completion_id: str) -> HttpResponse:
    caller = await _caller(request, completion_id)
    body = body_read_json(request).body
    other = sorted(name for name in body if name != "metadata")
    if other:
        raise InvalidRequestError(
            f"Only `metadata` can be updated; unknown parameter: `{other[0]}`.", param=other[0]
        )
    if "metadata" not in body:
        raise InvalidRequestError("Missing required parameter: `metadata`.", param="metadata")
    metadata = stored_metadata_check(body["metadata"])

    def update() -> StoredCompletion | None:
        stored = stored_completion_get(caller=caller, completion_id=completion_id)
        if stored is None:
            return None
        return stored_completion_metadata_update(stored=stored, metadata=metadata)

    stored = await blocking_run(update)
    if stored is None:
        raise _not_found(completion_id)
    return object_answer(request, _completion_object(stored))


async def chat_completion_delete(request: HttpRequest, completion_id: str) -> HttpResponse:
    caller = await _caller(request, completion_id)

    def delete() -> bool:
        stored = stored_completion_get(caller=caller, completion_id=completion_id)
        if stored is None:
            return False
        stored_completion_delete(stored=stored)
        return True

    if not await blocking_run(delete):
        raise _not_found(completion_id)
    return object_answer(
        request, {"object": "chat.completion.deleted", "id": completion_id, "deleted": True}
    )


async def chat_completion_messages(request: HttpRequest, completion_id: str) -> HttpResponse:
    caller = await _caller(request, completion_id)
    after_id, limit, descending = _page(request)
    stored = await blocking_run(stored_completion_get, caller=caller, completion_id=completion_id)
    if stored is None:
        raise _not_found(completion_id)
    messages = [_message(completion_id, i, m) for i, m in enumerate(stored.messages)]
    if descending:
        messages.reverse()
    if after_id is not None:
        position = next((i for i, m in enumerate(messages) if m["id"] == after_id), None)
        if position is None:
            raise InvalidRequestError(f"No message found with id '{after_id}'.", param="after")
        messages = messages[position + 1 :]
    return object_answer(request, list_object(messages[:limit], len(messages) > limit))


def _message(completion_id: str, index: int, message: dict[str, Any]) -> dict[str, Any]:
    """A request message as OpenAI lists it: `{completion_id}-{index}`, its text as `content`
    and, when it came as parts, the parts as `content_parts`."""
    content = message.get("content")
    parts = None
    if isinstance(content, list):
        parts = content
        texts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        content = "".join(t for t in texts if isinstance(t, str)) or None
    listed: dict[str, Any] = {
        "id": f"{completion_id}-{index}",
        "role": message.get("role"),
        "content": content,
        "refusal": message.get("refusal"),
        "name": message.get("name"),
        "content_parts": parts,
    }
    for name in ("tool_calls", "tool_call_id"):
        if name in message:
            listed[name] = message[name]
    return listed
