"""The Responses API as chat completions: the request checked and translated, the answer built.

Pure functions, no I/O. `request_check` reads a `POST /v1/responses` body (OpenAI's shapes, 400s
naming the parameter), `chat_body_build` makes the chat request that serves it (instructions as
the first system message, the items inherited through `previous_response_id`, then the input
items; Responses' flat function tools as chat's nested ones), and `response_build` turns the chat
answer into the Response object.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.body import stored_metadata_check
from gateway.errors import InvalidRequestError
from gateway.responses_api.file_search import CHAT_FUNCTION, TOOL_NAME, file_search_runner

# The input item types Ogem translates, and the content parts of a message.
ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning", "file_search_call")
PART_TYPES = ("input_text", "input_image", "input_file", "output_text", "refusal")
ROLES = ("user", "assistant", "system", "developer")
TOOL_CHOICE_MODES = ("auto", "none", "required")
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
# Tools the Responses API hosts. Ogem serves `file_search` from its vector stores (file_search.py,
# once the vector_stores app registers its search); the others are refused on a model Ogem serves
# over chat completions.
HOSTED_TOOLS = (
    "file_search",
    "web_search",
    "web_search_preview",
    "computer_use_preview",
    "code_interpreter",
    "image_generation",
    "mcp",
    "local_shell",
    "custom",
)
_MISSING = "missing_required_parameter"
_ID_PREFIX = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
    "file_search_call": "fs",
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass(slots=True)
class ResponsesRequest:
    """A checked `POST /v1/responses` body: the fields Ogem reads, the rest as it came."""

    body: dict[str, Any]
    model: str
    input_items: list[dict[str, Any]]
    instructions: str | None = None
    previous_response_id: str | None = None
    store: bool = True
    background: bool = False
    stream: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})
    reasoning: dict[str, Any] | None = None
    max_output_tokens: int | None = None


def _invalid(message: str, param: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code=code)


def _optional(body: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = body.get(name)
    if value is None:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise _invalid(f"`{name}` must be {what}.", name, "invalid_type")
    return value


def model_check(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid("You must provide a model parameter.", "model", _MISSING)
    return model


def request_check(body: dict[str, Any], *, passthrough: bool = False) -> ResponsesRequest:
    """The body's fields as OpenAI types them; a wrong one is a 400 naming it. Passed through,
    only what Ogem itself reads is checked (the upstream judges the rest: its item types, its
    hosted tools), and `input_items` stays empty."""
    model = model_check(body)
    if passthrough:
        return _passthrough_check(body, model)
    if body.get("input") is None:
        raise _invalid("Missing required parameter: `input`.", "input", _MISSING)
    items = input_items_check(body["input"])
    instructions = _optional(body, "instructions", str, "a string")
    previous = _optional(body, "previous_response_id", str, "a string")
    store = _optional(body, "store", bool, "a boolean")
    background = _optional(body, "background", bool, "a boolean") or False
    stream = _optional(body, "stream", bool, "a boolean") or False
    max_output = _optional(body, "max_output_tokens", int, "an integer")
    if max_output is not None and max_output < 1:
        raise _invalid("`max_output_tokens` must be at least 1.", "max_output_tokens")
    for name in ("temperature", "top_p"):
        _optional(body, name, (int, float), "a number")
    _optional(body, "parallel_tool_calls", bool, "a boolean")
    _optional(body, "user", str, "a string")
    if background and store is False:
        raise _invalid("Background responses must be stored: `store` cannot be false.", "store")
    request = ResponsesRequest(
        body=body,
        model=model,
        input_items=items,
        instructions=instructions,
        previous_response_id=previous,
        store=store is not False,
        background=background,
        stream=stream,
        metadata=dict(stored_metadata_check(body.get("metadata"))),
        tools=_tools_check(body.get("tools")),
        tool_choice=_tool_choice_check(body.get("tool_choice")),
        max_output_tokens=max_output,
    )
    text = _optional(body, "text", dict, "an object")
    if text and text.get("format") is not None:
        request.text_format = _format_check(text["format"])
    reasoning = _optional(body, "reasoning", dict, "an object")
    if reasoning is not None:
        effort = reasoning.get("effort")
        if effort is not None and effort not in REASONING_EFFORTS:
            raise _invalid(
                f"`reasoning.effort` must be one of {', '.join(REASONING_EFFORTS)}.",
                "reasoning.effort",
            )
        request.reasoning = reasoning
    return request


def _passthrough_check(body: dict[str, Any], model: str) -> ResponsesRequest:
    store = _optional(body, "store", bool, "a boolean")
    return ResponsesRequest(
        body=body,
        model=model,
        input_items=[],
        previous_response_id=_optional(body, "previous_response_id", str, "a string"),
        store=store is not False,
        background=_optional(body, "background", bool, "a boolean") or False,
        stream=_optional(body, "stream", bool, "a boolean") or False,
    )


def input_items_check(value: Any) -> list[dict[str, Any]]:
    """`input` as a list of items with ids: a string is one user message."""
    if isinstance(value, str):
        return [_message_item("user", [{"type": "input_text", "text": value}])]
    if not isinstance(value, list) or not value:
        raise _invalid("`input` must be a string or a non-empty array of items.", "input")
    return [_item_check(item, index) for index, item in enumerate(value)]


def _message_item(
    role: str, content: list[dict[str, Any]], item_id: str | None = None
) -> dict[str, Any]:
    return {
        "id": item_id or new_id("msg"),
        "type": "message",
        "role": role,
        "status": "completed",
        "content": content,
    }


def _item_check(item: Any, index: int) -> dict[str, Any]:
    where = f"input[{index}]"
    if not isinstance(item, dict):
        raise _invalid(f"`{where}` must be an object.", where, "invalid_type")
    kind = item.get("type", "message" if "role" in item else None)
    if kind not in ITEM_TYPES:
        raise _invalid(
            f"Invalid value: {kind!r}. Supported values are: {', '.join(map(repr, ITEM_TYPES))}.",
            f"{where}.type",
        )
    item_id = item.get("id")
    if item_id is not None and not isinstance(item_id, str):
        raise _invalid(f"`{where}.id` must be a string.", f"{where}.id", "invalid_type")
    if kind == "message":
        role = item.get("role")
        if role not in ROLES:
            raise _invalid(f"`{where}.role` must be one of {', '.join(ROLES)}.", f"{where}.role")
        return _message_item(role, _content_check(item.get("content"), role, where), item_id)
    checked = {**item, "type": kind, "id": item_id or new_id(_ID_PREFIX[kind])}
    if kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            if not isinstance(item.get(name), str):
                raise _invalid(
                    f"`{where}.{name}` must be a string.", f"{where}.{name}", "invalid_type"
                )
        checked.setdefault("status", "completed")
    elif kind == "function_call_output":
        if not isinstance(item.get("call_id"), str):
            raise _invalid(f"`{where}.call_id` must be a string.", f"{where}.call_id")
        output = item.get("output")
        if not isinstance(output, str):
            _parts_check(output, f"{where}.output", allowed=("input_text",))
        checked.setdefault("status", "completed")
    return checked


def _content_check(content: Any, role: str, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        part = "output_text" if role == "assistant" else "input_text"
        text: dict[str, Any] = {"type": part, "text": content}
        if part == "output_text":
            text["annotations"] = []
        return [text]
    return _parts_check(content, f"{where}.content", allowed=PART_TYPES)


def _parts_check(parts: Any, where: str, *, allowed: tuple[str, ...]) -> list[dict[str, Any]]:
    if not isinstance(parts, list):
        raise _invalid(f"`{where}` must be a string or an array of parts.", where, "invalid_type")
    for index, part in enumerate(parts):
        at = f"{where}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in allowed:
            raise _invalid(
                f"Invalid value: {kind!r}. Supported values are: {', '.join(map(repr, allowed))}.",
                f"{at}.type",
            )
        if kind in ("input_text", "output_text") and not isinstance(part.get("text"), str):
            raise _invalid(f"`{at}.text` must be a string.", f"{at}.text", "invalid_type")
        if kind == "refusal" and not isinstance(part.get("refusal"), str):
            raise _invalid(f"`{at}.refusal` must be a string.", f"{at}.refusal", "invalid_type")
        if kind == "input_image" and not isinstance(part.get("image_url"), str):
            raise _invalid(
                f"`{at}.image_url` must be a URL or a data URL (file_id images are not served "
                "on this model).",
                f"{at}.image_url",
            )
        if kind == "input_file" and not any(
            isinstance(part.get(name), str) for name in ("file_data", "file_id", "file_url")
        ):
            raise _invalid(f"`{at}` needs `file_data`, `file_id` or `file_url`.", at, _MISSING)
    return parts


def _tools_check(tools: Any) -> list[dict[str, Any]]:
    if tools is None:
        return []
    if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
        raise _invalid("`tools` must be an array of objects.", "tools", "invalid_type")
    for index, tool in enumerate(tools):
        kind = tool.get("type")
        if kind == "function":
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                raise _invalid(
                    f"`tools[{index}].name` must be a non-empty string.", f"tools[{index}].name"
                )
            parameters = tool.get("parameters")
            if parameters is not None and not isinstance(parameters, dict):
                raise _invalid(
                    f"`tools[{index}].parameters` must be an object.",
                    f"tools[{index}].parameters",
                    "invalid_type",
                )
        elif kind == TOOL_NAME and file_search_runner() is not None:
            _file_search_check(tool, index)
        elif kind in HOSTED_TOOLS:
            raise _invalid(
                f"The `{kind}` tool is not available on this model through Ogem; function "
                "tools are.",
                f"tools[{index}].type",
                "unsupported_tool",
            )
        else:
            raise _invalid(f"Invalid value: {kind!r} is not a tool type.", f"tools[{index}].type")
    return tools


def _file_search_check(tool: dict[str, Any], index: int) -> None:
    where = f"tools[{index}]"
    ids = tool.get("vector_store_ids")
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, str) and i and "\x00" not in i for i in ids)
    ):
        raise _invalid(
            f"`{where}.vector_store_ids` must be a non-empty array of vector store ids.",
            f"{where}.vector_store_ids",
            _MISSING if ids is None else "invalid_type",
        )
    count = tool.get("max_num_results")
    if count is not None and (
        isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 50
    ):
        raise _invalid(
            f"`{where}.max_num_results` must be an integer from 1 to 50.",
            f"{where}.max_num_results",
        )
    ranking = tool.get("ranking_options")
    if ranking is not None:
        threshold = ranking.get("score_threshold", 0) if isinstance(ranking, dict) else None
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0 <= threshold <= 1
        ):
            raise _invalid(
                f"`{where}.ranking_options.score_threshold` must be a number from 0 to 1.",
                f"{where}.ranking_options.score_threshold",
            )


def file_search_tool(request: ResponsesRequest) -> dict[str, Any] | None:
    """The request's `file_search` tool, if it has one (checked)."""
    for tool in request.tools:
        if tool.get("type") == TOOL_NAME:
            return tool
    return None


def _tool_choice_check(choice: Any) -> Any:
    if choice is None:
        return "auto"
    if isinstance(choice, str):
        if choice not in TOOL_CHOICE_MODES:
            raise _invalid(
                f"`tool_choice` must be one of {', '.join(TOOL_CHOICE_MODES)} or an object.",
                "tool_choice",
            )
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        if not isinstance(choice.get("name"), str):
            raise _invalid("`tool_choice.name` must be a string.", "tool_choice.name")
        return choice
    if isinstance(choice, dict) and choice.get("type") == TOOL_NAME:
        return choice
    raise _invalid(
        '`tool_choice` must be auto, none, required or {"type": "function", "name": ...}.',
        "tool_choice",
    )


def _format_check(text_format: Any) -> dict[str, Any]:
    kind = text_format.get("type") if isinstance(text_format, dict) else None
    if kind in ("text", "json_object"):
        return text_format
    if kind == "json_schema":
        if not isinstance(text_format.get("schema"), dict):
            raise _invalid("`text.format.schema` must be an object.", "text.format.schema")
        if not isinstance(text_format.get("name"), str):
            raise _invalid("`text.format.name` must be a string.", "text.format.name")
        return text_format
    raise _invalid(
        "`text.format.type` must be text, json_object or json_schema.", "text.format.type"
    )


# ---- to chat completions ------------------------------------------------------------------------


def chat_body_build(
    request: ResponsesRequest, *, history: list[dict[str, Any]], stream: bool
) -> dict[str, Any]:
    """The chat completion request that serves `request` after the inherited `history`."""
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    thinking: dict[str, Any] | None = None
    for item in (*history, *request.input_items):
        if item["type"] == "reasoning":
            thinking = _thinking_for_chat(item)
            continue
        _message_add(messages, item)
        if thinking and messages[-1]["role"] == "assistant":
            messages[-1].update(thinking)  # the model's signed thinking goes back with its turn
            thinking = None
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    source = request.body
    # mock_response: the mock provider's scripted answer or failure (dropped for any other).
    for name in ("temperature", "top_p", "parallel_tool_calls", "user", "mock_response"):
        if source.get(name) is not None:
            body[name] = source[name]
    if request.max_output_tokens is not None:
        body["max_completion_tokens"] = request.max_output_tokens
    if request.tools:
        body["tools"] = [_chat_tool(tool) for tool in request.tools]
        choice = request.tool_choice
        body["tool_choice"] = (
            choice
            if isinstance(choice, str)
            else {"type": "function", "function": {"name": choice.get("name", TOOL_NAME)}}
        )
    text_format = request.text_format
    if text_format["type"] == "json_object":
        body["response_format"] = {"type": "json_object"}
    elif text_format["type"] == "json_schema":
        schema = {
            name: text_format[name]
            for name in ("name", "schema", "strict", "description")
            if text_format.get(name) is not None
        }
        body["response_format"] = {"type": "json_schema", "json_schema": schema}
    if request.reasoning and request.reasoning.get("effort"):
        body["reasoning_effort"] = request.reasoning["effort"]
    return body


def _chat_tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") == TOOL_NAME:  # the hosted tool, as a function the model may call
        return {"type": "function", "function": CHAT_FUNCTION}
    function = {
        name: tool[name]
        for name in ("name", "description", "parameters", "strict")
        if tool.get(name) is not None
    }
    return {"type": "function", "function": function}


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(
        part.get("text") or part.get("refusal") or ""
        for part in parts
        if part.get("type") in ("input_text", "output_text", "refusal")
    )


def _message_add(messages: list[dict[str, Any]], item: dict[str, Any]) -> None:
    kind = item["type"]
    if kind == "message":
        role, parts = item["role"], item["content"]
        if role == "assistant" or all(
            part["type"] in ("input_text", "output_text", "refusal") for part in parts
        ):
            messages.append({"role": role, "content": _text(parts)})
        else:
            messages.append({"role": role, "content": [_chat_part(part) for part in parts]})
    elif kind == "function_call":
        call = {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
            if not last.get("content"):
                last["content"] = None
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item["output"]
        messages.append(
            {
                "role": "tool",
                "tool_call_id": item["call_id"],
                "content": output if isinstance(output, str) else _text(output),
            }
        )


def _thinking_for_chat(item: dict[str, Any]) -> dict[str, Any] | None:
    """A reasoning item Ogem made from a model's thinking blocks (Anthropic's, with their
    signatures, kept in `encrypted_content`) as the chat fields that send them back; None for
    any other reasoning item, whose text no provider takes as input."""
    try:
        blocks = orjson.loads(item.get("encrypted_content") or "null")
    except orjson.JSONDecodeError:
        return None
    if not isinstance(blocks, list) or not all(isinstance(block, dict) for block in blocks):
        return None
    texts = [
        part.get("text") or ""
        for part in item.get("content") or []
        if isinstance(part, dict) and part.get("type") == "reasoning_text"
    ]
    return {"reasoning_content": "".join(texts), "thinking_blocks": blocks}


def _chat_part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part["type"]
    if kind == "input_image":
        image = {"url": part["image_url"]}
        if part.get("detail"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        file = {
            name: part[name]
            for name in ("file_data", "file_id", "filename")
            if isinstance(part.get(name), str)
        }
        if "file_data" not in file and isinstance(part.get("file_url"), str):
            file["file_data"] = part["file_url"]
        return {"type": "file", "file": file}
    return {"type": "text", "text": part.get("text") or part.get("refusal") or ""}


# ---- from chat completions ----------------------------------------------------------------------


def response_shell(
    request: ResponsesRequest, *, response_id: str, created_at: int, status: str
) -> dict[str, Any]:
    """The Response object before any output: what `response.created` carries."""
    body = request.body
    reasoning = request.reasoning or {}
    shell = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": request.background,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.instructions,
        "max_output_tokens": request.max_output_tokens,
        "model": request.model,
        "output": [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": request.previous_response_id,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": request.store,
        "temperature": body.get("temperature", 1.0),
        "text": {"format": request.text_format},
        "tool_choice": request.tool_choice,
        "tools": request.tools,
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation") or "disabled",
        "usage": None,
        "metadata": request.metadata,
    }
    if isinstance(body.get("user"), str):  # OpenAI's schema has it a string, never null
        shell["user"] = body["user"]
    return shell


def usage_from_chat(usage: Any) -> dict[str, Any]:
    """A chat usage block in the Responses API's terms."""
    usage = usage if isinstance(usage, dict) else {}
    prompt = usage.get("prompt_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    prompt_details = usage.get("prompt_tokens_details") or {}
    cached = prompt_details.get("cached_tokens") or 0
    written = prompt_details.get("cache_creation_tokens") or 0  # Ogem's name for cache writes
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": written},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": usage.get("total_tokens") or prompt + completion,
    }


# A chat finish reason that cut the answer short, as the Response's incomplete_details.reason.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}
# The output items an incomplete response's last one is marked `incomplete` in.
CUT_SHORT_TYPES = frozenset({"message", "function_call"})


def response_finish(
    shell: dict[str, Any],
    *,
    output: list[dict[str, Any]],
    usage: dict[str, Any],
    finish_reason: str | None,
    model: str | None = None,
) -> dict[str, Any]:
    """The finished Response object: completed, or incomplete when the answer was cut short."""
    reason = INCOMPLETE_REASONS.get(finish_reason or "")
    finished = {**shell, "output": output, "usage": usage}
    if model:
        finished["model"] = model
    if reason is None:
        finished["status"] = "completed"
        finished["completed_at"] = int(time.time())
    else:
        finished["status"] = "incomplete"
        finished["incomplete_details"] = {"reason": reason}
        if output and output[-1].get("type") in CUT_SHORT_TYPES:
            # The item the model was writing when it stopped (OpenAI's shape).
            finished["output"] = [*output[:-1], {**output[-1], "status": "incomplete"}]
    return finished


def output_text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def reasoning_item(item_id: str, text: str, blocks: Any = None) -> dict[str, Any]:
    item = {
        "id": item_id,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": "completed",
    }
    if isinstance(blocks, list) and blocks:
        # The provider's own thinking blocks (signed), sent back when the conversation goes on.
        item["encrypted_content"] = orjson.dumps(blocks).decode()
    return item


def function_call_item(
    item_id: str, *, call_id: str, name: str, arguments: str, status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_from_completion(completion: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """A chat completion's first choice as Response output items, and its finish reason."""
    choices = completion.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    output: list[dict[str, Any]] = []
    if message.get("reasoning_content"):
        output.append(
            reasoning_item(
                new_id("rs"), str(message["reasoning_content"]), message.get("thinking_blocks")
            )
        )
    calls = message.get("tool_calls") or []
    content: list[dict[str, Any]] = []
    if isinstance(message.get("content"), str) and (message["content"] or not calls):
        content.append(output_text_part(message["content"]))
    if message.get("refusal"):
        content.append({"type": "refusal", "refusal": str(message["refusal"])})
    if content or not calls:
        output.append(_message_item("assistant", content or [output_text_part("")]))
    for call in calls:
        function = call.get("function") or {}
        output.append(
            function_call_item(
                new_id("fc"),
                call_id=str(call.get("id") or new_id("call")),
                name=str(function.get("name") or ""),
                arguments=str(function.get("arguments") or ""),
            )
        )
    return output, choice.get("finish_reason")
