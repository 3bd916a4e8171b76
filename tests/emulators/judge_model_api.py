"""A chat model that judges, behind an OpenAI-compatible `POST /v1/chat/completions` (bearer
key, `model`, `messages` of `{role, content}`, `temperature`?, `max_tokens`?, `response_format`?
among `text` and `json_object`): the model an `llm_judge` guardrail asks.

It reads its rubric from the system message (a line `Forbidden: word, word`) and the text to judge
from the last user message; it answers `{"allowed": false, "category": "forbidden_topic",
"reason"}` when the text holds a forbidden word, `{"allowed": true, ...}` otherwise, in a chat
completion with usage. A text asking to "answer in prose" gets prose, not JSON (a judge that
ignores its format). A bad body is a 400 and a wrong key a 401, in OpenAI's error shape;
scripted `Fault`s answer the next requests instead.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

API_KEY = "sk-judge-emulator"
FIELDS = {
    "model",
    "messages",
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "response_format",
    "stream",
    "user",
}
_FORBIDDEN = re.compile(r"^Forbidden:\s*(.+)$", re.MULTILINE | re.IGNORECASE)


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    return json_response(
        {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": code,
            }
        },
        status=status,
    )


class JudgeModelEmulator(ScriptedEmulator):
    name = "judge-model-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)

    async def _chat(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        fault = self.next_reply()
        if isinstance(fault, Fault):
            return fault.response()
        if received.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(401, "Incorrect API key provided.", "invalid_api_key")
        body = received.body
        problem = _problem(body)
        if problem is not None:
            return _error(400, problem)
        system = " ".join(m["content"] for m in body["messages"] if m["role"] == "system")
        text = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
        forbidden = [
            word.strip().lower()
            for found in _FORBIDDEN.findall(system)
            for word in found.split(",")
            if word.strip()
        ]
        hit = next((word for word in forbidden if word in text.lower()), None)
        if "answer in prose" in text.lower():
            content = "I think this text is probably fine, all things considered."
        elif hit is not None:
            content = orjson.dumps(
                {"allowed": False, "category": "forbidden_topic", "reason": f"mentions {hit}"}
            ).decode()
        else:
            content = orjson.dumps(
                {"allowed": True, "category": "", "reason": "nothing forbidden"}
            ).decode()
        prompt_tokens = sum(len(str(m["content"]).split()) for m in body["messages"])
        completion_tokens = len(content.split())
        return json_response(
            {
                "id": "chatcmpl-judge",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        )


def _problem(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    unknown = set(body) - FIELDS
    if unknown:
        return f"Unrecognized request argument supplied: {sorted(unknown)[0]}"
    if not isinstance(body.get("model"), str):
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty array"
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in ("system", "user"):
            return "a judge reads system and user messages"
        if not isinstance(message.get("content"), str):
            return "message content must be a string"
    if not any(m["role"] == "user" for m in messages):
        return "there is no user message to judge"
    response_format = body.get("response_format")
    if response_format is not None and response_format.get("type") not in ("text", "json_object"):
        return "response_format.type must be text or json_object"
    if body.get("stream"):
        return "this judge does not stream"
    return None
