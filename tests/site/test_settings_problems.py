"""A deployment with several wrong or missing variables hears of all of them at its first start,
in one message without a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _manage_check(tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OGEM_", "DJANGO_", "DATABASE_URL"))
    }
    env.update(OGEM_VAR_DIR=str(tmp_path), **extra)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_lists_every_problem_at_once(tmp_path: Path) -> None:
    result = _manage_check(
        tmp_path,
        DJANGO_SETTINGS_MODULE="ogem_site.settings.production",
        OGEM_USAGE_BATCH_SIZE="many",
        OGEM_CORS_ORIGINS="app.example.com",
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "Ogem cannot start: 6 setting(s) to fix in the environment:"
    assert sorted(line.split()[1].split("=")[0].rstrip(":") for line in lines[1:]) == [
        "DATABASE_URL",
        "DJANGO_SECRET_KEY",
        "OGEM_CORS_ORIGINS",
        "OGEM_ENCRYPTION_KEYS",
        "OGEM_MASTER_KEY",
        "OGEM_USAGE_BATCH_SIZE",
    ]


def test_embedded_default_reports_a_bad_value_the_same_way(tmp_path: Path) -> None:
    result = _manage_check(tmp_path, OGEM_UPSTREAM_CLIENT="curl", OGEM_GOVERNANCE_ENABLED="maybe")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "OGEM_UPSTREAM_CLIENT must be `lean` or `aiohttp`" in result.stderr
    assert "OGEM_GOVERNANCE_ENABLED='maybe' is not a boolean" in result.stderr
    fine = _manage_check(tmp_path)
    assert fine.returncode == 0, fine.stderr
