from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.site.serve_processes import manage, serve_env


@pytest.fixture
def migrated_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a serve on a fresh, migrated SQLite database of the test's own."""
    env = serve_env(tmp_path)
    migrate = manage("migrate", "--noinput", env=env)
    output, _ = migrate.communicate(timeout=120)
    assert migrate.returncode == 0, output
    yield env


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started: killed at its end if still running."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
