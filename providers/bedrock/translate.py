"""OpenAI requests ⇄ Bedrock's Converse API and InvokeModel embeddings, as pure functions.

Chat (`chat_request_to_converse`): system and developer messages become `system` text blocks;
turns alternate starting with a user turn (consecutive roles merged; tool results become
`toolResult` blocks in a user turn); images are sent as bytes (base64 in JSON) from data URLs
(the adapter first downloads http(s) image URLs into data URLs, through the SSRF guard);
`max_tokens`/`temperature`/`top_p`/`stop` go to `inferenceConfig`; tools become
`toolConfig.tools[].toolSpec` with `inputSchema.json`. Converse has no tool_choice "none", so
such a request declares no tools at all: a model can only call a declared tool. Converse
refuses `toolUse`/`toolResult` blocks without a `toolConfig`, so when no client tool is declared
(tool_choice "none", or no `tools`) the history's tool calls and results are sent as text.
JSON mode is a forced tool named `JSON_TOOL_NAME` whose input is the answer.
`params.additional_model_request_fields` is passed through as `additionalModelRequestFields`.

Reasoning: on Claude models with extended thinking (3.7 Sonnet and the 4 family, see
`thinking_supported`), `reasoning_effort` becomes `additionalModelRequestFields.thinking` with
the Anthropic adapter's budgets (`REASONING_BUDGETS`), and an explicit Anthropic-style `thinking`
object is sent as it is; `maxTokens`, when the request sets none, is raised above the budget as
for Anthropic direct. Other models have no thinking budget: `reasoning_effort` is not sent.
Reasoning comes back as `reasoning_content` and `thinking_blocks` (with their signatures, which a
client sends back on the assistant turn of a tool-use loop, where they become `reasoningContent`).

Prompt caching: an OpenAI-format `cache_control` marker (Anthropic's, as LiteLLM users write it)
on a content part, a message, a tool call or a tool becomes a `cachePoint` block right after what
it marks (in `system`, a turn's `content` or `toolConfig.tools`), its `ttl` kept; a top-level
`cache_control` (Anthropic's automatic caching) marks the end of the last turn.

Usage: `prompt_tokens = inputTokens + cacheReadInputTokens + cacheWriteInputTokens`, with the
cache reads in `prompt_tokens_details.cached_tokens` and writes in `cache_creation_tokens`.
"""

from __future__ import annotations

import base64
import re
import struct
import time
from typing import Any

import orjson

from providers.anthropic.translate import DEFAULT_MAX_TOKENS, REASONING_BUDGETS
from providers.base import Deployment
from providers.errors import InvalidRequestError
from providers.turns import turn_append

JSON_TOOL_NAME = "json_response"
IMAGE_FORMATS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
DOCUMENT_FORMATS: dict[str, str] = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "text/plain": "txt",
    "text/html": "html",
    "text/markdown": "md",
}
FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# LiteLLM's route prefixes inside the model id ("bedrock/converse/<model id>").
ROUTE_PREFIXES = ("converse/", "invoke/")
COHERE_INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering"})
# Claude models with extended thinking (3.7 Sonnet, then Opus/Sonnet/Haiku 4 and later), in
# Bedrock ids such as "us.anthropic.claude-sonnet-4-20250514-v1:0".
THINKING_MODEL_RE = re.compile(r"anthropic\.claude-(3-7-sonnet|(opus|sonnet|haiku)-[4-9])")


def _invalid(message: str, *, param: str | None = "messages") -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def model_id(deployment: Deployment) -> str:
    upstream = deployment.upstream_model
    for prefix in ROUTE_PREFIXES:
        upstream = upstream.removeprefix(prefix)
    return upstream


def _data_url_split(url: str) -> tuple[str, bytes]:
    header, sep, data = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise _invalid("Only base64 data URLs are supported for inline images and files.")
    try:
        raw = base64.b64decode(data, validate=True)
    except ValueError as exc:
        raise _invalid("An image data URL holds invalid base64.") from exc
    return header[len("data:") : -len(";base64")], raw


def _cache_point(source: dict[str, Any]) -> list[dict[str, Any]]:
    """The `cachePoint` block that follows what `source` (a part, message, call or tool) marks
    with `cache_control`, as a list of zero or one block."""
    control = source.get("cache_control")
    if control is None:
        return []
    if not isinstance(control, dict):
        raise _invalid('cache_control must be an object such as {"type": "ephemeral"}.')
    point: dict[str, Any] = {"type": "default"}
    if control.get("ttl") is not None:
        point["ttl"] = control["ttl"]
    return [{"cachePoint": point}]


def _image_block(part: dict[str, Any]) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url", "") if isinstance(image, dict) else str(image or "")
    if not url.startswith("data:"):
        raise _invalid("An image URL must be an http(s) URL or a base64 data URL.")
    media_type, raw = _data_url_split(url)
    if media_type not in IMAGE_FORMATS:
        raise _invalid(f"Unsupported image type {media_type!r} for Bedrock.")
    source = {"bytes": base64.b64encode(raw).decode()}
    return {"image": {"format": IMAGE_FORMATS[media_type], "source": source}}


def _document_block(part: dict[str, Any], position: int) -> dict[str, Any]:
    file = part.get("file") or {}
    if not file.get("file_data"):
        raise _invalid("Bedrock deployments accept files as file_data (base64 data URLs) only.")
    media_type, raw = _data_url_split(str(file["file_data"]))
    if media_type not in DOCUMENT_FORMATS:
        raise _invalid(f"Unsupported file type {media_type!r} for Bedrock.")
    # Converse document names allow letters, digits, spaces, hyphens, parentheses and brackets.
    stem = str(file.get("filename") or f"document {position}").rsplit(".", 1)[0]
    name = "".join(c if c.isalnum() or c in " -()[]" else " " for c in stem).strip()
    return {
        "document": {
            "format": DOCUMENT_FORMATS[media_type],
            "name": name or f"document {position}",
            "source": {"bytes": base64.b64encode(raw).decode()},
        }
    }


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _invalid("Message content must be a string or a list of content parts.")
    blocks: list[dict[str, Any]] = []
    for position, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                blocks.append({"text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image_block(part))
        elif kind == "file":
            blocks.append(_document_block(part, position))
        else:
            raise _invalid(f"Content part type {kind!r} is not supported by Bedrock.")
        if blocks:
            blocks += _cache_point(part)
    return blocks


def _message_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = _content_blocks(message.get("content"))
    return blocks + _cache_point(message) if blocks else blocks


def _tool_arguments(raw: Any) -> dict[str, Any]:
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


def _reasoning_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """An assistant message's `thinking_blocks` (as the client got them) → `reasoningContent`."""
    blocks: list[dict[str, Any]] = []
    for block in message.get("thinking_blocks") or []:
        if not isinstance(block, dict):
            raise _invalid("thinking_blocks must hold objects.")
        if block.get("type") == "redacted_thinking":
            blocks.append({"reasoningContent": {"redactedContent": block.get("data", "")}})
        elif block.get("type") == "thinking" and block.get("thinking"):
            text: dict[str, Any] = {"text": block["thinking"]}
            if block.get("signature"):
                text["signature"] = block["signature"]
            blocks.append({"reasoningContent": {"reasoningText": text}})
    return blocks


def _call_text(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = orjson.dumps(arguments or {}).decode()
    return {"text": f"[tool call {call.get('id')}: {function.get('name')}({arguments})]"}


def _assistant_blocks(message: dict[str, Any], *, tools_as_text: bool) -> list[dict[str, Any]]:
    blocks = _reasoning_blocks(message) + _content_blocks(message.get("content"))
    calls = message.get("tool_calls") or []
    if not calls:
        return blocks + _cache_point(message) if blocks else blocks
    for call in calls:
        function = call.get("function") or {}
        if tools_as_text:
            blocks += [_call_text(call), *_cache_point(call)]
            continue
        blocks.append(
            {
                "toolUse": {
                    "toolUseId": call.get("id"),
                    "name": function.get("name"),
                    "input": _tool_arguments(function.get("arguments")),
                }
            }
        )
        blocks += _cache_point(call)
    return blocks + _cache_point(message)


def _tool_result_block(message: dict[str, Any], *, tools_as_text: bool) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):
        parts = [{"text": p.get("text", "")} for p in content if p.get("type") == "text"]
    else:
        parts = [{"text": "" if content is None else str(content)}]
    if tools_as_text:
        text = "".join(p["text"] for p in parts)
        return {"text": f"[tool result {message.get('tool_call_id')}: {text}]"}
    return {"toolResult": {"toolUseId": message.get("tool_call_id"), "content": parts}}


def _points_tidy(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A cache point needs content before it: one left leading (its tool result moved ahead
    of it) or doubled (a part's marker and its message's) is dropped."""
    return [
        b
        for i, b in enumerate(blocks)
        if "cachePoint" not in b or (i > 0 and "cachePoint" not in blocks[i - 1])
    ]


def _system_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    blocks: list[dict[str, Any]] = []
    if isinstance(content, list):
        for part in content:
            if part.get("type") == "text" and part.get("text"):
                blocks.append({"text": part["text"]})
                blocks += _cache_point(part)
    elif content:
        blocks.append({"text": str(content)})
    return blocks + _cache_point(message) if blocks else blocks


def messages_convert(
    messages: list[dict[str, Any]], *, tools_as_text: bool = False
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages → (system blocks, alternating Converse turns starting with a user turn);
    with `tools_as_text`, tool calls and results become text blocks (for a request that
    declares no tools, which Converse refuses with tool blocks in it)."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []

    for message in messages:
        if not isinstance(message, dict):
            raise _invalid("Each message must be an object.")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_system_blocks(message))
        elif role == "user":
            turn_append(turns, "user", _message_blocks(message))
        elif role == "assistant":
            blocks = _assistant_blocks(message, tools_as_text=tools_as_text)
            turn_append(turns, "assistant", blocks)
        elif role == "tool":
            result = _tool_result_block(message, tools_as_text=tools_as_text)
            turn_append(turns, "user", [result, *_cache_point(message)])
        else:
            raise _invalid(f"Message role {role!r} is not supported by Bedrock.")
    if not turns:
        raise _invalid("Bedrock needs at least one user or assistant message.")
    if turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": [{"text": "."}]})
    for turn in turns:
        if turn["role"] == "user":
            turn["content"].sort(key=lambda b: "toolResult" not in b)
        turn["content"] = _points_tidy(turn["content"])
    return _points_tidy(system), turns


def _tool_entries(tool: dict[str, Any]) -> list[dict[str, Any]]:
    function = tool.get("function")
    marked = tool if tool.get("cache_control") is not None else function
    return [_tool_spec(tool), *_cache_point(marked if isinstance(marked, dict) else {})]


def _tool_spec(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        raise _invalid("Only function tools are supported by Bedrock.", param="tools")
    function = tool["function"]
    if function.get("name") == JSON_TOOL_NAME:
        raise _invalid(f"The tool name {JSON_TOOL_NAME!r} is reserved.", param="tools")
    spec: dict[str, Any] = {"name": function.get("name")}
    if function.get("description"):
        spec["description"] = function["description"]
    schema = function.get("parameters") or {"type": "object", "properties": {}}
    spec["inputSchema"] = {"json": schema}
    return {"toolSpec": spec}


def _tool_choice(choice: Any) -> dict[str, Any] | None:
    if choice is None or choice == "auto":
        return {"auto": {}} if choice == "auto" else None
    if choice == "required":
        return {"any": {}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"tool": {"name": (choice.get("function") or {}).get("name")}}
    raise _invalid("Unsupported tool_choice.", param="tool_choice")


def _json_tool(response_format: dict[str, Any]) -> dict[str, Any] | None:
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        schema: dict[str, Any] = {"type": "object"}
        description = "Respond with a JSON object."
    elif kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") or {"type": "object"}
        if schema.get("type") != "object":
            raise _invalid(
                "Bedrock needs a json_schema whose root is an object.", param="response_format"
            )
        description = spec.get("description") or f"Respond with {spec.get('name', 'the')} JSON."
    else:
        raise _invalid(f"Unsupported response_format type {kind!r}.", param="response_format")
    return {
        "toolSpec": {
            "name": JSON_TOOL_NAME,
            "description": description,
            "inputSchema": {"json": schema},
        }
    }


def thinking_supported(model: str) -> bool:
    """Whether a Bedrock model id is a Claude model with extended thinking."""
    return THINKING_MODEL_RE.search(model) is not None


def _thinking(body: dict[str, Any], *, model: str) -> dict[str, Any] | None:
    if isinstance(body.get("thinking"), dict):
        return dict(body["thinking"])
    effort = body.get("reasoning_effort")
    if effort is None or effort == "none" or not thinking_supported(model):
        return None
    if effort not in REASONING_BUDGETS:
        raise _invalid(f"Unsupported reasoning_effort {effort!r}.", param="reasoning_effort")
    return {"type": "enabled", "budget_tokens": REASONING_BUDGETS[effort]}


def chat_request_to_converse(*, body: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    """An OpenAI chat completions request → a Converse (or ConverseStream) request body."""
    if body.get("n") not in (None, 1):
        raise _invalid("Bedrock returns one choice; n must be 1.", param="n")
    # tool_choice "none": no tool is declared, the only way Converse guarantees no call.
    declared = body.get("tools") if body.get("tool_choice") != "none" else None
    system, turns = messages_convert(body.get("messages") or [], tools_as_text=not declared)
    payload: dict[str, Any] = {"messages": turns}
    if system:
        payload["system"] = system
    thinking = _thinking(body, model=model_id(deployment))
    thinking_on = thinking is not None and thinking.get("type") != "disabled"
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if not max_tokens:
        max_tokens = deployment.params.get("max_tokens")
        budget = int((thinking or {}).get("budget_tokens") or 0)
        if thinking_on and int(max_tokens or 0) <= budget:
            max_tokens = budget + DEFAULT_MAX_TOKENS  # the budget must stay below maxTokens
    if max_tokens:
        config["maxTokens"] = int(max_tokens)
    if body.get("temperature") is not None:
        config["temperature"] = body["temperature"]
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if config:
        payload["inferenceConfig"] = config

    tools = [entry for t in declared or [] for entry in _tool_entries(t)]
    choice = _tool_choice(body.get("tool_choice")) if tools else None
    json_tool = _json_tool(body.get("response_format") or {})
    if json_tool is not None:
        # Forcing a tool is refused while thinking is enabled; the model then picks it itself.
        if not tools and not thinking_on:
            choice = {"tool": {"name": JSON_TOOL_NAME}}
        tools.append(json_tool)
    if body.get("cache_control") is not None and turns[-1]["content"]:
        if "cachePoint" not in turns[-1]["content"][-1]:
            turns[-1]["content"] += _cache_point(body)
    if tools:
        payload["toolConfig"] = {"tools": tools}
        if choice is not None:
            payload["toolConfig"]["toolChoice"] = choice
    extra = deployment.params.get("additional_model_request_fields")
    fields = dict(extra) if isinstance(extra, dict) else {}
    if thinking is not None:
        fields["thinking"] = thinking
    if fields:
        payload["additionalModelRequestFields"] = fields
    return payload


def usage_to_openai(usage: dict[str, Any]) -> dict[str, Any]:
    cache_read = int(usage.get("cacheReadInputTokens") or 0)
    cache_write = int(usage.get("cacheWriteInputTokens") or 0)
    prompt = int(usage.get("inputTokens") or 0) + cache_read + cache_write
    completion = int(usage.get("outputTokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": cache_read,
            "cache_creation_tokens": cache_write,
        },
    }


def finish_reason(stop_reason: str | None, *, tool_calls: bool) -> str:
    if stop_reason == "tool_use" and not tool_calls:
        return "stop"  # only the JSON-mode tool was called: its input is the answer
    return FINISH_REASONS.get(stop_reason or "", "stop")


def thinking_block(text: str, signature: str | None) -> dict[str, Any]:
    """A reasoning block as the Anthropic adapter returns it (`thinking_blocks`)."""
    return {"type": "thinking", "thinking": str(text), "signature": str(signature or "")}


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def converse_response_to_chat(
    response: dict[str, Any], *, model: str, request_id: str, created: int | None = None
) -> dict[str, Any]:
    """A Converse response → an OpenAI chat completion."""
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict[str, Any]] = []
    tool_calls: list[dict[str, Any]] = []
    message = (response.get("output") or {}).get("message") or {}
    for block in message.get("content") or []:
        if "text" in block:
            texts.append(str(block["text"]))
        elif "toolUse" in block:
            use = block["toolUse"]
            arguments = orjson.dumps(use.get("input") or {}).decode()
            if use.get("name") == JSON_TOOL_NAME:
                texts.append(arguments)
                continue
            tool_calls.append(
                {
                    "id": use.get("toolUseId"),
                    "type": "function",
                    "function": {"name": use.get("name"), "arguments": arguments},
                }
            )
        elif "reasoningContent" in block:
            content = block["reasoningContent"]
            if content.get("redactedContent"):
                data = content["redactedContent"]
                thinking_blocks.append({"type": "redacted_thinking", "data": data})
                continue
            text = content.get("reasoningText") or {}
            if text.get("text"):
                reasoning.append(str(text["text"]))
                thinking_blocks.append(thinking_block(text["text"], text.get("signature")))
    chat_message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        chat_message["tool_calls"] = tool_calls
    if reasoning:
        chat_message["reasoning_content"] = "".join(reasoning)
    if thinking_blocks:
        chat_message["thinking_blocks"] = thinking_blocks
    return {
        "id": completion_id(request_id),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": chat_message,
                "logprobs": None,
                "finish_reason": finish_reason(
                    response.get("stopReason"), tool_calls=bool(tool_calls)
                ),
            }
        ],
        "usage": usage_to_openai(response.get("usage") or {}),
    }


# -- embeddings (InvokeModel) ---------------------------------------------------------------


def embedding_family(model: str) -> str:
    """ "titan" or "cohere" for a Bedrock embedding model id (cross-region prefixes allowed)."""
    bare = model.rsplit("/", 1)[-1]
    if "amazon.titan-embed" in bare:
        return "titan"
    if "cohere.embed" in bare:
        return "cohere"
    raise InvalidRequestError(
        f"Bedrock embeddings support Titan and Cohere models, not {model!r}.", param="model"
    )


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    raw = body.get("input")
    inputs = raw if isinstance(raw, list) else [raw]
    if not inputs or not all(isinstance(item, str) and item for item in inputs):
        raise InvalidRequestError(
            "Bedrock embeddings take a string or a list of non-empty strings.", param="input"
        )
    return inputs


def titan_embed_body(
    *, text: str, body: dict[str, Any], deployment: Deployment, model: str
) -> dict[str, Any]:
    payload: dict[str, Any] = {"inputText": text}
    if "titan-embed-text-v1" not in model:  # v1 takes the text alone
        dimensions = body.get("dimensions") or deployment.params.get("dimensions")
        if dimensions:
            payload["dimensions"] = int(dimensions)
        if deployment.params.get("normalize") is not None:
            payload["normalize"] = bool(deployment.params["normalize"])
    return payload


def cohere_embed_body(
    *, texts: list[str], body: dict[str, Any], deployment: Deployment
) -> dict[str, Any]:
    input_type = body.get("input_type") or deployment.params.get("input_type")
    input_type = input_type or "search_document"
    if input_type not in COHERE_INPUT_TYPES:
        raise InvalidRequestError(
            f"input_type must be one of {sorted(COHERE_INPUT_TYPES)}.", param="input_type"
        )
    payload: dict[str, Any] = {"texts": texts, "input_type": input_type}
    if deployment.params.get("truncate"):
        payload["truncate"] = deployment.params["truncate"]
    return payload


def embedding_encode(vector: list[float], *, encoding_format: str | None) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


def embeddings_to_openai(
    vectors: list[list[float]], *, model: str, tokens: int, encoding_format: str | None
) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {
                "object": "embedding",
                "index": index,
                "embedding": embedding_encode(vector, encoding_format=encoding_format),
            }
            for index, vector in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
