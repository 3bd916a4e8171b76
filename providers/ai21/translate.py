"""OpenAI chat requests → AI21's Jamba chat API, and its answers back.

Jamba's API looks like OpenAI's with differences that matter: message `content` is a plain
string (text parts are joined; Jamba has no vision, so image parts are refused), tools are
function tools without `tool_choice` (`auto` is its behaviour; for `none` the tools are not sent,
so no tool can be called; a forced choice is refused), `response_format`
knows `text` and `json_object` only, `max_tokens` is at most 4096 (OpenAI's
`max_completion_tokens` is renamed), `n` is 1-16, and AI21's own `documents` pass through.
Parameters Jamba has no equivalent for (`user`, `logprobs`, `seed`, penalties, ...) are not
sent. Answers lack `object`, `created` and `model`: they are filled in.
"""

from __future__ import annotations

import time
from typing import Any

from providers.base import Deployment
from providers.errors import InvalidRequestError

MAX_TOKENS = 4096
PASSED = ("temperature", "top_p", "stop", "n", "documents")


def _content(message: dict[str, Any], index: int) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"`messages[{index}].content` must be a string or an array of parts.",
            param=f"messages[{index}].content",
        )
    texts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind != "text":
            raise InvalidRequestError(
                f"ai21 Jamba models accept text only; `messages[{index}]` has a `{kind}` part.",
                param=f"messages[{index}].content",
            )
        texts.append(str(part.get("text") or ""))
    return "\n".join(texts)


def _message(message: dict[str, Any], index: int) -> dict[str, Any]:
    role = message["role"]
    if role == "developer":
        role = "system"
    if role not in ("system", "user", "assistant", "tool"):
        raise InvalidRequestError(
            f"ai21 does not accept the role `{role}`.", param=f"messages[{index}].role"
        )
    translated: dict[str, Any] = {"role": role, "content": _content(message, index)}
    if role == "assistant" and message.get("tool_calls"):
        translated["tool_calls"] = [
            {
                "id": call["id"],
                "type": "function",
                "function": {
                    "name": call["function"]["name"],
                    "arguments": call["function"].get("arguments") or "{}",
                },
            }
            for call in message["tool_calls"]
        ]
    if role == "tool":
        translated["tool_call_id"] = message.get("tool_call_id")
    return translated


def _tools(tools: Any) -> list[dict[str, Any]]:
    translated = []
    for index, tool in enumerate(tools or []):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise InvalidRequestError(
                "ai21 supports function tools only.", param=f"tools[{index}].type"
            )
        function = {
            k: v for k, v in tool["function"].items() if k in ("name", "description", "parameters")
        }
        translated.append({"type": "function", "function": function})
    return translated


def chat_request_to_ai21(
    *, body: dict[str, Any], deployment: Deployment, stream: bool
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": deployment.upstream_model,
        "messages": [_message(m, i) for i, m in enumerate(body["messages"])],
    }
    choice = body.get("tool_choice")
    if choice not in (None, "auto", "none"):
        raise InvalidRequestError(
            "ai21 Jamba models choose tools themselves; only `tool_choice` auto or none is "
            "supported.",
            param="tool_choice",
        )
    if body.get("tools") and choice != "none":
        payload["tools"] = _tools(body["tools"])
    response_format = body.get("response_format")
    if response_format is not None:
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind not in ("text", "json_object"):
            raise InvalidRequestError(
                "ai21 supports `response_format` of type `text` or `json_object` only.",
                param="response_format",
            )
        payload["response_format"] = {"type": kind}
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        if max_tokens > MAX_TOKENS:
            raise InvalidRequestError(
                f"ai21 Jamba models generate at most {MAX_TOKENS} tokens.", param="max_tokens"
            )
        payload["max_tokens"] = max_tokens
    for name in PASSED:
        if body.get(name) is not None:
            payload[name] = body[name]
    if stream:
        payload["stream"] = True
    return payload


def _tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "id": call.get("id") or f"call_{index}",
            "type": "function",
            "function": {
                "name": call["function"]["name"],
                "arguments": call["function"].get("arguments") or "{}",
            },
        }
        for index, call in enumerate(calls)
    ]


def _usage(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def ai21_response_to_chat(reply: dict[str, Any], *, model: str) -> dict[str, Any]:
    choices = []
    for index, choice in enumerate(reply.get("choices") or []):
        message = choice.get("message") or {}
        translated: dict[str, Any] = {
            "role": "assistant",
            "content": message.get("content"),
            "refusal": None,
        }
        if message.get("tool_calls"):
            translated["tool_calls"] = _tool_calls(message["tool_calls"])
        finish = choice.get("finish_reason") or "stop"
        if message.get("tool_calls") and finish == "stop":
            finish = "tool_calls"
        choices.append(
            {
                "index": choice.get("index", index),
                "message": translated,
                "logprobs": None,
                "finish_reason": finish,
            }
        )
    return {
        "id": reply.get("id") or "chatcmpl-ai21",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": reply.get("model") or model,
        "choices": choices,
        "usage": _usage(reply.get("usage")),
    }


class StreamTranslator:
    """AI21's stream chunks → OpenAI chunks; the usage it sends last becomes a usage-only chunk."""

    def __init__(self, *, model: str) -> None:
        self.model = model
        self.created = int(time.time())
        self.saw_tool_calls = False

    def _chunk(self, identity: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": identity,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        identity = event.get("id") or "chatcmpl-ai21"
        out: list[dict[str, Any]] = []
        choices = []
        for index, choice in enumerate(event.get("choices") or []):
            delta = dict(choice.get("delta") or {})
            if delta.get("tool_calls"):
                self.saw_tool_calls = True
                delta["tool_calls"] = [
                    {
                        "index": call.get("index", i),
                        **{k: v for k, v in call.items() if k != "index"},
                    }
                    for i, call in enumerate(delta["tool_calls"])
                ]
            finish = choice.get("finish_reason")
            if finish == "stop" and self.saw_tool_calls:
                finish = "tool_calls"
            choices.append(
                {
                    "index": choice.get("index", index),
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish,
                }
            )
        if choices:
            out.append(self._chunk(identity, choices))
        if event.get("usage"):
            out.append(self._chunk(identity, []) | {"usage": _usage(event["usage"])})
        return out
