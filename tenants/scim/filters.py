"""The SCIM filter grammar (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2), parsed and evaluated.

Filters are parsed into a small tree and evaluated against a resource's JSON representation, so
what a filter sees is exactly what a GET returns. Attribute names are case-insensitive; string
comparisons are case-insensitive except for attributes the caller marks case-exact (``id``,
``externalId``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tenants.scim.errors import ScimError

COMPARE_OPS = frozenset({"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"})
_URN_PREFIX = "urn:ietf:params:scim:schemas:"
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<punct>[()\[\]])
      | (?P<word>[^\s()\[\]"]+)
    )""",
    re.VERBOSE,
)


class ScimFilterError(ScimError):
    def __init__(self, detail: str) -> None:
        super().__init__(400, detail, scim_type="invalidFilter")


@dataclass(frozen=True)
class AttrPath:
    """``name`` or ``name.sub``, lower-cased, with any schema URN removed."""

    attr: str
    sub: str | None = None

    def __str__(self) -> str:
        return f"{self.attr}.{self.sub}" if self.sub else self.attr


@dataclass(frozen=True)
class Compare:
    path: AttrPath
    op: str
    value: Any


@dataclass(frozen=True)
class Present:
    path: AttrPath


@dataclass(frozen=True)
class And:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Or:
    left: Filter
    right: Filter


@dataclass(frozen=True)
class Not:
    expr: Filter


@dataclass(frozen=True)
class ValuePath:
    """``emails[type eq "work"]``: the filter applies to each value of a multi-valued attribute."""

    path: AttrPath
    expr: Filter


Filter = Compare | Present | And | Or | Not | ValuePath


@dataclass(frozen=True)
class PatchPath:
    """A PATCH target: ``attr``, ``attr.sub``, ``attr[filter]`` or ``attr[filter].sub``."""

    attr: str
    sub: str | None = None
    value_filter: Filter | None = None


def attr_path_parse(text: str) -> AttrPath:
    name = text
    if name.lower().startswith(_URN_PREFIX):
        # "urn:...:User:name.givenName": the attribute follows the last colon.
        name = name.rsplit(":", 1)[1]
    if not name or not re.fullmatch(r"\$?[A-Za-z][\w$-]*(\.[A-Za-z$][\w$-]*)?", name):
        raise ScimFilterError(f"invalid attribute path {text!r}")
    attr, _, sub = name.partition(".")
    return AttrPath(attr=attr.lower(), sub=sub.lower() or None)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise ScimFilterError(f"cannot parse filter near {text[position:]!r}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.index = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ScimFilterError("filter ends too early")
        self.index += 1
        return token

    def expect(self, punct: str) -> None:
        kind, value = self.take()
        if kind != "punct" or value != punct:
            raise ScimFilterError(f"expected {punct!r}, found {value!r}")

    def at_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].lower() in words

    def parse_or(self) -> Filter:
        expr = self.parse_and()
        while self.at_word("or"):
            self.take()
            expr = Or(expr, self.parse_and())
        return expr

    def parse_and(self) -> Filter:
        expr = self.parse_unary()
        while self.at_word("and"):
            self.take()
            expr = And(expr, self.parse_unary())
        return expr

    def parse_unary(self) -> Filter:
        if self.at_word("not"):
            self.take()
            self.expect("(")
            expr = self.parse_or()
            self.expect(")")
            return Not(expr)
        token = self.peek()
        if token == ("punct", "("):
            self.take()
            expr = self.parse_or()
            self.expect(")")
            return expr
        return self.parse_attribute_expression()

    def parse_attribute_expression(self) -> Filter:
        kind, text = self.take()
        if kind != "word":
            raise ScimFilterError(f"expected an attribute, found {text!r}")
        path = attr_path_parse(text)
        if self.peek() == ("punct", "["):
            if path.sub:
                raise ScimFilterError(f"invalid value path {text!r}")
            self.take()
            inner = self.parse_or()
            self.expect("]")
            return ValuePath(path, inner)
        kind, op = self.take()
        op = op.lower()
        if kind != "word":
            raise ScimFilterError(f"expected an operator after {text!r}")
        if op == "pr":
            return Present(path)
        if op not in COMPARE_OPS:
            raise ScimFilterError(f"unknown operator {op!r}")
        return Compare(path, op, self.parse_value())

    def parse_value(self) -> Any:
        kind, text = self.take()
        if kind == "string":
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ScimFilterError(f"invalid string {text}") from exc
        if kind != "word":
            raise ScimFilterError(f"expected a value, found {text!r}")
        lowered = text.lower()
        if lowered in {"true", "false", "null"}:
            return {"true": True, "false": False, "null": None}[lowered]
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError as exc:
            raise ScimFilterError(f"invalid value {text!r}") from exc


def filter_parse(text: str) -> Filter:
    """Parse a filter expression; raises ScimFilterError (400, scimType invalidFilter)."""
    parser = _Parser(text)
    if parser.peek() is None:
        raise ScimFilterError("empty filter")
    expr = parser.parse_or()
    if parser.peek() is not None:
        raise ScimFilterError(f"unexpected {parser.peek()[1]!r} in filter")  # type: ignore[index]
    return expr


def patch_path_parse(text: str) -> PatchPath:
    """Parse a PATCH ``path``; raises ScimError (400, scimType invalidPath)."""
    try:
        bracket = text.find("[")
        if bracket == -1:
            path = attr_path_parse(text.strip())
            return PatchPath(attr=path.attr, sub=path.sub)
        close = text.rfind("]")
        if close < bracket:
            raise ScimFilterError("unbalanced brackets")
        head = attr_path_parse(text[:bracket].strip())
        if head.sub:
            raise ScimFilterError("a value filter applies to a top-level attribute")
        value_filter = filter_parse(text[bracket + 1 : close])
        rest = text[close + 1 :].strip()
        sub = None
        if rest:
            if not rest.startswith("."):
                raise ScimFilterError(f"unexpected {rest!r} after the value filter")
            sub = attr_path_parse(f"x{rest}").sub
        return PatchPath(attr=head.attr, sub=sub, value_filter=value_filter)
    except ScimFilterError as exc:
        raise ScimError(
            400, f"invalid path {text!r}: {exc.detail}", scim_type="invalidPath"
        ) from exc


def lookup(document: Any, name: str) -> Any:
    """A key of a JSON object, matched case-insensitively."""
    if not isinstance(document, dict):
        return None
    for key, value in document.items():
        if key.lower() == name:
            return value
    return None


def _values(resource: dict[str, Any], path: AttrPath) -> list[Any]:
    value = lookup(resource, path.attr)
    items = value if isinstance(value, list) else [value]
    if path.sub:
        items = [lookup(item, path.sub) for item in items]
    elif any(isinstance(item, dict) for item in items):
        # A complex attribute compared as a whole compares its "value" sub-attribute.
        items = [lookup(item, "value") if isinstance(item, dict) else item for item in items]
    return [item for item in items if item is not None]


def _as_datetime(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _compare(actual: Any, op: str, expected: Any, case_exact: bool) -> bool:
    if op == "eq" and expected is None:
        return actual is None
    if op == "ne" and expected is None:
        return actual is not None
    if isinstance(actual, bool) or isinstance(expected, bool):
        if op == "eq":
            return actual is expected
        if op == "ne":
            return actual is not expected
        raise ScimFilterError(f"{op} does not apply to booleans")
    if isinstance(actual, str) and isinstance(expected, str):
        left_dt, right_dt = _as_datetime(actual), _as_datetime(expected)
        if op in {"gt", "ge", "lt", "le"} and left_dt and right_dt:
            actual, expected = left_dt, right_dt
        elif not case_exact:
            actual, expected = actual.lower(), expected.lower()
    elif type(actual) is not type(expected) and not (
        isinstance(actual, int | float) and isinstance(expected, int | float)
    ):
        return op == "ne"
    try:
        match op:
            case "eq":
                return actual == expected
            case "ne":
                return actual != expected
            case "co":
                return isinstance(actual, str) and expected in actual
            case "sw":
                return isinstance(actual, str) and actual.startswith(expected)
            case "ew":
                return isinstance(actual, str) and actual.endswith(expected)
            case "gt":
                return actual > expected
            case "ge":
                return actual >= expected
            case "lt":
                return actual < expected
            case "le":
                return actual <= expected
    except TypeError:
        return False
    return False


def filter_matches(
    expr: Filter, resource: dict[str, Any], *, case_exact: frozenset[str] = frozenset()
) -> bool:
    """Whether a resource (its JSON representation) matches a parsed filter."""
    match expr:
        case And(left, right):
            return filter_matches(left, resource, case_exact=case_exact) and filter_matches(
                right, resource, case_exact=case_exact
            )
        case Or(left, right):
            return filter_matches(left, resource, case_exact=case_exact) or filter_matches(
                right, resource, case_exact=case_exact
            )
        case Not(inner):
            return not filter_matches(inner, resource, case_exact=case_exact)
        case Present(path):
            return any(value not in ("", [], {}) for value in _values(resource, path))
        case ValuePath(path, inner):
            items = lookup(resource, path.attr)
            items = items if isinstance(items, list) else [items]
            return any(
                isinstance(item, dict) and filter_matches(inner, item, case_exact=case_exact)
                for item in items
            )
        case Compare(path, op, expected):
            exact = str(path) in case_exact
            values = _values(resource, path)
            if not values:
                return (op == "eq" and expected is None) or (op == "ne" and expected is not None)
            if op == "ne":
                return all(_compare(value, op, expected, exact) for value in values)
            return any(_compare(value, op, expected, exact) for value in values)
    raise ScimFilterError("unsupported filter")
