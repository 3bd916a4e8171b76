"""The Anthropic-compatible ingress, as pure functions: Messages API in, OpenAI shape inside.

`/v1/messages` turns the client's Messages request into an OpenAI chat request
(`messages_request_to_chat`), runs it through the ordinary /v1 pipeline against any deployment,
and turns the OpenAI-shaped answer back (`chat_response_to_message`, or `ChunkTranslator` for
streams, which emits Anthropic's SSE events in their order: `message_start`, `ping`, one
`content_block_start`/`_delta`/`_stop` run per block, `message_delta` with the stop reason and
usage, `message_stop`).

What has no OpenAI equivalent: `top_k` and `tool_result.is_error` are dropped; `thinking` becomes
`reasoning_effort` (budget ≤ 1024 low, ≤ 2048 medium, else high); the matched stop sequence
is not known after translation, so `stop_sequence` is always null.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from providers.errors import GatewayError, InvalidRequestError

STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}

# Ogem's error types → Anthropic's, for the error bodies of this route.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
}


UPSTREAM_ERROR_TYPES: dict[str, str] = {
    "upstream_unavailable": "overloaded_error",
    "upstream_timeout": "timeout_error",
}


def _invalid(message: str, param: str | None = None) -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _blocks(value: Any, where: str) -> list[dict[str, Any]]:
    """Content blocks (or tools): an array of objects, as Anthropic's API requires."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(block, dict) for block in value):
        raise _invalid(f"{where}: must be an array of objects", where)
    return value


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _invalid(f"{where}: a text block's `text` must be a string", where)
    return text


def anthropic_error_body(error: GatewayError) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": ERROR_TYPES.get(error.status, "api_error"), "message": error.message},
    }


def _keep_cache_control(part: dict[str, Any], block: dict[str, Any]) -> dict[str, Any]:
    if block.get("cache_control") is not None:
        part["cache_control"] = block["cache_control"]
    return part


def _media_part(block: dict[str, Any]) -> dict[str, Any]:
    source = block.get("source") or {}
    if not isinstance(source, dict):
        raise _invalid(f"{block['type']}.source: must be an object", "messages")
    kind = source.get("type")
    if block["type"] == "image" and kind == "base64":
        url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        return _keep_cache_control({"type": "image_url", "image_url": {"url": url}}, block)
    if block["type"] == "image" and kind == "url" and isinstance(source.get("url"), str):
        return _keep_cache_control(
            {"type": "image_url", "image_url": {"url": source["url"]}}, block
        )
    if block["type"] == "document" and kind == "base64":
        file = {
            "file_data": f"data:{source.get('media_type')};base64,{source.get('data')}",
            "filename": block.get("title") or "document.pdf",
        }
        return _keep_cache_control({"type": "file", "file": file}, block)
    if block["type"] == "document" and kind == "text":
        return _keep_cache_control({"type": "text", "text": str(source.get("data", ""))}, block)
    raise _invalid(f"Unsupported {block['type']} source type {kind!r}.", "messages")


def _parts(content: Any) -> list[dict[str, Any]]:
    """Anthropic user content (no tool results) → OpenAI content parts."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    parts: list[dict[str, Any]] = []
    for block in _blocks(content, "messages"):
        kind = block.get("type")
        if kind == "text":
            text = _text(block, "messages")
            parts.append(_keep_cache_control({"type": "text", "text": text}, block))
        elif kind in ("image", "document"):
            parts.append(_media_part(block))
        else:
            raise _invalid(f"Content block type {kind!r} is not supported here.", "messages")
    return parts


def _simplify(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    if len(parts) == 1 and parts[0].keys() == {"type", "text"}:
        return parts[0]["text"]
    return parts


def _user_messages(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    messages: list[dict[str, Any]] = []
    rest: list[dict[str, Any]] = []
    for block in _blocks(content, "messages"):
        if block.get("type") == "tool_result":
            result = block.get("content")
            if isinstance(result, str) or result is None or result == []:
                tool_content: Any = result or ""
            else:
                tool_content = _simplify(_parts(result))
            message = {
                "role": "tool",
                "tool_call_id": block.get("tool_use_id"),
                "content": tool_content,
            }
            messages.append(_keep_cache_control(message, block))
        else:
            rest.append(block)
    if rest:
        messages.append({"role": "user", "content": _simplify(_parts(rest))})
    return messages


def _assistant_message(content: Any) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    thinking: list[dict[str, Any]] = []
    for block in _blocks(content, "messages"):
        kind = block.get("type")
        if kind == "text":
            texts.append(
                _keep_cache_control({"type": "text", "text": _text(block, "messages")}, block)
            )
        elif kind == "tool_use":
            call = {
                "id": block.get("id"),
                "type": "function",
                "function": {
                    "name": block.get("name"),
                    "arguments": orjson.dumps(block.get("input") or {}).decode(),
                },
            }
            tool_calls.append(_keep_cache_control(call, block))
        elif kind in ("thinking", "redacted_thinking"):
            thinking.append(block)
        else:
            raise _invalid(f"Content block type {kind!r} is not supported here.", "messages")
    marked = any("cache_control" in part for part in texts)
    # Text parts stay parts when one carries a cache breakpoint, so the marker keeps its place.
    text: Any = texts if marked else "".join(part["text"] for part in texts) or None
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if thinking:
        message["thinking_blocks"] = thinking
    return message


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") not in (None, "custom"):
        raise _invalid(f"Server tool {tool.get('type')!r} is not supported here.", "tools")
    function: dict[str, Any] = {"name": tool.get("name")}
    if tool.get("description"):
        function["description"] = tool["description"]
    function["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    return _keep_cache_control({"type": "function", "function": function}, tool)


def _tool_choice(choice: dict[str, Any]) -> Any:
    kind = choice.get("type")
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    raise _invalid(f"Unsupported tool_choice type {kind!r}.", "tool_choice")


def _reasoning_effort(thinking: dict[str, Any]) -> str | None:
    if thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens") or 0
    if not isinstance(budget, int) or isinstance(budget, bool):
        raise _invalid("thinking.budget_tokens: must be an integer", "thinking")
    if budget <= 1024:
        return "low"
    return "medium" if budget <= 2048 else "high"


def messages_request_to_chat(body: dict[str, Any], *, count_only: bool = False) -> dict[str, Any]:
    """An Anthropic Messages request → an OpenAI chat completions request."""
    if not isinstance(body, dict):
        raise _invalid("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("model: Field required", "model")
    max_tokens = body.get("max_tokens")
    if not count_only and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)):
        raise _invalid("max_tokens: Field required", "max_tokens")
    source = body.get("messages")
    if not isinstance(source, list) or not source:
        raise _invalid("messages: at least one message is required", "messages")

    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    elif isinstance(system, list) and system:
        messages.append({"role": "system", "content": _simplify(_parts(_blocks(system, "system")))})
    elif system is not None and not isinstance(system, str | list):
        raise _invalid("system: must be a string or an array of text blocks", "system")
    for message in source:
        role = message.get("role") if isinstance(message, dict) else None
        if role == "user":
            messages.extend(_user_messages(message.get("content")))
        elif role == "assistant":
            messages.append(_assistant_message(message.get("content")))
        else:
            raise _invalid("messages: roles must be 'user' or 'assistant'", "messages")

    chat: dict[str, Any] = {"model": model, "messages": messages}
    if max_tokens is not None:
        chat["max_tokens"] = max_tokens
    stop = body.get("stop_sequences")
    if stop is not None and not (
        isinstance(stop, list) and all(isinstance(item, str) for item in stop)
    ):
        raise _invalid("stop_sequences: must be an array of strings", "stop_sequences")
    if stop:
        chat["stop"] = list(stop)
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    metadata = body.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise _invalid("metadata: must be an object", "metadata")
    if metadata.get("user_id"):
        chat["user"] = str(metadata["user_id"])
    if body.get("tools"):
        chat["tools"] = [_tool(t) for t in _blocks(body["tools"], "tools")]
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            chat["tool_choice"] = _tool_choice(choice)
            if choice.get("disable_parallel_tool_use"):
                chat["parallel_tool_calls"] = False
    thinking = body.get("thinking") or {}
    if not isinstance(thinking, dict):
        raise _invalid("thinking: must be an object", "thinking")
    effort = _reasoning_effort(thinking)
    if effort is not None:
        chat["reasoning_effort"] = effort
    if body.get("cache_control") is not None:
        chat["cache_control"] = body["cache_control"]
    if body.get("stream"):
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


def message_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def usage_to_anthropic(usage: dict[str, Any] | None) -> dict[str, Any]:
    usage = usage or {}
    details = usage.get("prompt_tokens_details") or {}
    cached = int(details.get("cached_tokens") or 0)
    created = int(details.get("cache_creation_tokens") or 0)
    return {
        "input_tokens": max(int(usage.get("prompt_tokens") or 0) - cached - created, 0),
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": cached,
    }


def chat_response_to_message(
    completion: dict[str, Any], *, model: str, msg_id: str | None = None
) -> dict[str, Any]:
    """An OpenAI chat completion → an Anthropic Message (`model` is the name the client sent)."""
    choice = (completion.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = [dict(b) for b in message.get("thinking_blocks") or []]
    if not content and message.get("reasoning_content"):
        content.append(
            {"type": "thinking", "thinking": message["reasoning_content"], "signature": ""}
        )
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = {}
        content.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": arguments,
            }
        )
    return {
        "id": msg_id or message_id(),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage_to_anthropic(completion.get("usage")),
    }


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n"


class ChunkTranslator:
    """OpenAI chat chunks → Anthropic SSE events (bytes), block by block."""

    def __init__(self, *, model: str, msg_id: str | None = None) -> None:
        self.model = model
        self.id = msg_id or message_id()
        self.started = False
        self.stop_reason = "end_turn"
        self.usage: dict[str, Any] | None = None
        self._index = -1
        self._open: tuple[str, int | None] | None = None  # (block kind, tool-call index)
        self._tool_calls: dict[int, bool] = {}

    def start(self) -> list[bytes]:
        self.started = True
        message = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [
            sse_event("message_start", {"type": "message_start", "message": message}),
            sse_event("ping", {"type": "ping"}),
        ]

    def _close(self) -> list[bytes]:
        if self._open is None:
            return []
        self._open = None
        return [
            sse_event("content_block_stop", {"type": "content_block_stop", "index": self._index})
        ]

    def _begin(self, kind: str, block: dict[str, Any], tool: int | None = None) -> list[bytes]:
        events = self._close()
        self._index += 1
        self._open = (kind, tool)
        events.append(
            sse_event(
                "content_block_start",
                {"type": "content_block_start", "index": self._index, "content_block": block},
            )
        )
        return events

    def _delta(self, delta: dict[str, Any]) -> bytes:
        return sse_event(
            "content_block_delta",
            {"type": "content_block_delta", "index": self._index, "delta": delta},
        )

    def feed(self, chunk: dict[str, Any]) -> list[bytes]:
        if not self.started and chunk.get("model"):
            self.model = str(chunk["model"])  # the model that answered, as non-streaming reports
        events: list[bytes] = [] if self.started else self.start()
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                if self._open is None or self._open[0] != "thinking":
                    events += self._begin(
                        "thinking", {"type": "thinking", "thinking": "", "signature": ""}
                    )
                events.append(
                    self._delta({"type": "thinking_delta", "thinking": delta["reasoning_content"]})
                )
            for block in delta.get("thinking_blocks") or []:
                if block.get("type") == "thinking" and block.get("signature"):
                    if self._open is None or self._open[0] != "thinking":
                        events += self._begin(
                            "thinking", {"type": "thinking", "thinking": "", "signature": ""}
                        )
                    events.append(
                        self._delta({"type": "signature_delta", "signature": block["signature"]})
                    )
            if delta.get("content"):
                if self._open is None or self._open[0] != "text":
                    events += self._begin("text", {"type": "text", "text": ""})
                events.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or []:
                position = int(call.get("index", 0))
                function = call.get("function") or {}
                if position not in self._tool_calls:
                    self._tool_calls[position] = True
                    block = {
                        "type": "tool_use",
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "input": {},
                    }
                    events += self._begin("tool", block, position)
                if function.get("arguments"):
                    events.append(
                        self._delta(
                            {"type": "input_json_delta", "partial_json": function["arguments"]}
                        )
                    )
            if choice.get("finish_reason"):
                self.stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
        return events

    def finish(self) -> list[bytes]:
        events: list[bytes] = [] if self.started else self.start()
        events += self._close()
        events.append(
            sse_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
                    "usage": usage_to_anthropic(self.usage),
                },
            )
        )
        events.append(sse_event("message_stop", {"type": "message_stop"}))
        return events

    def error(self, error: GatewayError) -> list[bytes]:
        return [sse_event("error", anthropic_error_body(error))]


def openai_error_to_anthropic(error: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI-shaped `error` object (a mid-stream failure) → Anthropic's error event body."""
    kind = str(error.get("type") or "api_error")
    code = error.get("code")
    if kind == "upstream_error":
        kind = UPSTREAM_ERROR_TYPES.get(str(code), "api_error")
    elif code == "request_too_large":
        kind = "request_too_large"
    elif kind not in set(ERROR_TYPES.values()):
        kind = "api_error"
    return {"type": "error", "error": {"type": kind, "message": str(error.get("message") or "")}}


def chat_strip_anthropic_fields(chat: dict[str, Any]) -> dict[str, Any]:
    """Drop what only Anthropic understands (`cache_control`, `thinking_blocks`), for requests
    that may reach another provider, whose API would refuse the unknown fields."""

    def clean(item: Any) -> Any:
        if isinstance(item, dict):
            return {
                k: clean(v)
                for k, v in item.items()
                if k not in ("cache_control", "thinking_blocks")
            }
        if isinstance(item, list):
            return [clean(v) for v in item]
        return item

    stripped = dict(chat)
    stripped.pop("cache_control", None)
    for name in ("messages", "tools"):
        if name in stripped:
            stripped[name] = clean(stripped[name])
    return stripped
