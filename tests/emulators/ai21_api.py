"""A local emulator of AI21 Studio's Jamba chat API, written from its reference:
`POST /studio/v1/chat/completions` with bearer auth. It validates like the real API (string
`content` only, known roles, tool messages answering the previous assistant's `tool_calls`,
function tools only, `response_format` text/json_object, `max_tokens` <= 4096, `n` 1-16, ranges
of `temperature`/`top_p`, unknown fields refused with 422) and answers with Jamba's JSON (no
`object`/`created`) or its SSE stream (OpenAI-like chunks, usage on the last one, `[DONE]`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response
from tests.emulators.voyage_api import detail

API_KEY = "ai21-emulator-key"
FIELDS = {
    "model",
    "messages",
    "tools",
    "documents",
    "response_format",
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "n",
    "stream",
}


@dataclass
class Reply:
    content: str | None = "Hello from Jamba."
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    )
    # Streaming only: send an error event after this many chunks.
    stream_error_after: int | None = None


def tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": orjson.dumps(arguments).decode()},
    }


def validate(body: Any) -> str | None:
    """The real API's complaint about a body, or None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object"
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        return f"{unknown[0]}: Extra inputs are not permitted"
    if not body.get("model"):
        return "model: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: Field required"
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            return f"messages.{i}.role: Input should be 'system', 'user', 'assistant' or 'tool'"
        if not isinstance(message.get("content"), str):
            return f"messages.{i}.content: Input should be a valid string"
        if role == "system" and i != 0:
            return "messages: a system message must come first"
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return f"messages.{i}.tool_call_id: does not answer a previous tool call"
            pending.discard(message["tool_call_id"])
        elif pending:
            return f"messages.{i}: tool calls {sorted(pending)} have no tool message"
        if role == "assistant":
            pending = {c["id"] for c in message.get("tool_calls") or []}
    for i, tool in enumerate(body.get("tools") or []):
        if tool.get("type") != "function" or not tool.get("function", {}).get("name"):
            return f"tools.{i}: only function tools with a name are supported"
    response_format = body.get("response_format")
    if response_format is not None and response_format.get("type") not in ("text", "json_object"):
        return "response_format.type: Input should be 'text' or 'json_object'"
    if body.get("max_tokens") is not None and not 0 < body["max_tokens"] <= 4096:
        return "max_tokens: Input should be less than or equal to 4096"
    if body.get("temperature") is not None and not 0 <= body["temperature"] <= 2:
        return "temperature: Input should be less than or equal to 2"
    if body.get("top_p") is not None and not 0 <= body["top_p"] <= 1:
        return "top_p: Input should be less than or equal to 1"
    if body.get("n") is not None and not 1 <= body["n"] <= 16:
        return "n: Input should be between 1 and 16"
    return None


class AI21Emulator(ScriptedEmulator):
    name = "ai21-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/studio/v1/chat/completions", self._chat)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        received = await self.receive(request)
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return detail(401, "Forbidden").response()
        problem = validate(received.body)
        if problem:
            return detail(422, problem).response()
        body = received.body
        reply = self.next_reply() or Reply()
        if isinstance(reply, Fault):
            return reply.response()
        # The model can only call a tool the request declares.
        declared = {t["function"]["name"] for t in body.get("tools") or []}
        if any(c["function"]["name"] not in declared for c in reply.tool_calls):
            reply = dataclasses.replace(reply, content=reply.content or "No tool.", tool_calls=[])
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": reply.content}
            if reply.tool_calls:
                message["tool_calls"] = reply.tool_calls
            return json_response(
                {
                    "id": "chat-ai21emulated",
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": reply.finish_reason,
                        }
                    ],
                    "usage": reply.usage,
                    "meta": {"requestDurationMillis": 12},
                    "model": body["model"],
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for index, chunk in enumerate(self._chunks(reply)):
            if reply.stream_error_after is not None and index == reply.stream_error_after:
                await response.write(b'data: {"detail": "Internal server error"}\n\n')
                await response.write_eof()
                return response
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    @staticmethod
    def _chunks(reply: Reply) -> list[dict[str, Any]]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict:
            return {
                "id": "chat-ai21emulated",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
                "usage": None,
            } | extra

        chunks = [chunk({"role": "assistant"})]
        text = reply.content or ""
        chunks += [chunk({"content": text[i : i + 4]}) for i in range(0, len(text), 4)]
        if reply.tool_calls:
            chunks.append(chunk({"tool_calls": reply.tool_calls}))
        chunks.append(chunk({}, reply.finish_reason, usage=reply.usage))
        return chunks


_emulator: AI21Emulator | None = None


def ai21_emulator_get() -> AI21Emulator:
    global _emulator
    if _emulator is None:
        _emulator = AI21Emulator()
        _emulator.start()
    return _emulator
