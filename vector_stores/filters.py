"""OpenAI's attribute filters (`ComparisonFilter`, `CompoundFilter`) on vector store files'
`attributes`: checked once when a request arrives, then evaluated per file.

A key the file does not have matches `ne` and `nin` only. An order comparison (`gt`, `gte`, `lt`,
`lte`) holds between two numbers or two strings; between other types it does not.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequestError

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS = ("and", "or")
_MAX_DEPTH = 8
_MAX_NODES = 256


def filters_check(value: object, *, param: str = "filters") -> dict[str, Any] | None:
    """The filter as given, or a 400 naming what is wrong with it."""
    if value is None:
        return None
    nodes = [0]
    _check(value, param=param, depth=0, nodes=nodes)
    return value  # type: ignore[return-value]


def _check(value: object, *, param: str, depth: int, nodes: list[int]) -> None:
    nodes[0] += 1
    if depth > _MAX_DEPTH or nodes[0] > _MAX_NODES:
        raise InvalidRequestError(
            f"`filters` may nest {_MAX_DEPTH} deep and hold {_MAX_NODES} filters at most.",
            param=param,
        )
    if not isinstance(value, dict):
        raise InvalidRequestError(f"`{param}` must be an object.", param=param)
    kind = value.get("type")
    if kind in COMPOUNDS:
        if set(value) - {"type", "filters"}:
            raise InvalidRequestError(
                f"`{param}` has unknown fields: a compound filter takes `type` and `filters`.",
                param=param,
            )
        inner = value.get("filters")
        if not isinstance(inner, list):
            raise InvalidRequestError(
                f"`{param}.filters` must be an array.", param=f"{param}.filters"
            )
        for position, item in enumerate(inner):
            _check(item, param=f"{param}.filters[{position}]", depth=depth + 1, nodes=nodes)
        return
    if kind not in COMPARISONS:
        raise InvalidRequestError(
            f"`{param}.type` must be one of {', '.join(COMPARISONS + COMPOUNDS)}.",
            param=f"{param}.type",
        )
    if set(value) - {"type", "key", "value"}:
        raise InvalidRequestError(
            f"`{param}` has unknown fields: a comparison takes `type`, `key` and `value`.",
            param=param,
        )
    if not isinstance(value.get("key"), str):
        raise InvalidRequestError(f"`{param}.key` must be a string.", param=f"{param}.key")
    operand = value.get("value")
    if kind in ("in", "nin"):
        if not isinstance(operand, list) or not all(_scalar(item) for item in operand):
            raise InvalidRequestError(
                f"`{param}.value` must be an array of strings or numbers for `{kind}`.",
                param=f"{param}.value",
            )
    elif not (_scalar(operand) or isinstance(operand, bool)):
        raise InvalidRequestError(
            f"`{param}.value` must be a string, a number or a boolean.", param=f"{param}.value"
        )


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def filters_match(spec: dict[str, Any], attributes: dict[str, Any] | None) -> bool:
    """Whether a file's attributes pass a checked filter."""
    kind = spec["type"]
    if kind == "and":
        return all(filters_match(inner, attributes) for inner in spec["filters"])
    if kind == "or":
        return any(filters_match(inner, attributes) for inner in spec["filters"])
    attributes = attributes or {}
    key, operand = spec["key"], spec["value"]
    if key not in attributes:
        return kind in ("ne", "nin")
    actual = attributes[key]
    if kind == "eq":
        return _same(actual, operand)
    if kind == "ne":
        return not _same(actual, operand)
    if kind == "in":
        return any(_same(actual, item) for item in operand)
    if kind == "nin":
        return not any(_same(actual, item) for item in operand)
    if not _ordered(actual, operand):
        return False
    if kind == "gt":
        return actual > operand
    if kind == "gte":
        return actual >= operand
    if kind == "lt":
        return actual < operand
    return actual <= operand


def _same(left: object, right: object) -> bool:
    # True == 1 in Python; a boolean attribute equals only a boolean.
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    return left == right


def _ordered(left: object, right: object) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return False
    numbers = isinstance(left, int | float) and isinstance(right, int | float)
    return numbers or (isinstance(left, str) and isinstance(right, str))


def attributes_check(value: object, *, param: str = "attributes") -> dict[str, Any] | None:
    """OpenAI's `VectorStoreFileAttributes`: up to 16 pairs, keys of 64 characters at most,
    values strings (512 at most), numbers or booleans."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidRequestError(f"`{param}` must be an object.", param=param)
    if len(value) > 16:
        raise InvalidRequestError(f"`{param}` may hold 16 pairs at most.", param=param)
    for key, item in value.items():
        if not isinstance(key, str) or len(key) > 64:
            raise InvalidRequestError(
                f"`{param}` keys are strings of 64 characters at most.", param=param
            )
        if isinstance(item, str):
            if len(item) > 512:
                raise InvalidRequestError(
                    f"`{param}.{key}` may be 512 characters at most.", param=f"{param}.{key}"
                )
        elif not isinstance(item, bool | int | float):
            raise InvalidRequestError(
                f"`{param}.{key}` must be a string, a number or a boolean.",
                param=f"{param}.{key}",
            )
    return value
