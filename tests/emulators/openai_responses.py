"""The OpenAI emulator's Responses API (`/v1/responses`, and Azure's `/openai/v1/responses`), as
OpenAI's reference describes it: create (JSON, or `event:`/`data:` events ending with
`response.completed`, no `[DONE]`), retrieve, delete, cancel (background responses only) and
input items; `previous_response_id` continues a stored response (400
`previous_response_not_found` otherwise); a background response's events are streamed again by
`GET /responses/{id}?stream=true` (from `starting_after`). The reply is
`Emulated reply to: <last user text>`; usage counts a token per word or sign of every text the
model saw and of the reply. A background response is `queued` when created and `completed` when
first retrieved, unless it was cancelled first.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

_TOKEN = re.compile(r"\w+|[^\w\s]")


def _tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _error(status: int, message: str, *, param: str | None = None, code: str | None = None):  # type: ignore[no-untyped-def]
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
    return web.json_response(body, status=status, dumps=lambda v: orjson.dumps(v).decode())


def _json(payload: Any) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


def _texts(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(role, text) of every message item, and of function call outputs (as `tool`)."""
    found: list[tuple[str, str]] = []
    for item in items:
        if item.get("type", "message") == "message":
            content = item.get("content")
            if isinstance(content, str):
                found.append((item.get("role", "user"), content))
            else:
                text = "".join(
                    part.get("text", "") for part in content or [] if isinstance(part, dict)
                )
                found.append((item.get("role", "user"), text))
        elif item.get("type") == "function_call_output":
            found.append(("tool", str(item.get("output"))))
    return found


@dataclass
class _Kept:
    response: dict[str, Any]
    items: list[dict[str, Any]]  # every input item the model saw, history included
    deleted: bool = False


@dataclass
class ResponsesAPI:
    kept: dict[str, _Kept] = field(default_factory=dict)

    def clear(self) -> None:
        self.kept.clear()

    async def route(
        self, request: web.Request, endpoint: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        parts = endpoint.split("/")
        if parts == ["responses"] and request.method == "POST":
            return await self._create(request, body)
        kept = self.kept.get(parts[1]) if len(parts) > 1 else None
        if kept is None or kept.deleted:
            return _error(404, f"No response found with id '{parts[-1]}'.", param="response_id")
        if len(parts) == 2 and request.method == "GET":
            if kept.response["status"] == "queued":
                kept.response = self._finish(kept.response, kept.items)
            if request.query.get("stream") == "true":
                if not kept.response.get("background"):
                    return _error(400, "Only background responses can be streamed again.")
                after = int(request.query.get("starting_after", "-1"))
                shell = {**kept.response, "status": "in_progress", "output": [], "usage": None}
                return await self._stream(request, shell, kept.response, after=after)
            return _json(kept.response)
        if len(parts) == 2 and request.method == "DELETE":
            kept.deleted = True
            return _json({"id": parts[1], "object": "response", "deleted": True})
        if parts[2:] == ["cancel"] and request.method == "POST":
            if not kept.response.get("background"):
                return _error(400, "Cannot cancel a synchronous response.", param="response_id")
            if kept.response["status"] in ("queued", "in_progress"):
                kept.response = {**kept.response, "status": "cancelled"}
            return _json(kept.response)
        if parts[2:] == ["input_items"] and request.method == "GET":
            return _json(self._items_page(kept, request.query))
        return _error(404, f"Invalid URL ({request.method} {request.path})")

    async def _create(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if not body.get("model"):
            return _error(400, "Missing required parameter: 'model'.", param="model")
        given = body.get("input")
        if given is None:
            return _error(400, "Missing required parameter: 'input'.", param="input")
        items = [{"role": "user", "content": given}] if isinstance(given, str) else list(given)
        items = [{**item, "id": item.get("id") or f"msg_{uuid.uuid4().hex}"} for item in items]
        history: list[dict[str, Any]] = []
        previous = body.get("previous_response_id")
        if previous is not None:
            kept = self.kept.get(previous)
            if kept is None or kept.deleted:
                return _error(
                    400,
                    f"Previous response with id '{previous}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            history = [*kept.items, *kept.response.get("output", [])]
        seen = [*history, *items]
        shell = {
            "id": f"resp_{uuid.uuid4().hex}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "queued" if body.get("background") else "in_progress",
            "background": bool(body.get("background")),
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": f"{body['model']}-2024-07-18",
            "output": [],
            "parallel_tool_calls": True,
            "previous_response_id": previous,
            "reasoning": {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": None,
            "metadata": body.get("metadata") or {},
        }
        if body.get("background"):
            self.kept[shell["id"]] = _Kept(shell, seen)
            return _json(shell)
        final = self._finish(shell, seen)
        if body.get("store", True):
            self.kept[shell["id"]] = _Kept(final, seen)
        if not body.get("stream"):
            return _json(final)
        return await self._stream(request, shell, final)

    @staticmethod
    def _finish(shell: dict[str, Any], seen: list[dict[str, Any]]) -> dict[str, Any]:
        texts = _texts(seen)
        users = [text for role, text in texts if role == "user"]
        reply = f"Emulated reply to: {users[-1] if users else ''}"
        prompt = sum(_tokens(text) for _, text in texts)
        if shell.get("instructions"):
            prompt += _tokens(shell["instructions"])
        message = {
            "id": f"msg_{uuid.uuid4().hex}",
            "type": "message",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": reply, "annotations": [], "logprobs": []}],
        }
        usage = {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": _tokens(reply),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + _tokens(reply),
        }
        return {
            **shell,
            "status": "completed",
            "completed_at": int(time.time()),
            "output": [message],
            "usage": usage,
        }

    @staticmethod
    async def _stream(
        request: web.Request, shell: dict[str, Any], final: dict[str, Any], *, after: int = -1
    ) -> web.StreamResponse:
        message = final["output"][0]
        text = message["content"][0]["text"]
        where = {"item_id": message["id"], "output_index": 0}
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": {**shell, "id": final["id"]}},
            {"type": "response.in_progress", "response": {**shell, "id": final["id"]}},
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": {**message, "status": "in_progress", "content": []},
            },
            {
                "type": "response.content_part.added",
                **where,
                "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            },
        ]
        for word in re.findall(r"\S+\s*", text):
            events.append(
                {
                    "type": "response.output_text.delta",
                    **where,
                    "content_index": 0,
                    "delta": word,
                    "logprobs": [],
                }
            )
        events += [
            {
                "type": "response.output_text.done",
                **where,
                "content_index": 0,
                "text": text,
                "logprobs": [],
            },
            {
                "type": "response.content_part.done",
                **where,
                "content_index": 0,
                "part": message["content"][0],
            },
            {"type": "response.output_item.done", "output_index": 0, "item": message},
            {"type": "response.completed", "response": final},
        ]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for number, event in enumerate(events):
            if number <= after:  # a resumed stream: from `starting_after` on
                continue
            event = {**event, "sequence_number": number}
            head = f"event: {event['type']}\n".encode()
            await response.write(head + b"data: " + orjson.dumps(event) + b"\n\n")
        await response.write_eof()
        return response

    @staticmethod
    def _items_page(kept: _Kept, query: Any) -> dict[str, Any]:
        items = list(kept.items)
        if query.get("order", "desc") == "desc":
            items.reverse()
        after = query.get("after")
        if after:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        limit = int(query.get("limit", 20))
        data = [{"type": "message", **item} for item in items[:limit]]
        return {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": len(items) > limit,
        }
