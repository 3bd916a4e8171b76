"""A LiteLLM config's `general_settings.master_key` is the master key when OGEM_MASTER_KEY is
unset (settings are read in a fresh process, as at start)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHOW = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.OGEM_MASTER_KEY); print(settings.OGEM_MASTER_KEY_SOURCE)"
)


def _settings(config: Path, **env: str) -> list[str]:
    environ = {k: v for k, v in os.environ.items() if k != "OGEM_MASTER_KEY"}
    environ.update(
        OGEM_CONFIG=str(config),
        DJANGO_SETTINGS_MODULE="ogem_site.settings.test",
        PYTHONPATH=str(REPO),
        **env,
    )
    done = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=REPO, env=environ, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_master_key_from_general_settings(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "environment_variables:\n  LPROV_MK: sk-from-file-env-0123456789\n"
        "general_settings:\n  master_key: os.environ/LPROV_MK\n"
        "model_list: []\n"
    )
    assert _settings(config, LPROV_MK="sk-from-process") == [
        "sk-from-file-env-0123456789",  # environment_variables win, as in LiteLLM
        f"general_settings.master_key in {config} (LPROV_MK)",
    ]
    # OGEM_MASTER_KEY still wins over the file.
    assert _settings(config, OGEM_MASTER_KEY="sk-env-master-0123456789")[0] == (
        "sk-env-master-0123456789"
    )
    config.write_text("general_settings:\n  master_key: sk-literal-0123456789\n")
    assert _settings(config)[0] == "sk-literal-0123456789"
