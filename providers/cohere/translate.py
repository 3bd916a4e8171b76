"""OpenAI requests ⇄ Cohere's v2 API (chat, embed, rerank), as pure functions.

Chat: messages keep their roles (v2 takes system, user, assistant and tool turns as OpenAI does);
image parts pass through as `image_url` (Cohere fetches URLs itself); `top_p`/`stop`/`seed`
/penalties map to `p`/`stop_sequences`/...; `tool_choice` "required" and "none" become
`REQUIRED`/`NONE`, and a named tool (which v2 cannot force) sends only that tool with
`REQUIRED`. JSON mode is native (`response_format` json_object, with `json_schema`). Cohere-only
fields a client sends through `extra_body` (`documents`, `citation_options`, `safety_mode`,
`strict_tools`, `thinking`) are passed through. Citations are kept: the message carries Cohere's
`citations` list (an Ogem extension beside OpenAI's fields), and the tool plan comes back as
`reasoning_content`.

Reasoning: on Cohere's reasoning models (`command-a-reasoning-*`), `reasoning_effort` becomes
`thinking: {"type": "enabled", "token_budget": N}` with the Anthropic adapter's budgets ("none"
disables thinking); the model's `thinking` content blocks come back as `reasoning_content`. Other
Command models have no thinking: the field is not sent to them.

Usage: `prompt_tokens`/`completion_tokens` are `usage.tokens` (all tokens processed; else
`billed_units`), and `usage.cached_tokens` ("prompt tokens that hit the inference cache", a part
of the prompt) is `prompt_tokens_details.cached_tokens`.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

from providers.anthropic.translate import REASONING_BUDGETS
from providers.base import Deployment
from providers.errors import InvalidRequestError

PROVIDER = "cohere"
FINISH_REASONS: dict[str, str] = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "stop",
    "TIMEOUT": "stop",
}
PASSTHROUGH_FIELDS = ("documents", "citation_options", "safety_mode", "strict_tools", "thinking")
RENAMED_FIELDS = {
    "temperature": "temperature",
    "top_p": "p",
    "top_k": "k",
    "seed": "seed",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
    "logprobs": "logprobs",
}
INPUT_TYPES = frozenset({"search_document", "search_query", "classification", "clustering"})


def _invalid(message: str, *, param: str | None = "messages") -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


def _content(content: Any) -> Any:
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _invalid("Message content must be a string or a list of content parts.")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, dict) else str(image or "")
            converted: dict[str, Any] = {"url": url}
            if isinstance(image, dict) and image.get("detail"):
                converted["detail"] = image["detail"]
            parts.append({"type": "image_url", "image_url": converted})
        else:
            raise _invalid(f"Content part type {kind!r} is not supported by Cohere.")
    return parts


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role")
    if role == "developer":
        role = "system"
    if role in ("system", "user"):
        return {"role": role, "content": _content(message.get("content"))}
    if role == "assistant":
        converted: dict[str, Any] = {"role": "assistant"}
        if message.get("content"):
            converted["content"] = _content(message["content"])
        if message.get("reasoning_content") and message.get("tool_calls"):
            converted["tool_plan"] = message["reasoning_content"]
        if message.get("tool_calls"):
            converted["tool_calls"] = [
                {
                    "id": call.get("id"),
                    "type": "function",
                    "function": {
                        "name": (call.get("function") or {}).get("name"),
                        "arguments": (call.get("function") or {}).get("arguments") or "{}",
                    },
                }
                for call in message["tool_calls"]
            ]
        return converted
    if role == "tool":
        content = message.get("content")
        if isinstance(content, list):
            content = [{"type": "text", "text": p.get("text", "")} for p in content]
        return {"role": "tool", "tool_call_id": message.get("tool_call_id"), "content": content}
    raise _invalid(f"Message role {role!r} is not supported by Cohere.")


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    tools = body.get("tools") or []
    for tool in tools:
        if tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise _invalid("Only function tools are supported by Cohere.", param="tools")
    converted = [{"type": "function", "function": dict(t["function"])} for t in tools]
    choice = body.get("tool_choice")
    if choice in (None, "auto") or not converted:
        return converted, None
    if choice == "required":
        return converted, "REQUIRED"
    if choice == "none":
        return converted, "NONE"
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        named = [t for t in converted if t["function"].get("name") == name]
        if not named:
            raise _invalid(f"tool_choice names an unknown tool {name!r}.", param="tool_choice")
        return named, "REQUIRED"
    raise _invalid("Unsupported tool_choice.", param="tool_choice")


def _response_format(response_format: dict[str, Any]) -> dict[str, Any] | None:
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return {"type": "json_object", "json_schema": schema} if schema else {"type": "json_object"}
    raise _invalid(f"Unsupported response_format type {kind!r}.", param="response_format")


def thinking_supported(model: str) -> bool:
    """Whether a Cohere model reasons (`command-a-reasoning-08-2025` and its successors)."""
    return "reasoning" in model


def _thinking(body: dict[str, Any], *, model: str) -> dict[str, Any] | None:
    effort = body.get("reasoning_effort")
    if effort is None or not thinking_supported(model):
        return None
    if effort == "none":
        return {"type": "disabled"}
    if effort not in REASONING_BUDGETS:
        raise _invalid(f"Unsupported reasoning_effort {effort!r}.", param="reasoning_effort")
    return {"type": "enabled", "token_budget": REASONING_BUDGETS[effort]}


def chat_request_to_cohere(
    *, body: dict[str, Any], deployment: Deployment, stream: bool
) -> dict[str, Any]:
    if body.get("n") not in (None, 1):
        raise _invalid("Cohere returns one choice; n must be 1.", param="n")
    messages = body.get("messages") or []
    if not messages:
        raise _invalid("Cohere needs at least one message.")
    payload: dict[str, Any] = {
        "model": deployment.upstream_model,
        "messages": [_message(m) for m in messages],
    }
    tools, tool_choice = _tools(body)
    if tools:
        payload["tools"] = tools
    if tool_choice:
        payload["tool_choice"] = tool_choice
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    max_tokens = max_tokens or deployment.params.get("max_tokens")
    if max_tokens:
        payload["max_tokens"] = int(max_tokens)
    stop = body.get("stop")
    if stop:
        payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for name, upstream in RENAMED_FIELDS.items():
        if body.get(name) is not None:
            payload[upstream] = body[name]
    response_format = _response_format(body.get("response_format") or {})
    if response_format is not None:
        payload["response_format"] = response_format
    thinking = _thinking(body, model=deployment.upstream_model)
    if thinking is not None:
        payload["thinking"] = thinking
    for name in PASSTHROUGH_FIELDS:
        if body.get(name) is not None:
            payload[name] = body[name]
    if stream:
        payload["stream"] = True
    return payload


def usage_to_openai(usage: dict[str, Any]) -> dict[str, Any]:
    tokens = usage.get("tokens") or usage.get("billed_units") or {}
    prompt = int(tokens.get("input_tokens") or 0)
    completion = int(tokens.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(usage.get("cached_tokens") or 0)},
    }


def finish_reason(reason: str | None) -> str:
    return FINISH_REASONS.get(reason or "", "stop")


def completion_id(cohere_id: str) -> str:
    return f"chatcmpl-{cohere_id}"


def chat_response_to_openai(
    response: dict[str, Any], *, model: str, created: int | None = None
) -> dict[str, Any]:
    message = response.get("message") or {}
    content = message.get("content") or []
    text = "".join(p.get("text", "") for p in content if p.get("type") == "text")
    tool_calls = [
        {
            "id": call.get("id"),
            "type": "function",
            "function": {
                "name": (call.get("function") or {}).get("name"),
                "arguments": (call.get("function") or {}).get("arguments") or "{}",
            },
        }
        for call in message.get("tool_calls") or []
    ]
    converted: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not tool_calls else None,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        converted["tool_calls"] = tool_calls
    thoughts = [str(p.get("thinking") or "") for p in content if p.get("type") == "thinking"]
    if message.get("tool_plan") or any(thoughts):
        converted["reasoning_content"] = "".join(thoughts) + (message.get("tool_plan") or "")
    if message.get("citations"):
        converted["citations"] = message["citations"]
    return {
        "id": completion_id(str(response.get("id", ""))),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": converted,
                "logprobs": None,
                "finish_reason": finish_reason(response.get("finish_reason")),
            }
        ],
        "usage": usage_to_openai(response.get("usage") or {}),
    }


# -- embed and rerank -----------------------------------------------------------------------


def embed_request_to_cohere(*, body: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    raw = body.get("input")
    texts = raw if isinstance(raw, list) else [raw]
    if not texts or not all(isinstance(t, str) and t for t in texts):
        raise InvalidRequestError(
            "Cohere embeddings take a string or a list of non-empty strings.", param="input"
        )
    input_type = body.get("input_type") or deployment.params.get("input_type") or "search_document"
    if input_type not in INPUT_TYPES:
        raise InvalidRequestError(
            f"input_type must be one of {sorted(INPUT_TYPES)}.", param="input_type"
        )
    payload: dict[str, Any] = {
        "model": deployment.upstream_model,
        "texts": texts,
        "input_type": input_type,
        "embedding_types": ["float"],
    }
    dimensions = body.get("dimensions") or deployment.params.get("dimensions")
    if dimensions:
        payload["output_dimension"] = int(dimensions)
    truncate = body.get("truncate") or deployment.params.get("truncate")
    if truncate:
        payload["truncate"] = truncate
    return payload


def rerank_request_to_cohere(*, body: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    documents = []
    for document in body.get("documents") or []:
        text = document.get("text") if isinstance(document, dict) else document
        if not isinstance(text, str):
            raise InvalidRequestError(
                "Cohere reranks strings or objects with a `text` field.", param="documents"
            )
        documents.append(text)
    payload: dict[str, Any] = {
        "model": deployment.upstream_model,
        "query": body.get("query"),
        "documents": documents,
    }
    if body.get("top_n") is not None:
        payload["top_n"] = body["top_n"]
    if body.get("max_tokens_per_doc") is not None:
        payload["max_tokens_per_doc"] = body["max_tokens_per_doc"]
    return payload


def rerank_response_to_openai(
    response: dict[str, Any], *, body: dict[str, Any], model: str
) -> dict[str, Any]:
    """Cohere's answer in the shape /v1/rerank serves; v2 no longer returns the documents,
    so `return_documents` is honoured here from the request."""
    documents = body.get("documents") or []
    results = []
    for result in response.get("results") or []:
        item = {"index": result["index"], "relevance_score": result["relevance_score"]}
        if body.get("return_documents"):
            document = documents[result["index"]]
            item["document"] = {"text": document} if isinstance(document, str) else document
        results.append(item)
    return {
        "id": response.get("id", ""),
        "model": model,
        "results": results,
        "meta": response.get("meta") or {},
    }


def embedding_encode(vector: list[float], *, encoding_format: str | None) -> list[float] | str:
    """OpenAI's `encoding_format`: "base64" is little-endian float32 bytes, as OpenAI sends."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector
