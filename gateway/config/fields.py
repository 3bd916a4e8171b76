"""Typed reads of YAML nodes that report a located problem instead of raising."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from gateway.config.problems import Problems
from gateway.config.secrets import (
    SecretError,
    secret_check,
    secret_is_reference,
    secret_resolve,
)
from gateway.config.yamltree import YNode

_TYPE_NAMES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "a mapping",
    type(None): "empty",
}


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{_TYPE_NAMES.get(type(value), type(value).__name__)} ({value!r})"


class Reader:
    """Reads fields for one load. `resolve_secrets=False` checks references without reading them."""

    def __init__(
        self, problems: Problems, *, environ: Mapping[str, str], resolve_secrets: bool = True
    ) -> None:
        self.problems = problems
        self.environ = environ
        self.resolve_secrets = resolve_secrets

    def error(self, node: YNode, message: str) -> None:
        self.problems.error(node.location, f"{node.path}: {message}" if node.path else message)

    def warning(self, node: YNode, message: str, *, at_key: bool = False) -> None:
        location = node.key_location if at_key and node.key_location else node.location
        self.problems.warning(location, f"{node.path}: {message}" if node.path else message)

    def mapping(self, node: YNode | None) -> dict[str, YNode] | None:
        if node is None or node.value is None:
            return None
        if not node.is_mapping:
            self.error(node, f"expected a mapping, got {_describe(node.value)}")
            return None
        return node.value

    def items(self, node: YNode | None) -> list[YNode]:
        if node is None or node.value is None:
            return []
        if not node.is_list:
            self.error(node, f"expected a list, got {_describe(node.value)}")
            return []
        return node.value

    def string(self, node: YNode | None, *, secret: bool = True) -> str | None:
        """A string (numbers and dates are accepted as written); references are resolved."""
        if node is None or node.value is None:
            return None
        value = node.value
        if isinstance(value, bool) or not isinstance(value, str | int | float | datetime.date):
            self.error(node, f"expected a string, got {_describe(value)}")
            return None
        if isinstance(value, datetime.date):
            value = value.isoformat()  # `api_version: 2024-02-01` unquoted is a YAML date
        text = str(value)
        if secret and secret_is_reference(text):
            return self._resolve(node, text)
        return text

    def _resolve(self, node: YNode, reference: str) -> str | None:
        try:
            if not self.resolve_secrets:
                secret_check(reference)
                return reference
            return secret_resolve(reference, environ=self.environ)
        except SecretError as exc:
            self.error(node, str(exc))
            return None

    def integer(self, node: YNode | None, *, minimum: int = 0) -> int | None:
        if node is None or node.value is None:
            return None
        value = node.value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(node, f"expected an integer, got {_describe(node.value)}")
            return None
        if value < minimum:
            self.error(node, f"must be at least {minimum}, got {value}")
            return None
        return value

    def number(self, node: YNode | None, *, positive: bool = True) -> float | None:
        if node is None or node.value is None:
            return None
        value = node.value
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(node, f"expected a number, got {_describe(node.value)}")
            return None
        if positive and value <= 0:
            self.error(node, f"must be greater than 0, got {value}")
            return None
        return float(value)

    def boolean(self, node: YNode | None) -> bool | None:
        if node is None or node.value is None:
            return None
        if not isinstance(node.value, bool):
            self.error(node, f"expected true or false, got {_describe(node.value)}")
            return None
        return node.value

    def strings(self, node: YNode | None) -> tuple[str, ...]:
        """A list of strings; a single string is accepted as a list of one."""
        if node is None or node.value is None:
            return ()
        if node.is_scalar:
            single = self.string(node, secret=False)
            return (single,) if single else ()
        values: list[str] = []
        for item in self.items(node):
            text = self.string(item, secret=False)
            if text is not None:
                values.append(text)
        return tuple(values)

    def resolved(self, node: YNode) -> Any:
        """Plain data with every string reference resolved (for free-form `params`)."""
        if node.is_mapping:
            return {key: self.resolved(child) for key, child in node.value.items()}
        if node.is_list:
            return [self.resolved(child) for child in node.value]
        if isinstance(node.value, str) and secret_is_reference(node.value):
            return self._resolve(node, node.value)
        return node.value

    def unknown_keys(
        self,
        node: YNode,
        known: Iterable[str],
        *,
        section: str,
        hints: Mapping[str, str] | None = None,
    ) -> None:
        known_set = set(known)
        for key, child in (node.value or {}).items():
            if key in known_set:
                continue
            hint = (hints or {}).get(key)
            if hint:
                self.warning(child, f"ignored: {hint}", at_key=True)
            else:
                self.warning(child, f"unknown key in {section}, ignored", at_key=True)
