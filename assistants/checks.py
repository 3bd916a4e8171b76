"""Checks of Assistants API request bodies, with OpenAI's error shapes (400 naming the param).

Each returns the value as Ogem keeps it. Tools are function and file_search tools:
code_interpreter needs a sandbox Ogem does not run, so it is refused rather than ignored.
"""

from __future__ import annotations

from typing import Any

from gateway.body import stored_metadata_check
from gateway.errors import InvalidRequestError

TOOLS_MAX = 128
INSTRUCTIONS_MAX = 256_000
NAME_MAX = 256
DESCRIPTION_MAX = 512
MESSAGE_MAX = 256_000
FILE_SEARCH_RESULTS_MAX = 50
FILE_SEARCH_RESULTS_DEFAULT = 20
VECTOR_STORES_MAX = 1
_ROLES = ("user", "assistant")


def unknown_check(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequestError(f"Unknown parameter: '{unknown[0]}'.", param=unknown[0])


def text_check(value: Any, *, param: str, limit: int, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InvalidRequestError(f"Missing required parameter: '{param}'.", param=param)
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidRequestError(f"Invalid type for '{param}': expected a string.", param=param)
    if len(value) > limit:
        raise InvalidRequestError(
            f"'{param}' is too long: at most {limit} characters.",
            param=param,
            code="string_above_max_length",
        )
    return value


def metadata_check(value: Any) -> dict[str, str]:
    return stored_metadata_check(value)


def number_check(value: Any, *, param: str, low: float, high: float) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise InvalidRequestError(
            f"Invalid '{param}': expected a number from {low:g} to {high:g}.",
            param=param,
            code="invalid_value",
        )
    return float(value)


def tokens_check(value: Any, *, param: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 256:
        # OpenAI's floor: a run needs room for at least a short answer.
        raise InvalidRequestError(
            f"Invalid '{param}': expected an integer of at least 256.",
            param=param,
            code="invalid_value",
        )
    return value


def tools_check(value: Any, *, param: str = "tools") -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequestError(f"Invalid type for '{param}': expected an array.", param=param)
    if len(value) > TOOLS_MAX:
        raise InvalidRequestError(
            f"'{param}' may hold at most {TOOLS_MAX} tools.",
            param=param,
            code="array_above_max_length",
        )
    tools: list[dict[str, Any]] = []
    names: set[str] = set()
    for index, tool in enumerate(value):
        where = f"{param}[{index}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            function = tool.get("function")
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str) or not name or len(name) > 64 or "\x00" in name:
                raise InvalidRequestError(
                    f"Missing or invalid '{where}.function.name'.", param=f"{where}.function.name"
                )
            if name in names or name == "file_search":
                raise InvalidRequestError(
                    f"Duplicate tool name '{name}' in '{param}'.", param=f"{where}.function.name"
                )
            names.add(name)
            parameters = function.get("parameters")
            if parameters is not None and not isinstance(parameters, dict):
                raise InvalidRequestError(
                    f"Invalid type for '{where}.function.parameters': expected an object.",
                    param=f"{where}.function.parameters",
                )
            kept = {"name": name, "parameters": parameters or {"type": "object", "properties": {}}}
            if isinstance(function.get("description"), str):
                kept["description"] = function["description"]
            if isinstance(function.get("strict"), bool):
                kept["strict"] = function["strict"]
            tools.append({"type": "function", "function": kept})
        elif kind == "file_search":
            tools.append({"type": "file_search", "file_search": _file_search_options(tool, where)})
        elif kind == "code_interpreter":
            raise InvalidRequestError(
                "The code_interpreter tool is not supported by this server; use function tools.",
                param=f"{where}.type",
                code="unsupported_value",
            )
        else:
            raise InvalidRequestError(
                f"Invalid value for '{where}.type': expected 'function' or 'file_search'.",
                param=f"{where}.type",
                code="invalid_value",
            )
    return tools


def _file_search_options(tool: dict[str, Any], where: str) -> dict[str, Any]:
    options = tool.get("file_search") or {}
    if not isinstance(options, dict):
        raise InvalidRequestError(
            f"Invalid type for '{where}.file_search'.", param=f"{where}.file_search"
        )
    results = options.get("max_num_results", FILE_SEARCH_RESULTS_DEFAULT)
    if isinstance(results, bool) or not isinstance(results, int):
        results = -1
    if not 1 <= results <= FILE_SEARCH_RESULTS_MAX:
        raise InvalidRequestError(
            f"Invalid '{where}.file_search.max_num_results': expected 1 to "
            f"{FILE_SEARCH_RESULTS_MAX}.",
            param=f"{where}.file_search.max_num_results",
            code="invalid_value",
        )
    ranking = options.get("ranking_options") or {}
    threshold = number_check(
        ranking.get("score_threshold", 0.0) if isinstance(ranking, dict) else -1,
        param=f"{where}.file_search.ranking_options.score_threshold",
        low=0,
        high=1,
    )
    ranker = ranking.get("ranker", "auto") if isinstance(ranking, dict) else "auto"
    return {
        "max_num_results": results,
        "ranking_options": {"ranker": ranker, "score_threshold": threshold or 0.0},
    }


def tool_resources_check(value: Any, *, param: str = "tool_resources") -> dict[str, Any]:
    """`{"file_search": {"vector_store_ids": [...]}}`: the vector stores a file_search reads."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequestError(f"Invalid type for '{param}': expected an object.", param=param)
    unknown_check_param(value, {"file_search", "code_interpreter"}, param)
    if value.get("code_interpreter"):
        raise InvalidRequestError(
            "code_interpreter resources are not supported by this server.",
            param=f"{param}.code_interpreter",
            code="unsupported_value",
        )
    search = value.get("file_search")
    if search is None:
        return {}
    if not isinstance(search, dict):
        raise InvalidRequestError(
            f"Invalid type for '{param}.file_search'.", param=f"{param}.file_search"
        )
    if search.get("vector_stores"):
        raise InvalidRequestError(
            "Creating vector stores inline is not supported; create one with "
            "POST /v1/vector_stores and pass its id in 'vector_store_ids'.",
            param=f"{param}.file_search.vector_stores",
            code="unsupported_value",
        )
    ids = search.get("vector_store_ids") or []
    if not isinstance(ids, list) or not all(
        isinstance(item, str) and item and "\x00" not in item for item in ids
    ):
        raise InvalidRequestError(
            f"Invalid '{param}.file_search.vector_store_ids': expected an array of ids.",
            param=f"{param}.file_search.vector_store_ids",
        )
    if len(ids) > VECTOR_STORES_MAX:
        raise InvalidRequestError(
            f"'{param}.file_search.vector_store_ids' may hold at most {VECTOR_STORES_MAX} id.",
            param=f"{param}.file_search.vector_store_ids",
            code="array_above_max_length",
        )
    return {"file_search": {"vector_store_ids": ids}}


def unknown_check_param(body: dict[str, Any], allowed: set[str], param: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidRequestError(
            f"Unknown parameter: '{param}.{unknown[0]}'.", param=f"{param}.{unknown[0]}"
        )


def response_format_check(value: Any) -> dict[str, Any] | None:
    """`auto` (kept as None), or `{"type": "text" | "json_object" | "json_schema", ...}`."""
    if value is None or value == "auto":
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema" and isinstance(value.get("json_schema"), dict):
        schema = value["json_schema"]
        if not isinstance(schema.get("name"), str):
            raise InvalidRequestError(
                "Missing required parameter: 'response_format.json_schema.name'.",
                param="response_format.json_schema.name",
            )
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequestError(
        "Invalid 'response_format': expected 'auto' or an object with type 'text', "
        "'json_object' or 'json_schema'.",
        param="response_format",
        code="invalid_value",
    )


def content_check(value: Any, *, param: str = "content") -> list[dict[str, Any]]:
    """A message's content as given (a string, or text / image_url / image_file parts) in
    OpenAI's stored shape."""
    if isinstance(value, str):
        text_check(value, param=param, limit=MESSAGE_MAX)
        return [{"type": "text", "text": {"value": value, "annotations": []}}]
    if not isinstance(value, list) or not value:
        raise InvalidRequestError(
            f"Invalid '{param}': expected a string or a non-empty array of content parts.",
            param=param,
        )
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(value):
        where = f"{param}[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = text_check(
                part.get("text"), param=f"{where}.text", limit=MESSAGE_MAX, required=True
            )
            parts.append({"type": "text", "text": {"value": text, "annotations": []}})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            url = text_check(
                part["image_url"].get("url"),
                param=f"{where}.image_url.url",
                limit=MESSAGE_MAX,
                required=True,
            )
            detail = part["image_url"].get("detail", "auto")
            parts.append({"type": "image_url", "image_url": {"url": url, "detail": detail}})
        elif kind == "image_file" and isinstance(part.get("image_file"), dict):
            file_id = text_check(
                part["image_file"].get("file_id"),
                param=f"{where}.image_file.file_id",
                limit=64,
                required=True,
            )
            detail = part["image_file"].get("detail", "auto")
            parts.append(
                {"type": "image_file", "image_file": {"file_id": file_id, "detail": detail}}
            )
        else:
            raise InvalidRequestError(
                f"Invalid value for '{where}.type': expected 'text', 'image_url' or 'image_file'.",
                param=f"{where}.type",
                code="invalid_value",
            )
    return parts


def role_check(value: Any, *, param: str = "role") -> str:
    if value not in _ROLES:
        raise InvalidRequestError(
            f"Invalid value for '{param}': expected 'user' or 'assistant'.",
            param=param,
            code="invalid_value",
        )
    return str(value)


def attachments_check(value: Any, *, param: str = "attachments") -> list[dict[str, Any]]:
    """Files attached to a message (`{"file_id", "tools": [...]}`): kept and given back."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and isinstance(item.get("file_id"), str) for item in value
    ):
        raise InvalidRequestError(
            f"Invalid '{param}': expected an array of objects with a 'file_id'.", param=param
        )
    return [{"file_id": item["file_id"], "tools": item.get("tools") or []} for item in value]


def message_input_check(value: Any, *, param: str) -> dict[str, Any]:
    """One message given at creation (thread `messages`, run `additional_messages`)."""
    if not isinstance(value, dict):
        raise InvalidRequestError(f"Invalid type for '{param}': expected an object.", param=param)
    unknown_check_param(value, {"role", "content", "attachments", "metadata"}, param)
    if "content" not in value:
        raise InvalidRequestError(
            f"Missing required parameter: '{param}.content'.", param=f"{param}.content"
        )
    return {
        "role": role_check(value.get("role"), param=f"{param}.role"),
        "content": content_check(value.get("content"), param=f"{param}.content"),
        "attachments": attachments_check(value.get("attachments"), param=f"{param}.attachments"),
        "metadata": metadata_check(value.get("metadata")),
    }


def messages_check(value: Any, *, param: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequestError(f"Invalid type for '{param}': expected an array.", param=param)
    return [message_input_check(item, param=f"{param}[{i}]") for i, item in enumerate(value)]


def tool_choice_check(value: Any, tools: list[dict[str, Any]]) -> Any:
    if value is None:
        return None
    if value in ("none", "auto", "required"):
        return value
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "function":
        name = (value.get("function") or {}).get("name")
        if not any(tool.get("function", {}).get("name") == name for tool in tools):
            raise InvalidRequestError(
                f"Invalid 'tool_choice': no function tool named '{name}' in the run's tools.",
                param="tool_choice",
                code="invalid_value",
            )
        return {"type": "function", "function": {"name": name}}
    if kind == "file_search":
        return {"type": "file_search"}
    raise InvalidRequestError(
        "Invalid 'tool_choice': expected 'none', 'auto', 'required' or a tool.",
        param="tool_choice",
        code="invalid_value",
    )


def truncation_check(value: Any) -> dict[str, Any]:
    if value is None:
        return {"type": "auto", "last_messages": None}
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "auto":
        return {"type": "auto", "last_messages": None}
    last = value.get("last_messages") if isinstance(value, dict) else None
    if (
        kind == "last_messages"
        and isinstance(last, int)
        and not isinstance(last, bool)
        and last >= 1
    ):
        return {"type": "last_messages", "last_messages": last}
    raise InvalidRequestError(
        "Invalid 'truncation_strategy': expected type 'auto', or 'last_messages' with "
        "'last_messages' of at least 1.",
        param="truncation_strategy",
        code="invalid_value",
    )


def limit_check(raw: str | None) -> int:
    if raw is None:
        return 20
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequestError(
            "Invalid 'limit': expected an integer from 1 to 100.", param="limit"
        )
    return int(raw)


def order_check(raw: str | None) -> str:
    if raw is None:
        return "desc"
    if raw not in ("asc", "desc"):
        raise InvalidRequestError(
            "Invalid 'order': expected 'asc' or 'desc'.", param="order", code="invalid_value"
        )
    return raw


REASONING_EFFORTS = ("minimal", "low", "medium", "high")


def reasoning_effort_check(value: Any) -> str | None:
    """Passed on to the chat call (`reasoning_effort`), where the provider has reasoning."""
    if value is None:
        return None
    if value not in REASONING_EFFORTS:
        raise InvalidRequestError(
            f"Invalid 'reasoning_effort': expected one of {', '.join(REASONING_EFFORTS)}.",
            param="reasoning_effort",
            code="invalid_value",
        )
    return str(value)
