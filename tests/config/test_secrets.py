"""Secret references: os.environ/NAME, file:///path, and secret:// (tests/secrets covers more)."""

from __future__ import annotations

import pytest

from gateway.config import config_check
from gateway.config.secrets import SecretError, secret_resolve

pytestmark = pytest.mark.django_db


def test_secret_resolve_each_scheme(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("H3_SECRET", "from-env")
    secret_file = tmp_path / "key"
    secret_file.write_text("from-file\n")
    assert secret_resolve("os.environ/H3_SECRET") == "from-env"
    assert secret_resolve(f"file://{secret_file}") == "from-file"
    assert secret_resolve("plain-value") == "plain-value"
    monkeypatch.delenv("H3_SECRET")
    assert secret_resolve("os.environ/H3_SECRET", environ={"H3_SECRET": "fallback"}) == "fallback"
    with pytest.raises(SecretError, match=r"^environment variable H3_SECRET is not set$"):
        secret_resolve("os.environ/H3_SECRET")
    with pytest.raises(SecretError, match=r"a Vault reference is secret://vault/<mount>/<path>"):
        secret_resolve("secret://vault/openai")


def test_reference_errors_carry_locations(write_config, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("H3_MISSING", raising=False)
    key_file = tmp_path / "openai.key"
    key_file.write_text("sk-mounted\n")
    path = write_config(
        f"""
        model_list:
          - model_name: a
            litellm_params:
              model: openai/a
              api_key: os.environ/H3_MISSING
          - model_name: b
            litellm_params:
              model: openai/b
              api_key: file://{tmp_path}/absent.key
          - model_name: c
            litellm_params:
              model: openai/c
              api_key: secret://vault/openai
          - model_name: d
            litellm_params:
              model: openai/d
              api_key: file://relative/path
          - model_name: e
            litellm_params:
              model: openai/e
              api_key: file://{key_file}
              extra_headers:
                X-Token: os.environ/H3_MISSING
        """
    )
    config, problems = config_check(path)
    assert config is None
    assert [str(p) for p in problems] == [
        f"{path}:5:16: error: model_list[0].litellm_params.api_key: "
        "environment variable H3_MISSING is not set",
        f"{path}:9:16: error: model_list[1].litellm_params.api_key: "
        f"cannot read secret file {tmp_path}/absent.key: No such file or directory",
        f'{path}:13:16: error: model_list[2].litellm_params.api_key: "secret://vault/openai": '
        "a Vault reference is secret://vault/<mount>/<path>#<field>",
        f'{path}:17:16: error: model_list[3].litellm_params.api_key: "file://relative/path" must '
        "be an absolute file URL (file:///path)",
        f"{path}:23:18: error: model_list[4].litellm_params.extra_headers.X-Token: "
        "environment variable H3_MISSING is not set",
    ]


def test_mounted_secret_file_and_params_references(write_config, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("H3_TOKEN", "tok")
    key_file = tmp_path / "openai.key"
    key_file.write_text("sk-mounted\n")
    path = write_config(
        f"""
        models:
          - name: e
            provider: openai
            model: e
            api_key: file://{key_file}
            params:
              extra_headers: {{X-Token: os.environ/H3_TOKEN}}
        """
    )
    config, problems = config_check(path)
    assert problems == []
    assert config is not None
    (deployment,) = config.deployments
    assert deployment.api_key == "sk-mounted"
    assert deployment.params == {"extra_headers": {"X-Token": "tok"}}
    assert "sk-mounted" not in repr(deployment)


def test_skip_secrets_checks_syntax_only(write_config, monkeypatch) -> None:
    monkeypatch.delenv("H3_MISSING", raising=False)
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params:
              model: openai/a
              api_key: os.environ/H3_MISSING
          - model_name: b
            litellm_params:
              model: openai/b
              api_key: secret://vault/b
        """
    )
    _, problems = config_check(path, resolve_secrets=False)
    assert [str(p) for p in problems] == [
        f'{path}:9:16: error: model_list[1].litellm_params.api_key: "secret://vault/b": '
        "a Vault reference is secret://vault/<mount>/<path>#<field>"
    ]
