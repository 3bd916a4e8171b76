"""The mock's answers to tool and structured-output requests, so tool flows run offline.

A chat request with function `tools` gets one tool call when `tool_choice` allows it: the named
function, or with `required` the first tool, or with `auto` (the default) the first tool unless
the last message is a tool result (then the mock answers in text, so an agent loop ends). The
arguments are the JSON the tool's `parameters` schema describes, filled deterministically (strings
with the last user text). `response_format` `json_object` or `json_schema` makes the reply JSON
of that shape (`{"reply": ...}` for `json_object`).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

# Deeper schemas are answered with null: a request's schema nesting is bounded elsewhere, this
# keeps the mock's walk bounded too.
_MAX_DEPTH = 16


def schema_example(schema: Any, *, text: str, depth: int = 0) -> Any:
    """A value of the JSON schema `schema`, the same for the same inputs."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return schema_example(options[0], text=text, depth=depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if isinstance(schema.get("properties"), dict) else "string"
    if kind == "object":
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {
            str(name): schema_example(sub, text=text, depth=depth + 1)
            for name, sub in properties.items()
        }
    if kind == "array":
        most = schema.get("maxItems")
        count = max(1, int(schema.get("minItems") or 0))
        if isinstance(most, int):
            count = min(count, most)
        return [schema_example(schema.get("items"), text=text, depth=depth + 1)] * count
    if kind in ("integer", "number"):
        low = schema.get("minimum")
        value = low if isinstance(low, int | float) and not isinstance(low, bool) else 1
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return text


def _function_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [
        tool["function"]
        for tool in tools
        if isinstance(tool, dict)
        and tool.get("type", "function") == "function"
        and isinstance(tool.get("function"), dict)
        and isinstance(tool["function"].get("name"), str)
    ]


def tool_call_choose(body: dict[str, Any], *, text: str) -> dict[str, Any] | None:
    """The tool call the mock makes for this chat request, or None for a text answer."""
    functions = _function_tools(body)
    if not functions:
        return None
    choice = body.get("tool_choice", "auto")
    chosen: dict[str, Any] | None
    if choice == "none":
        return None
    if isinstance(choice, dict):
        wanted = (choice.get("function") or {}).get("name")
        chosen = next((f for f in functions if f["name"] == wanted), None)
    elif choice == "required":
        chosen = functions[0]
    else:
        messages = body.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
        chosen = None if last.get("role") == "tool" else functions[0]
    if chosen is None:
        return None
    arguments = orjson.dumps(
        schema_example(chosen.get("parameters") or {"type": "object"}, text=text)
    ).decode()
    digest = hashlib.sha256(f"{chosen['name']}:{arguments}".encode()).hexdigest()[:24]
    return {
        "id": f"call_mock{digest}",
        "type": "function",
        "function": {"name": chosen["name"], "arguments": arguments},
    }


def structured_reply(body: dict[str, Any], *, text: str, reply: str) -> str | None:
    """The JSON text `response_format` asks for, or None when it asks for none: `json_object`
    wraps the mock's usual `reply`; a schema's strings take the last user `text`."""
    response_format = body.get("response_format")
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object":
        return orjson.dumps({"reply": reply}).decode()
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return orjson.dumps(schema_example(schema or {"type": "object"}, text=text)).decode()
    return None
