"""OpenAI chat completions and embeddings ⇄ Gemini's `generateContent` and `embedContent`.

Shared by Google AI Studio (`gemini/`) and Gemini on Vertex AI (`vertex_ai/`); pure functions.

Request side (`chat_request_to_gemini`): system and developer messages become
`systemInstruction`; user turns are `user` contents and assistant turns `model` contents
(consecutive turns of one role merged); tool calls become `functionCall` parts and tool results
`functionResponse` parts (named after the call they answer, as Gemini matches by name) in a
`user` turn; images and files are `inlineData` (data URLs; http(s) URLs were downloaded by the
adapter through the SSRF guard beforehand) or `fileData` (`gs://` and Gemini Files API URIs).
Tools are `functionDeclarations` whose JSON Schema is converted to Gemini's subset
(`schema_to_gemini`); `response_format` is `responseMimeType` and `responseSchema`. Safety
settings are the deployment's `params.safety_settings`, or the request's `safety_settings`;
none are added otherwise. OpenAI-only parameters with no Gemini equivalent are dropped.

Gemini may attach a `thoughtSignature` to a function call that must come back with it on the next
turn; it travels inside the OpenAI tool call id (`<id>__thought__<signature>`).

Usage: `prompt_tokens = promptTokenCount + toolUsePromptTokenCount` (cached tokens are part of
the prompt count, as in OpenAI's), `completion_tokens = candidatesTokenCount +
thoughtsTokenCount`, `cached_tokens = cachedContentTokenCount`, `reasoning_tokens =
thoughtsTokenCount`.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
from typing import Any

import orjson

from providers.base import Deployment
from providers.errors import InvalidRequestError
from providers.turns import turn_append

THOUGHT_SEPARATOR = "__thought__"
# reasoning_effort → thinkingConfig.thinkingBudget.
THINKING_BUDGETS: dict[str, int] = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 2048,
    "high": 4096,
}
FINISH_REASONS: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}
# JSON Schema keywords Gemini's Schema object understands; every other keyword is dropped.
SCHEMA_KEYWORDS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
# The `format` values Gemini accepts; others (email, uri, ...) are dropped.
SCHEMA_FORMATS = frozenset({"enum", "date-time", "float", "double", "int32", "int64"})
EXTENSION_MIME_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "heic": "image/heic",
    "pdf": "application/pdf",
    "txt": "text/plain",
    "mp3": "audio/mp3",
    "wav": "audio/wav",
    "mp4": "video/mp4",
}
AUDIO_FORMATS: dict[str, str] = {"wav": "audio/wav", "mp3": "audio/mp3"}


def _invalid(message: str, *, param: str | None = "messages") -> InvalidRequestError:
    return InvalidRequestError(message, param=param)


# -- JSON Schema → Gemini Schema ---------------------------------------------------------------


def _ref_resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    if not ref.startswith("#/"):
        raise _invalid(f"Only local $ref values are supported ({ref!r}).", param="tools")
    node: Any = root
    for key in ref[2:].split("/"):
        node = (
            node.get(key.replace("~1", "/").replace("~0", "~")) if isinstance(node, dict) else None
        )
    if not isinstance(node, dict):
        raise _invalid(f"$ref {ref!r} does not resolve.", param="tools")
    return node


def schema_to_gemini(
    schema: Any, *, root: dict[str, Any] | None = None, depth: int = 0
) -> dict[str, Any]:
    """A JSON Schema → Gemini's Schema subset: `$ref`s inlined, `const` as a one-value enum,
    enums as strings, `type: [T, "null"]` and null variants as `nullable`, `oneOf` as `anyOf`,
    unsupported keywords (`additionalProperties`, `$schema`, `$defs`, `strict`, ...) dropped."""
    if not isinstance(schema, dict):
        return {}
    if depth > 32:
        raise _invalid("The schema nests too deeply (or its $refs are recursive).", param="tools")
    root = schema if root is None else root
    if "$ref" in schema:
        resolved = _ref_resolve(str(schema["$ref"]), root)
        merged = {**resolved, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema_to_gemini(merged, root=root, depth=depth + 1)
    out: dict[str, Any] = {}
    kind = schema.get("type")
    if isinstance(kind, list):
        types = [t for t in kind if t != "null"]
        if len(types) < len(kind):
            out["nullable"] = True
        if len(types) == 1:
            out["type"] = types[0]
        elif types:
            out["anyOf"] = [{"type": t} for t in types]
    elif kind is not None:
        out["type"] = kind
    enum = [schema["const"]] if "const" in schema else schema.get("enum")
    if isinstance(enum, list):
        # Gemini's enums are strings only.
        out["type"] = "string"
        out["enum"] = [str(v) for v in enum]
    for key, value in schema.items():
        if key not in SCHEMA_KEYWORDS or key in ("type", "anyOf", "enum") or key in out:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {
                name: schema_to_gemini(sub, root=root, depth=depth + 1)
                for name, sub in value.items()
            }
        elif key == "items":
            out[key] = schema_to_gemini(value, root=root, depth=depth + 1)
        elif key == "format":
            if value in SCHEMA_FORMATS:
                out[key] = value
        else:
            out[key] = value
    variants = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(variants, list):
        converted = []
        for variant in variants:
            if isinstance(variant, dict) and variant.get("type") == "null":
                out["nullable"] = True
            else:
                converted.append(schema_to_gemini(variant, root=root, depth=depth + 1))
        if len(converted) == 1 and "type" not in out:
            out.update(converted[0])
        elif converted:
            out["anyOf"] = converted
    return out


# -- messages → contents -------------------------------------------------------------------


def _data_url_split(url: str) -> tuple[str, str]:
    header, sep, data = url.partition(",")
    if not sep or not header.startswith("data:") or not header.endswith(";base64"):
        raise _invalid("Only base64 data URLs are supported for inline media.")
    return header[len("data:") : -len(";base64")], data


def _mime_from_uri(uri: str) -> str:
    extension = uri.split("?")[0].rsplit(".", 1)[-1].lower()
    return EXTENSION_MIME_TYPES.get(extension, "application/octet-stream")


def _uri_part(uri: str, mime_type: str | None = None) -> dict[str, Any]:
    if uri.startswith("data:"):
        media_type, data = _data_url_split(uri)
        return {"inlineData": {"mimeType": media_type, "data": data}}
    if uri.startswith(("gs://", "https://", "http://")):
        return {"fileData": {"mimeType": mime_type or _mime_from_uri(uri), "fileUri": uri}}
    raise _invalid("A media URL must be a data URL, a gs:// URI or an http(s) URL.")


def _file_part(part: dict[str, Any]) -> dict[str, Any]:
    file = part.get("file") or {}
    mime_type = file.get("format") or None
    if file.get("file_data"):
        return _uri_part(str(file["file_data"]))
    if file.get("file_id"):
        return _uri_part(str(file["file_id"]), mime_type)
    raise _invalid("A file part needs file_data or file_id.")


def _parts(content: Any) -> list[dict[str, Any]]:
    """OpenAI message content → Gemini parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise _invalid("Message content must be a string or a list of content parts.")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url", "") if isinstance(image, dict) else str(image or "")
            parts.append(_uri_part(url))
        elif kind == "file":
            parts.append(_file_part(part))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            mime_type = AUDIO_FORMATS.get(str(audio.get("format")), "audio/wav")
            parts.append({"inlineData": {"mimeType": mime_type, "data": audio.get("data", "")}})
        else:
            raise _invalid(f"Content part type {kind!r} is not supported by Gemini.")
    return parts


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _arguments(raw: Any) -> dict[str, Any]:
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


def tool_call_id(signature: str | None = None) -> str:
    call_id = f"call_{uuid.uuid4().hex[:24]}"
    return f"{call_id}{THOUGHT_SEPARATOR}{signature}" if signature else call_id


def _signature_of(call_id: str) -> str | None:
    _, sep, signature = call_id.partition(THOUGHT_SEPARATOR)
    return signature if sep and signature else None


def _function_response(message: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    call_id = str(message.get("tool_call_id") or "")
    name = message.get("name") or names.get(call_id)
    if not name:
        raise _invalid(f"The tool message {call_id!r} answers no earlier tool call.")
    text = _text_of(message.get("content"))
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:
        parsed = None
    # functionResponse.response must be an object: a JSON object passes as is, anything else
    # is wrapped the way Google's own SDK does.
    response = parsed if isinstance(parsed, dict) else {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def messages_to_contents(
    messages: list[dict[str, Any]],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """OpenAI messages → (systemInstruction or None, contents alternating user/model)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id → function name

    for message in messages:
        if not isinstance(message, dict):
            raise _invalid("Each message must be an object.")
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content")))
        elif role == "user":
            turn_append(contents, "user", _parts(message.get("content")), key="parts")
        elif role == "assistant":
            parts = _parts(message.get("content"))
            for call in message.get("tool_calls") or []:
                function = call.get("function") or {}
                call_id = str(call.get("id") or "")
                names[call_id] = str(function.get("name") or "")
                part: dict[str, Any] = {
                    "functionCall": {
                        "name": function.get("name"),
                        "args": _arguments(function.get("arguments")),
                    }
                }
                signature = _signature_of(call_id)
                if signature:
                    part["thoughtSignature"] = signature
                parts.append(part)
            turn_append(contents, "model", parts, key="parts")
        elif role in ("tool", "function"):
            turn_append(contents, "user", [_function_response(message, names)], key="parts")
        else:
            raise _invalid(f"Message role {role!r} is not supported by Gemini.")
    if not contents:
        raise _invalid("Gemini needs at least one user or assistant message.")
    return ({"parts": system} if system else None), contents


# -- tools, response format, generation config -------------------------------------------------


def _declaration(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        raise _invalid("Only function tools are supported by Gemini.", param="tools")
    function = tool["function"]
    declaration: dict[str, Any] = {"name": function.get("name")}
    if function.get("description"):
        declaration["description"] = function["description"]
    parameters = schema_to_gemini(function.get("parameters") or {})
    # Gemini refuses an OBJECT schema without properties: a function without parameters omits it.
    if parameters.get("properties"):
        declaration["parameters"] = parameters
    return declaration


def _tool_config(choice: Any) -> dict[str, Any] | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"functionCallingConfig": {"mode": "AUTO"}}
    if choice == "none":
        return {"functionCallingConfig": {"mode": "NONE"}}
    if choice == "required":
        return {"functionCallingConfig": {"mode": "ANY"}}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    raise _invalid("Unsupported tool_choice.", param="tool_choice")


def _response_format(response_format: dict[str, Any], config: dict[str, Any]) -> None:
    kind = response_format.get("type")
    if kind in (None, "text"):
        return
    if kind == "json_object":
        config["responseMimeType"] = "application/json"
        return
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        config["responseMimeType"] = "application/json"
        if spec.get("schema"):
            config["responseSchema"] = schema_to_gemini(spec["schema"])
        return
    raise _invalid(f"Unsupported response_format type {kind!r}.", param="response_format")


def _thinking_config(body: dict[str, Any]) -> dict[str, Any] | None:
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        budget = int(thinking.get("budget_tokens") or THINKING_BUDGETS["medium"])
        return {"thinkingBudget": budget, "includeThoughts": True}
    effort = body.get("reasoning_effort")
    if effort is None:
        return None
    if effort not in THINKING_BUDGETS:
        raise _invalid(f"Unsupported reasoning_effort {effort!r}.", param="reasoning_effort")
    budget = THINKING_BUDGETS[effort]
    return {"thinkingBudget": budget, "includeThoughts": budget > 0}


def chat_request_to_gemini(*, body: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    """An OpenAI chat completions request → a Gemini `GenerateContentRequest` body."""
    system, contents = messages_to_contents(body.get("messages") or [])
    payload: dict[str, Any] = {"contents": contents}
    if system is not None:
        payload["systemInstruction"] = system

    tools = [_declaration(t) for t in body.get("tools") or []]
    if tools:
        payload["tools"] = [{"functionDeclarations": tools}]
        tool_config = _tool_config(body.get("tool_choice"))
        if tool_config is not None:
            payload["toolConfig"] = tool_config

    safety = body.get("safety_settings") or deployment.params.get("safety_settings")
    if safety:
        payload["safetySettings"] = safety

    config: dict[str, Any] = {}
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is None and deployment.params.get("max_tokens"):
        max_tokens = int(deployment.params["max_tokens"])
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    for source, target in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
        ("seed", "seed"),
    ):
        if body.get(source) is not None:
            config[target] = body[source]
    if body.get("n") not in (None, 1):
        config["candidateCount"] = body["n"]
    _response_format(body.get("response_format") or {}, config)
    thinking = _thinking_config(body)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    if config:
        payload["generationConfig"] = config
    cached = body.get("cached_content") or deployment.params.get("cached_content")
    if cached:
        payload["cachedContent"] = cached
    return payload


# -- responses -------------------------------------------------------------------------------


def usage_to_openai(usage: dict[str, Any]) -> dict[str, Any]:
    prompt = int(usage.get("promptTokenCount") or 0) + int(
        usage.get("toolUsePromptTokenCount") or 0
    )
    thoughts = int(usage.get("thoughtsTokenCount") or 0)
    completion = int(usage.get("candidatesTokenCount") or 0) + thoughts
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(usage.get("cachedContentTokenCount") or 0)},
        "completion_tokens_details": {"reasoning_tokens": thoughts},
    }


def finish_reason(reason: str | None, *, tool_calls: bool) -> str | None:
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    if tool_calls and reason == "STOP":
        return "tool_calls"
    return FINISH_REASONS.get(reason, "stop")


def parts_split(parts: list[dict[str, Any]]) -> tuple[str, str, list[dict[str, Any]]]:
    """Gemini parts → (text, thought text, OpenAI tool calls without index)."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    for part in parts:
        if "functionCall" in part:
            call = part["functionCall"] or {}
            calls.append(
                {
                    "id": call.get("id") or tool_call_id(part.get("thoughtSignature")),
                    "type": "function",
                    "function": {
                        "name": call.get("name", ""),
                        "arguments": orjson.dumps(call.get("args") or {}).decode(),
                    },
                }
            )
        elif part.get("thought"):
            thoughts.append(str(part.get("text") or ""))
        elif "text" in part:
            texts.append(str(part["text"]))
    return "".join(texts), "".join(thoughts), calls


def completion_id(response: dict[str, Any]) -> str:
    response_id = response.get("responseId")
    return f"chatcmpl-{response_id}" if response_id else f"chatcmpl-{uuid.uuid4().hex}"


def gemini_response_to_chat(
    response: dict[str, Any], *, model: str, created: int | None = None
) -> dict[str, Any]:
    """A Gemini `GenerateContentResponse` → an OpenAI chat completion."""
    choices: list[dict[str, Any]] = []
    for position, candidate in enumerate(response.get("candidates") or []):
        text, thoughts, calls = parts_split((candidate.get("content") or {}).get("parts") or [])
        message: dict[str, Any] = {
            "role": "assistant",
            "content": text if text or not calls else None,
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
        if thoughts:
            message["reasoning_content"] = thoughts
        reason = finish_reason(candidate.get("finishReason"), tool_calls=bool(calls))
        choices.append(
            {
                "index": int(candidate.get("index", position)),
                "message": message,
                "logprobs": None,
                "finish_reason": reason or "stop",
            }
        )
    if not choices and (response.get("promptFeedback") or {}).get("blockReason"):
        # The prompt itself was blocked: no candidate, the answer is an empty filtered one.
        choices.append(
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "content_filter",
            }
        )
    return {
        "id": completion_id(response),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": response.get("modelVersion") or model,
        "choices": choices,
        "usage": usage_to_openai(response.get("usageMetadata") or {}),
    }


# -- embeddings ------------------------------------------------------------------------------


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise _invalid(
        "Gemini embeddings take a string or a list of strings (not token arrays).", param="input"
    )


def embedding_request(
    *, body: dict[str, Any], deployment: Deployment, text: str, with_model: bool
) -> dict[str, Any]:
    request: dict[str, Any] = {"content": {"parts": [{"text": text}]}}
    if with_model:
        request = {"model": f"models/{deployment.upstream_model}", **request}
    task_type = body.get("task_type") or deployment.params.get("task_type")
    if task_type:
        request["taskType"] = task_type
    if body.get("dimensions") is not None:
        request["outputDimensionality"] = body["dimensions"]
    return request


def embedding_encode(values: list[float], *, encoding_format: str | None) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
    return values


def embeddings_to_openai(
    vectors: list[list[float]], *, body: dict[str, Any], model: str, prompt_tokens: int
) -> dict[str, Any]:
    encoding_format = body.get("encoding_format")
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
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def tokens_estimate(texts: list[str]) -> int:
    """Gemini's embedding answers carry no token count: about four characters a token."""
    return sum(max(1, (len(text) + 3) // 4) for text in texts if text)
