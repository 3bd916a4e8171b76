"""OpenAI chat completions ⇄ Anthropic Messages API, as pure functions.

Request side (`chat_request_to_messages`): system and developer messages are lifted into the
top-level `system`; consecutive turns of one role are merged (tool results become `tool_result`
blocks at the head of a user turn, as the API requires); the conversation always starts with a
user turn (a "." placeholder is inserted before a leading assistant turn); `max_tokens` is always
sent: the request's `max_completion_tokens`/`max_tokens`, else the deployment's
`params["max_tokens"]`, else `DEFAULT_MAX_TOKENS`. OpenAI-only fields with no Messages
equivalent (penalties, seed, logprobs, ...) are dropped, because the API rejects unknown fields.

JSON mode (`response_format` json_object / json_schema) is a forced tool named `JSON_TOOL_NAME`
whose input is the JSON; its `tool_use` comes back as the message content, so the reserved name
is refused as a client tool name.

Prompt caching: `cache_control` on a content part, a tool call, a tool message or a tool is kept
on the block it marks; on a message (LiteLLM's style) it marks the message's last block; at the
top level it is Anthropic's automatic caching and is sent as it is.

Response side: usage maps to OpenAI's, with the prompt counting every input token the way
OpenAI's does: `prompt_tokens = input_tokens + cache_read_input_tokens +
cache_creation_input_tokens`; cache reads are `prompt_tokens_details.cached_tokens` and cache
writes `prompt_tokens_details.cache_creation_tokens` (an Ogem extension, priced separately), with
`cache_creation_1h_tokens` for those written for an hour (priced at the one-hour write price).
Thinking comes back as `reasoning_content` (text) and `thinking_blocks` (the blocks with their
signatures, which a client sends back on the assistant turn to continue a tool-use loop).
"""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson

from providers.base import Deployment
from providers.errors import InvalidRequestError
from providers.turns import turn_append

DEFAULT_MAX_TOKENS = 4096
JSON_TOOL_NAME = "json_response"
PLACEHOLDER_USER_TEXT = "."
# reasoning_effort → thinking.budget_tokens (the API's minimum budget is 1024).
REASONING_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}
IMAGE_MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def _invalid(message: str, *, param: str | None = "messages") -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _with_cache_control(block: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    if source.get("cache_control") is not None:
        block["cache_control"] = source["cache_control"]
    return block


def _data_url_split(url: str) -> tuple[str, str]:
    """`data:<media type>;base64,<data>` → (media type, base64 data)."""
    header, sep, data = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise _invalid("Only base64 data URLs are supported for inline images and files.")
    return header[len("data:") : -len(";base64")], data


def _media_block(url: str, part: dict[str, Any]) -> dict[str, Any]:
    if url.startswith("data:"):
        media_type, data = _data_url_split(url)
        if media_type == "application/pdf":
            source = {"type": "base64", "media_type": media_type, "data": data}
            return _with_cache_control({"type": "document", "source": source}, part)
        if media_type not in IMAGE_MEDIA_TYPES:
            raise _invalid(f"Unsupported image type {media_type!r} for Anthropic.")
        source = {"type": "base64", "media_type": media_type, "data": data}
        return _with_cache_control({"type": "image", "source": source}, part)
    if url.startswith(("https://", "http://")):
        kind = "document" if url.lower().split("?")[0].endswith(".pdf") else "image"
        return _with_cache_control({"type": kind, "source": {"type": "url", "url": url}}, part)
    raise _invalid("An image URL must be an http(s) URL or a base64 data URL.")


def _file_block(part: dict[str, Any]) -> dict[str, Any]:
    file = part.get("file") or {}
    if file.get("file_data"):
        media_type, data = _data_url_split(str(file["file_data"]))
        if media_type == "application/pdf":
            source = {"type": "base64", "media_type": media_type, "data": data}
        elif media_type == "text/plain":
            text = base64.b64decode(data).decode("utf-8")
            source = {"type": "text", "media_type": media_type, "data": text}
        else:
            raise _invalid(f"Unsupported file type {media_type!r} for Anthropic.")
        block: dict[str, Any] = {"type": "document", "source": source}
        if file.get("filename"):
            block["title"] = str(file["filename"])
        return _with_cache_control(block, part)
    raise _invalid("Anthropic deployments accept files as file_data (base64 data URLs) only.")


def _content_blocks(content: Any, *, allow_media: bool = True) -> list[dict[str, Any]]:
    """OpenAI message content (a string or content parts) → Anthropic content blocks."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _invalid("Message content must be a string or a list of content parts.")
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append(_with_cache_control({"type": "text", "text": part["text"]}, part))
        elif kind == "image_url" and allow_media:
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, dict) else str(image or "")
            blocks.append(_media_block(url, part))
        elif kind == "file" and allow_media:
            blocks.append(_file_block(part))
        else:
            raise _invalid(f"Content part type {kind!r} is not supported by Anthropic.")
    return blocks


def _message_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = _content_blocks(message.get("content"))
    # LiteLLM-style message-level cache_control marks the message's last block.
    if message.get("cache_control") is not None and blocks:
        blocks[-1]["cache_control"] = message["cache_control"]
    return blocks


def _tool_arguments(raw: Any) -> Any:
    if isinstance(raw, dict):
        return raw
    if not raw:
        return {}
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _invalid("tool_calls[].function.arguments must be a JSON object.") from exc
    if not isinstance(parsed, dict):
        raise _invalid("tool_calls[].function.arguments must be a JSON object.")
    return parsed


def _assistant_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [dict(b) for b in message.get("thinking_blocks") or []]
    blocks += [b for b in _message_blocks(message) if b.get("type") != "text" or b["text"]]
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        blocks.append(
            _with_cache_control(
                {
                    "type": "tool_use",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "input": _tool_arguments(function.get("arguments")),
                },
                call,
            )
        )
    return blocks


def _tool_result_block(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.get("tool_call_id")}
    if isinstance(content, list):
        block["content"] = _content_blocks(content)
    elif content is not None:
        block["content"] = str(content)
    return _with_cache_control(block, message)


def _blank(block: dict[str, Any]) -> bool:
    return block.get("type") == "text" and not str(block.get("text") or "").strip()


def _blocks_filled(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A turn's blocks without blank text blocks, or the placeholder when nothing is left:
    the API refuses empty content (modify_params)."""
    kept = [block for block in blocks if not _blank(block)]
    return kept or [{"type": "text", "text": PLACEHOLDER_USER_TEXT}]


def messages_convert(
    messages: list[dict[str, Any]], *, modify: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages → (system blocks, alternating Anthropic turns starting with a user turn).

    `modify` (LiteLLM's modify_params): blank text is left out of turns and system, and a turn
    left empty says PLACEHOLDER_USER_TEXT, rather than sent for the API to refuse."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    for message in messages:
        if not isinstance(message, dict):
            raise _invalid("Each message must be an object.")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_message_blocks(message))
        elif role == "user":
            turn_append(turns, "user", _message_blocks(message))
        elif role == "assistant":
            turn_append(turns, "assistant", _assistant_blocks(message))
        elif role == "tool":
            turn_append(turns, "user", [_tool_result_block(message)])
        else:
            raise _invalid(f"Message role {role!r} is not supported by Anthropic.")

    if not turns:
        raise _invalid("Anthropic needs at least one user or assistant message.")
    if turns[0]["role"] == "assistant":
        turns.insert(
            0, {"role": "user", "content": [{"type": "text", "text": PLACEHOLDER_USER_TEXT}]}
        )
    if modify:
        system = [block for block in system if not _blank(block)]
    for turn in turns:
        blocks = turn["content"]
        if modify:
            blocks = turn["content"] = _blocks_filled(blocks)
        if turn["role"] == "user":
            # tool_result blocks must open the user turn that answers the tool calls.
            blocks.sort(key=lambda b: b.get("type") != "tool_result")
        if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
            turn["content"] = blocks[0]["text"]
    return system, turns


def _tool_convert(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        raise _invalid("Only function tools are supported by Anthropic.", param="tools")
    function = tool["function"]
    name = function.get("name")
    if name == JSON_TOOL_NAME:
        raise _invalid(f"The tool name {JSON_TOOL_NAME!r} is reserved.", param="tools")
    converted: dict[str, Any] = {"name": name}
    if function.get("description"):
        converted["description"] = function["description"]
    converted["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    cache_control = tool.get("cache_control", function.get("cache_control"))
    if cache_control is not None:
        converted["cache_control"] = cache_control
    return converted


def _tool_choice_convert(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    raise _invalid("Unsupported tool_choice.", param="tool_choice")


def _json_tool(response_format: dict[str, Any]) -> dict[str, Any] | None:
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {
            "name": JSON_TOOL_NAME,
            "description": "Respond with a JSON object.",
            "input_schema": {"type": "object"},
        }
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or {"type": "object"}
        if schema.get("type") != "object":
            raise _invalid(
                "Anthropic needs a json_schema whose root is an object.", param="response_format"
            )
        description = spec.get("description") or f"Respond with {spec.get('name', 'the')} JSON."
        return {"name": JSON_TOOL_NAME, "description": description, "input_schema": schema}
    raise _invalid(f"Unsupported response_format type {kind!r}.", param="response_format")


def _thinking(body: dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(body.get("thinking"), dict):
        return dict(body["thinking"])
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none":
        return None
    if effort not in REASONING_BUDGETS:
        raise _invalid(f"Unsupported reasoning_effort {effort!r}.", param="reasoning_effort")
    return {"type": "enabled", "budget_tokens": REASONING_BUDGETS[effort]}


def chat_request_to_messages(
    *, body: dict[str, Any], deployment: Deployment, stream: bool
) -> dict[str, Any]:
    """An OpenAI chat completions request → an Anthropic Messages API request body."""
    if body.get("n") not in (None, 1):
        raise _invalid("Anthropic returns one choice; n must be 1.", param="n")
    system, turns = messages_convert(
        body.get("messages") or [], modify=bool(deployment.modify_params)
    )
    payload: dict[str, Any] = {"model": deployment.upstream_model}

    thinking = _thinking(body)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is None:
        max_tokens = int(deployment.params.get("max_tokens") or DEFAULT_MAX_TOKENS)
        budget = int((thinking or {}).get("budget_tokens") or 0)
        if budget >= max_tokens:
            max_tokens = budget + DEFAULT_MAX_TOKENS
    payload["max_tokens"] = max_tokens
    payload["messages"] = turns
    if system:
        plain = len(system) == 1 and system[0].keys() == {"type", "text"}
        payload["system"] = system[0]["text"] if plain else system

    stop = body.get("stop")
    if stop:
        payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None:
            payload[name] = body[name]
    if thinking is not None:
        payload["thinking"] = thinking
    if body.get("user"):
        payload["metadata"] = {"user_id": str(body["user"])}

    tools = [_tool_convert(t) for t in body.get("tools") or []]
    tool_choice = _tool_choice_convert(body.get("tool_choice")) if tools else None
    json_tool = _json_tool(body.get("response_format") or {})
    if json_tool is not None:
        # Forcing a tool is refused while thinking is enabled; the model then picks it itself.
        thinking_on = thinking is not None and thinking.get("type") != "disabled"
        if not tools and not thinking_on:
            tool_choice = {"type": "tool", "name": JSON_TOOL_NAME}
        tools.append(json_tool)
    if tools:
        payload["tools"] = tools
        if body.get("parallel_tool_calls") is False:
            tool_choice = tool_choice or {"type": "auto"}
            if tool_choice["type"] != "none":
                tool_choice["disable_parallel_tool_use"] = True
        if tool_choice is not None:
            payload["tool_choice"] = tool_choice
    if body.get("cache_control") is not None:
        # Anthropic's automatic caching: the breakpoint moves to the last cacheable block.
        payload["cache_control"] = body["cache_control"]
    if stream:
        payload["stream"] = True
    return payload


def usage_to_openai(usage: dict[str, Any]) -> dict[str, Any]:
    """Anthropic usage → OpenAI usage (see the module docstring for where cache counts go)."""
    cache_read = int(usage.get("cache_read_input_tokens") or 0)
    cache_write = int(usage.get("cache_creation_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + cache_read + cache_write
    completion = int(usage.get("output_tokens") or 0)
    details = usage.get("output_tokens_details") or {}
    prompt_details = {"cached_tokens": cache_read, "cache_creation_tokens": cache_write}
    hour = int((usage.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0)
    if hour:
        prompt_details["cache_creation_1h_tokens"] = hour
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": prompt_details,
        "completion_tokens_details": {"reasoning_tokens": int(details.get("thinking_tokens") or 0)},
    }


def finish_reason(stop_reason: str | None, *, tool_calls: bool) -> str | None:
    if stop_reason is None:
        return None
    if stop_reason == "tool_use" and not tool_calls:
        return "stop"  # only the JSON-mode tool was called: the JSON is the answer
    return FINISH_REASONS.get(stop_reason, "stop")


def completion_id(message_id: str) -> str:
    return f"chatcmpl-{message_id}"


def messages_response_to_chat(
    response: dict[str, Any], *, created: int | None = None
) -> dict[str, Any]:
    """An Anthropic Message → an OpenAI chat completion."""
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    for block in response.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use" and block.get("name") == JSON_TOOL_NAME:
            texts.append(orjson.dumps(block.get("input") or {}).decode())
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            tool_calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {"name": block.get("name"), "arguments": arguments},
                }
            )
        elif kind == "thinking":
            reasoning.append(block.get("thinking", ""))
            thinking_blocks.append(block)
        elif kind == "redacted_thinking":
            thinking_blocks.append(block)

    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    return {
        "id": completion_id(str(response.get("id", ""))),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": response.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(
                    response.get("stop_reason"), tool_calls=bool(tool_calls)
                )
                or "stop",
            }
        ],
        "usage": usage_to_openai(response.get("usage") or {}),
    }
