"""`python manage.py check_config FILE`."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
PALM_GONE = "Google shut the PaLM API down in 2024; use gemini/ (e.g. gemini/gemini-2.0-flash)"


def _run(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("check_config", *args, stdout=out, no_color=True)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_valid_file_with_warnings_exits_zero(write_config) -> None:
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
          - model_name: a
            litellm_params: {model: mock/a2}
          - model_name: b
            litellm_params: {model: mock/b}
        litellm_settings:
          set_verbose: true
        """
    )
    code, output = _run(path)
    assert code == 0
    assert output.splitlines() == [
        f"{path}:9:3: warning: litellm_settings.set_verbose: ignored: use OGEM_LOG_LEVEL",
        f"{path}: OK, litellm format, 3 deployments in 2 model groups (0 errors, 1 warning)",
    ]


def test_errors_exit_non_zero(write_config, monkeypatch) -> None:
    monkeypatch.delenv("H3_NOPE", raising=False)
    path = write_config(
        """
        models:
          - name: a
            provider: mock
            model: a
            api_key: os.environ/H3_NOPE
            rpm: -5
        """
    )
    code, output = _run(path)
    assert code == 1
    assert output.splitlines() == [
        f"{path}:5:14: error: models[0].api_key: environment variable H3_NOPE is not set",
        f"{path}:6:10: error: models[0].rpm: must be at least 0, got -5",
        f"{path}: invalid (2 errors, 0 warnings)",
    ]
    code, output = _run(path, "--skip-secrets")
    assert code == 1
    assert output.splitlines()[-1] == f"{path}: invalid (1 error, 0 warnings)"


def test_missing_file(tmp_path) -> None:
    path = str(tmp_path / "absent.yaml")
    code, output = _run(path)
    assert code == 1
    assert output.splitlines() == [
        f"{path}: error: cannot read configuration file: No such file or directory",
        f"{path}: invalid (1 error, 0 warnings)",
    ]


def test_real_process_exit_code(write_config, tmp_path) -> None:
    bad = write_config("models:\n  - {name: a, provider: mock}\n")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ogem_site.settings.test"}
    env["OGEM_VAR_DIR"] = str(tmp_path / "var")
    env.pop("DATABASE_URL", None)  # the command needs no database for a file without orgs
    result = subprocess.run(
        [sys.executable, "manage.py", "check_config", bad],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f'{bad}:2:5: error: models[0]: missing required key "model"',
        f"{bad}: invalid (1 error, 0 warnings)",
    ]


def test_fallbacks_to_unknown_groups_and_provider_typos_are_flagged(write_config) -> None:
    path = write_config(
        """
        model_list:
          - model_name: main
            litellm_params: {model: mock/main}
          - model_name: spare
            litellm_params: {model: opnai/gpt-4o-mini}
        router_settings:
          model_group_alias: {backup: spare}
          fallbacks: [{main: [backup, sparre]}]
          default_fallbacks: [spare, nowhere]
        """
    )
    code, output = _run(path)
    assert code == 0
    lines = output.splitlines()
    assert any(
        "warning" in line
        and '"opnai" is not a known provider; did you mean "openai/gpt-4o-mini"?' in line
        for line in lines
    ), output
    assert sum('"sparre" is not a model group' in line for line in lines) == 1, output
    assert sum('"nowhere" is not a model group' in line for line in lines) == 1, output
    # Groups and aliases the file defines are not flagged.
    assert not any('"backup" is not' in line or '"main" is not' in line for line in lines)


def test_keys_lists_each_litellm_key_as_used_translated_or_ignored(write_config) -> None:
    path = write_config(
        """
        model_list:
          - model_name: fast
            litellm_params:
              model: cohere_chat/command-r-plus
              api_base: https://api.cohere.ai/v1/chat
              order: 2
              temperature: 0.2
            model_info:
              input_cost_per_token: 0.000001
              max_input_tokens: 128000
          - model_name: sm
            litellm_params:
              model: palm/chat-bison
        litellm_settings:
          set_verbose: true
          num_retries: 2
        """
    )
    code, output = _run(path, "--keys")
    assert code == 0
    assert output.splitlines() == [
        f'{path}:11:5: warning: model_list[1]: provider "palm" is not served: {PALM_GONE}; '
        "deployment skipped",
        f"{path}:15:3: warning: litellm_settings.set_verbose: ignored: use OGEM_LOG_LEVEL",
        f"{path}:1:1: used: model_list",
        f"{path}:2:5: used: model_list[0].model_name (the public model name)",
        f"{path}:3:5: used: model_list[0].litellm_params",
        f'{path}:4:7: translated: model_list[0].litellm_params.model (provider "cohere", '
        'upstream model "command-r-plus")',
        f"{path}:5:7: used: model_list[0].litellm_params.api_base (the upstream base URL)",
        f"{path}:6:7: translated: model_list[0].litellm_params.order (priority)",
        f"{path}:7:7: used: model_list[0].litellm_params.temperature (a deployment parameter, "
        "for its adapter)",
        f"{path}:8:5: used: model_list[0].model_info",
        f"{path}:9:7: translated: model_list[0].model_info.input_cost_per_token (the "
        "deployment's price, in spend and budgets)",
        f"{path}:10:7: used: model_list[0].model_info.max_input_tokens (the context size of "
        "pre-call checks; shown by /model/info)",
        f'{path}:11:5: ignored: model_list[1].model_name (provider "palm" is not served: '
        f"{PALM_GONE}; deployment skipped)",
        f"{path}:12:5: used: model_list[1].litellm_params",
        f'{path}:13:7: translated: model_list[1].litellm_params.model (provider "palm", '
        'upstream model "chat-bison")',
        f"{path}:14:1: used: litellm_settings",
        f"{path}:15:3: ignored: litellm_settings.set_verbose (ignored: use OGEM_LOG_LEVEL)",
        f"{path}:16:3: used: litellm_settings.num_retries",
        f"{path}: OK, litellm format, 1 deployment in 1 model group (0 errors, 2 warnings)",
    ]


def test_litellm_keys_with_an_ogem_counterpart_name_it(write_config) -> None:
    path = write_config(
        """
        model_list:
          - model_name: fast
            litellm_params:
              model: openai/gpt-4o-mini
            model_info:
              base_model: gpt-4o-mini
        router_settings:
          enable_pre_call_checks: true
        litellm_settings:
          max_budget: 100
        general_settings:
          max_request_size_mb: 10
          database_connection_pool_limit: 20
          store_model_in_db: true
        """
    )
    code, output = _run(path, "--keys")
    assert code == 0
    lines = output.splitlines()
    assert (
        f"{path}:6:7: translated: model_list[0].model_info.base_model (the model whose table "
        "price the deployment is charged)"
    ) in lines
    assert f"{path}:8:3: used: router_settings.enable_pre_call_checks" in lines
    assert (
        f"{path}:10:3: ignored: litellm_settings.max_budget (ignored: give organizations, teams, "
        "users or keys budgets (/budget/new, /api/v1/budgets))"
    ) in lines
    assert (
        f"{path}:12:3: ignored: general_settings.max_request_size_mb (ignored: use "
        "OGEM_MAX_REQUEST_BYTES)"
    ) in lines
    assert (
        f"{path}:13:3: ignored: general_settings.database_connection_pool_limit (ignored: use "
        "OGEM_DB_POOL_MAX)"
    ) in lines
    assert any("general_settings.store_model_in_db (ignored: Ogem always" in line for line in lines)
    assert not any("unknown key" in line for line in lines)
