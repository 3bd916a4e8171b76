from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], str]:
    """Write dedented YAML to a file and return its path (each call a new file)."""
    counter = iter(range(1000))

    def write(text: str, name: str | None = None) -> str:
        path = tmp_path / (name or f"config-{next(counter)}.yaml")
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return str(path)

    return write
