"""The JSON Schema of the config format (gateway/config/schema.py), the copy `ogem config schema`
ships, and `ogem config check` running `check_config`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from gateway.config import Severity, config_check
from gateway.config.schema import config_schema

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "sdk" / "python" / "ogem_sdk" / "config.schema.json"

FULL = """
version: 1
models:
  - name: chat
    provider: openai
    model: gpt-4o-mini
    api_key: os.environ/OPENAI_API_KEY
    weight: 2
    tags: [fast]
    timeouts: {connect: 5, first_byte: 30, total: 600}
  - name: chat
    model: anthropic/claude-3-5-haiku-latest
    api_key: os.environ/ANTHROPIC_API_KEY
router:
  strategy: least-busy
  num_retries: 2
  fallbacks: [{chat: [backup]}]
  aliases: {gpt: chat, hidden-gpt: {model: chat, hidden: true}}
  groups: {chat: {strategy: simple-shuffle}}
settings:
  drop_params: true
  global_max_parallel_requests: 100
cache:
  type: local
  ttl: 60
  scope: team
  semantic: {enabled: false}
"""


REGENERATE = (
    "DJANGO_SETTINGS_MODULE=ogem_site.settings.test python -c 'import django, json; "
    "django.setup(); "
    "from gateway.config.schema import config_schema; "
    "print(json.dumps(config_schema(), indent=2))' > sdk/python/ogem_sdk/config.schema.json"
)


def test_the_shipped_copy_is_the_generated_schema() -> None:
    """`ogem config schema` prints the SDK's copy, which works without Ogem's code."""
    assert json.loads(SHIPPED.read_text()) == config_schema(), f"regenerate it: {REGENERATE}"


def test_configs_the_loader_accepts_validate_and_its_warnings_do_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    path = tmp_path / "config.yaml"
    path.write_text(FULL)
    _, problems = config_check(str(path), resolve_secrets=False)
    assert [p for p in problems if p.severity is Severity.ERROR] == []
    assert list(validator.iter_errors(yaml.safe_load(FULL))) == []

    for bad, where in (
        ({"models": [{"name": "a", "model": "m", "weight": 0}]}, ["models", 0, "weight"]),
        ({"router": {"strategy": "fastest"}}, ["router", "strategy"]),
        ({"models": [{"name": "a", "model": "m", "colour": "red"}]}, ["models", 0]),
        ({"cache": {"scope": "planet"}}, ["cache", "scope"]),
        ({"version": 2}, ["version"]),
    ):
        errors = list(validator.iter_errors(bad))
        assert [list(error.absolute_path) for error in errors] == [where], bad


def _cli(*args: str, cwd: Path, pythonpath: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": pythonpath}
    environ["DJANGO_SETTINGS_MODULE"] = "ogem_site.settings.test"
    environ.pop("DATABASE_URL", None)  # a file without organizations needs no database
    return subprocess.run(
        [sys.executable, "-m", "ogem_sdk.cli", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


# A `sitecustomize` that drops the editable install's finder, which would import Ogem's code
# from the checkout whatever PYTHONPATH says: the CLI then sees only the paths the test gives.
NO_EDITABLE_FINDER = (
    "import sys\n"
    "sys.meta_path[:] = [\n"
    "    f for f in sys.meta_path if '__editable__' not in getattr(f, '__module__', '')\n"
    "]\n"
)


def test_ogem_config_check_and_schema(tmp_path: Path) -> None:
    no_editable = tmp_path / "no-editable"
    no_editable.mkdir()
    (no_editable / "sitecustomize.py").write_text(NO_EDITABLE_FINDER)
    with_ogem = os.pathsep.join([str(no_editable), str(REPO), str(REPO / "sdk" / "python")])
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "models:\n  - {name: a, provider: mock}\n  - name: b\n    model: mock/b\n    rpm: x\n"
    )
    checked = _cli("config", "check", str(bad), cwd=tmp_path, pythonpath=with_ogem)
    assert checked.returncode == 1, checked.stderr
    assert checked.stdout.splitlines() == [
        f'{bad}:2:5: error: models[0]: missing required key "model"',
        f"{bad}:5:10: error: models[1].rpm: expected an integer, got a string ('x')",
        f"{bad}: invalid (2 errors, 0 warnings)",
    ]
    litellm = tmp_path / "litellm.yaml"
    litellm.write_text("model_list:\n  - model_name: a\n    litellm_params: {model: mock/a}\n")
    good = _cli("config", "check", str(litellm), cwd=tmp_path, pythonpath=with_ogem)
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.splitlines()[-1].endswith(
        "OK, litellm format, 1 deployment in 1 model group (0 errors, 0 warnings)"
    )

    sdk_only = os.pathsep.join([str(no_editable), str(REPO / "sdk" / "python")])
    alone = _cli("config", "check", str(litellm), cwd=tmp_path, pythonpath=sdk_only)
    assert alone.returncode == 1 and "Ogem's code is not importable here" in alone.stderr

    schema = _cli("config", "schema", cwd=tmp_path, pythonpath=sdk_only)
    assert schema.returncode == 0 and json.loads(schema.stdout) == config_schema()
    _cli("config", "schema", "-o", str(tmp_path / "s.json"), cwd=tmp_path, pythonpath=sdk_only)
    assert json.loads((tmp_path / "s.json").read_text())["title"] == "Ogem configuration"
