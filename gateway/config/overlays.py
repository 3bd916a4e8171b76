"""Per-environment overlays: one base configuration, and what differs in staging or production.

With `OGEM_ENV=production`, the base file's `environments.production` section and then the file
`<name>.production.<ext>` beside it (when the source is a file) are merged over the base, in that
order: mappings merge key by key, anything else (lists, scalars) is replaced whole. The
`environments` section itself is not part of the merged configuration. docs/configuration.md,
"Environments".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from gateway.config.fields import Reader
from gateway.config.sources import SourceError, source_is_url, source_read
from gateway.config.yamltree import YNode, yaml_compose

ENVIRONMENTS_KEY = "environments"
ENVIRONMENT_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
_NAME = re.compile(ENVIRONMENT_NAME)


def overlay_path(source: str, environment: str) -> str | None:
    """The overlay file of `source` for `environment` (config.yaml -> config.production.yaml);
    None for a URL or when there is no environment."""
    if not source or not environment or source_is_url(source):
        return None
    path = Path(source)
    return str(path.with_name(f"{path.stem}.{environment}{path.suffix or '.yaml'}"))


def overlay_merge(base: YNode, overlay: YNode) -> YNode:
    """`overlay` over `base`: mappings merged recursively, the rest replaced by the overlay's."""
    if not (base.is_mapping and overlay.is_mapping):
        return overlay
    merged = dict(base.value)
    for key, node in overlay.value.items():
        merged[key] = overlay_merge(merged[key], node) if key in merged else node
    return YNode(merged, base.location, base.path, base.key_location)


def overlays_apply(
    reader: Reader,
    root: YNode,
    *,
    source: str,
    environment: str,
    environ: Mapping[str, str] | None,
) -> tuple[YNode, tuple[str, ...]]:
    """The configuration for `environment` (root when it is empty), and the overlay files to
    watch (the overlay's path even when it does not exist yet: creating it is a change)."""
    sections = root.get(ENVIRONMENTS_KEY)
    if sections is not None:
        root = YNode(
            {k: v for k, v in root.value.items() if k != ENVIRONMENTS_KEY},
            root.location,
            root.path,
        )
    named = reader.mapping(sections) or {}
    for name, section in named.items():
        if not _NAME.match(name):
            reader.error(section, f'"{name}" is not an environment name (letters, digits, - _)')
        elif section.value is not None and not section.is_mapping:
            reader.error(section, "an environment's section must be a mapping of sections")
    if not environment:
        return root, ()
    if not _NAME.match(environment):
        reader.problems.error(
            root.location,
            f'OGEM_ENV "{environment}" is not an environment name (letters, digits, - _)',
        )
        return root, ()
    applied = False
    section = named.get(environment)
    if section is not None and section.is_mapping:
        root, applied = overlay_merge(root, section), True
    path = overlay_path(source, environment)
    if path is not None and Path(path).exists():
        applied = True  # a broken overlay is reported as such, not as a missing one
        overlay = _overlay_read(reader, path, environ=environ)
        if overlay is not None:
            root = overlay_merge(root, overlay)
    if not applied:
        where = f" nor a file {Path(path).name}" if path else ""
        reader.warning(
            root,
            f'OGEM_ENV is "{environment}" but there is no environments.{environment} section'
            f"{where}; the base configuration is used as it is",
        )
    return root, (path,) if path else ()


def _overlay_read(reader: Reader, path: str, *, environ: Mapping[str, str] | None) -> YNode | None:
    try:
        text = source_read(path)
    except SourceError as exc:
        reader.problems.error(exc.location, exc.message)
        return None
    document = yaml_compose(text.text, source=path, problems=reader.problems, environ=environ)
    if document is None:
        return None
    if not document.is_mapping:
        reader.error(document, "an overlay file must be a mapping of sections")
        return None
    if ENVIRONMENTS_KEY in document.value:
        reader.error(
            document.value[ENVIRONMENTS_KEY],
            "an overlay file cannot have environments of its own; write them in the base file",
        )
        return None
    return document
