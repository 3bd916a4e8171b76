from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.site.serve_processes import DATABASE_FILE, manage, serve_env


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory as `serve_env` lays it out, migrated once per test process: its SQLite
    database, and the var directory with the keys the migration made. A migrate takes 7-14 s
    here, a copy milliseconds; some forty tests start a serve on a database of their own."""
    root = tmp_path_factory.mktemp("migrated")
    migrate = manage("migrate", "--noinput", env=serve_env(root))
    output, _ = migrate.communicate(timeout=120)
    assert migrate.returncode == 0, output
    return root


@pytest.fixture
def migrated_env(tmp_path: Path, migrated_template: Path) -> Iterator[dict[str, str]]:
    """The environment of a serve on a fresh, migrated SQLite database of the test's own (a copy
    of the template's)."""
    shutil.copyfile(migrated_template / DATABASE_FILE, tmp_path / DATABASE_FILE)
    shutil.copytree(migrated_template / "var", tmp_path / "var")
    yield serve_env(tmp_path)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started: killed at its end if still running."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()
