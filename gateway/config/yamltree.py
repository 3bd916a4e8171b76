"""YAML composed to a tree of nodes that remember where they came from.

PyYAML's `safe_load` throws the marks away; composing to nodes keeps them, so every problem can
name `file:line:column`. Scalars are still built by PyYAML's safe constructor (ints, floats,
booleans, nulls behave exactly as in `safe_load`), and merge keys (`<<: *anchor`) work.

`${NAME}` and `${NAME:-default}` in string values are replaced with the process environment's
values while composing (`$${` writes a literal `${`); a plain (unquoted) value that is one whole
reference takes the type its text has (`rpm: ${RPM}` is an integer), as if written in the file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from gateway.config.problems import Location, Problems


@dataclass(frozen=True, slots=True)
class YNode:
    """A YAML value. `value` is a scalar, a list of YNode, or a dict of str to YNode."""

    value: Any
    location: Location
    path: str  # where in the document, for messages: "model_list[2].litellm_params.rpm"
    key_location: Location | None = None  # for mapping values: where their key is
    interpolated: bool = False  # the value came (partly) from `${NAME}` in the file
    unset: tuple[str, ...] = ()  # names of `${NAME}` references that were not set (no default)

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    @property
    def is_scalar(self) -> bool:
        return not isinstance(self.value, dict | list)

    def get(self, key: str) -> YNode | None:
        if isinstance(self.value, dict):
            return self.value.get(key)
        return None

    def plain(self) -> Any:
        """The value as plain Python data (what `yaml.safe_load` would have returned)."""
        if isinstance(self.value, dict):
            return {key: node.plain() for key, node in self.value.items()}
        if isinstance(self.value, list):
            return [node.plain() for node in self.value]
        return self.value


def _location(source: str, mark: yaml.Mark | None) -> Location:
    if mark is None:
        return Location(source)
    return Location(source, mark.line + 1, mark.column + 1)


_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_STR_TAG = "tag:yaml.org,2002:str"


def yaml_interpolate(text: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """`text` with its `${NAME}` / `${NAME:-default}` replaced, and the names that were unset
    (with no default; they become empty)."""
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name is None:
            return "${"  # `$${`: a literal
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    return _REFERENCE.sub(replace, text), missing


def yaml_unset_report(node: YNode, problems: Problems) -> None:
    """Report every `${NAME}` left unset in the tree under `node`: after the overlays are merged,
    so that a variable of an environment not in use is not asked for."""
    for name in node.unset:
        where = f"{node.path}: " if node.path else ""
        problems.error(
            node.location,
            f"{where}the environment variable {name} is not set "
            f"(write ${{{name}:-default}} to give a default)",
        )
    children = node.value.values() if node.is_mapping else node.value if node.is_list else ()
    for child in children:
        yaml_unset_report(child, problems)


def yaml_compose(
    text: str, *, source: str, problems: Problems, environ: Mapping[str, str] | None = None
) -> YNode | None:
    """Parse one YAML document; report syntax errors into `problems` and return None on failure.
    With `environ`, `${NAME}` references in string values are replaced (module docstring); those
    not set are kept on their nodes for `yaml_unset_report`."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return YNode({}, Location(source, 1, 1), "")
        return _convert(loader, root, source=source, path="", problems=problems, environ=environ)
    except yaml.MarkedYAMLError as exc:
        message = exc.problem or "invalid YAML"
        if exc.context:
            message = f"{exc.context}: {message}"
        problems.error(
            _location(source, exc.problem_mark or exc.context_mark), f"invalid YAML: {message}"
        )
        return None
    except yaml.YAMLError as exc:
        problems.error(Location(source), f"invalid YAML: {exc}")
        return None
    finally:
        loader.dispose()


def _convert(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    *,
    source: str,
    path: str,
    problems: Problems,
    environ: Mapping[str, str] | None,
    key_location: Location | None = None,
) -> YNode:
    here = _location(source, node.start_mark)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        mapping: dict[str, YNode] = {}
        for key_node, value_node in node.value:
            key_at = _location(source, key_node.start_mark)
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            child_path = f"{path}.{key}" if path else key
            if key in mapping:
                problems.warning(
                    key_at, f'{child_path}: duplicate key "{key}"; the last value is used'
                )
            mapping[key] = _convert(
                loader,
                value_node,
                source=source,
                path=child_path,
                problems=problems,
                environ=environ,
                key_location=key_at,
            )
        return YNode(mapping, here, path, key_location)
    if isinstance(node, yaml.SequenceNode):
        items = [
            _convert(
                loader,
                item,
                source=source,
                path=f"{path}[{index}]",
                problems=problems,
                environ=environ,
            )
            for index, item in enumerate(node.value)
        ]
        return YNode(items, here, path, key_location)
    if environ is not None and node.tag == _STR_TAG and "$" in node.value:
        text, missing = yaml_interpolate(node.value, environ)
        if text != node.value or missing:
            # A plain scalar resolves its type from the text it now has, as if written so.
            tag = (
                loader.resolve(yaml.ScalarNode, text, (True, False))
                if node.style is None
                else _STR_TAG
            )
            scalar = yaml.ScalarNode(tag, text, node.start_mark, node.end_mark, style=node.style)
            value = loader.construct_object(scalar, deep=True)
            return YNode(value, here, path, key_location, True, tuple(missing))
    return YNode(loader.construct_object(node, deep=True), here, path, key_location)
