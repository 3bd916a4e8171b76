"""Rotation end to end: a deployment's key lives in Vault; rotating it there reaches the upstream
after the TTL, through the configuration watcher, with no restart. And check_config resolves
secret references (or only checks their syntax with --skip-secrets)."""

from __future__ import annotations

import time
from collections.abc import Callable
from io import StringIO

import openai
import pytest
from django.core.management import call_command

from gateway import registry as deployment_registry
from gateway.config import config_watch_stop
from gateway.registry import registry_install, registry_load_initial
from tests.emulators.fixtures import UPSTREAM_KEY

CONFIG = """
models:
  - name: rotated
    provider: openai
    model: gpt-4o-mini
    api_base: {api_base}
    api_key: secret://vault/kv/openai#api_key
"""


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.live
def test_rotated_secret_reaches_upstream_without_restart(
    live_ogem, master_key, openai_emulator, vault, settings, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault.root_token)
    vault.put("kv", "openai", {"api_key": "sk-upstream-old"})
    openai_emulator.api_key = "sk-upstream-old"
    path = tmp_path / "ogem.yaml"
    path.write_text(CONFIG.format(api_base=f"{openai_emulator.url}/v1"))
    settings.OGEM_CONFIG = str(path)
    settings.OGEM_CONFIG_WATCH = True
    settings.OGEM_CONFIG_POLL_SECONDS = 0.2
    settings.OGEM_SECRET_TTL = 1.5
    previous = deployment_registry._current
    loaded_at = time.monotonic()  # the first read of the secret comes after this
    registry_install(registry_load_initial(), source="test")
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)

    def ask() -> str:
        reply = client.chat.completions.create(
            model="rotated", messages=[{"role": "user", "content": "hi"}]
        )
        return reply.choices[0].message.content or ""

    try:
        assert ask()
        assert openai_emulator.last.headers["authorization"] == "Bearer sk-upstream-old"

        vault.put("kv", "openai", {"api_key": "sk-upstream-new"})
        openai_emulator.api_key = "sk-upstream-new"  # the provider now refuses the old key

        def upstream_took_new_key() -> bool:
            try:
                ask()
            except openai.APIStatusError:
                return False
            return openai_emulator.last.headers["authorization"] == "Bearer sk-upstream-new"

        assert _wait_for(upstream_took_new_key)
        # Not before the TTL: the cache held the old value until then.
        assert time.monotonic() - loaded_at >= 1.5
        time.sleep(1.0)
        elapsed = time.monotonic() - loaded_at
        # About one read per TTL (the watcher polls every 0.2 s, but reads only what is due).
        assert 2 <= vault.reads("/v1/kv/data/openai") <= elapsed / 1.5 + 2
    finally:
        openai_emulator.api_key = UPSTREAM_KEY  # the emulator is shared by the session
        config_watch_stop()
        deployment_registry._current = previous


def _check(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("check_config", *args, stdout=out, no_color=True)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


@pytest.mark.django_db
def test_check_config_resolves_secret_references(vault, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault.root_token)
    vault.put("kv", "openai", {"api_key": "sk-checked"})
    path = tmp_path / "ogem.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: a\n"
        "    litellm_params: {model: openai/a, api_key: 'secret://vault/kv/openai#api_key'}\n"
        "  - model_name: b\n"
        "    litellm_params: {model: openai/b, api_key: 'secret://vault/kv/absent#api_key'}\n"
        "  - model_name: c\n"
        "    litellm_params: {model: openai/c, api_key: 'secret://vault/nomount'}\n"
    )
    code, out = _check(str(path))
    assert code == 1
    assert out.splitlines() == [
        f'{path}:5:48: error: model_list[1].litellm_params.api_key: "secret://vault/kv/absent'
        '#api_key": Vault answered 404 (no such secret)',
        f'{path}:7:48: error: model_list[2].litellm_params.api_key: "secret://vault/nomount": '
        "a Vault reference is secret://vault/<mount>/<path>#<field>",
        f"{path}: invalid (2 errors, 0 warnings)",
    ]
    assert "sk-checked" not in out
    reads = len(vault.requests)
    code, out = _check(str(path), "--skip-secrets")
    assert code == 1
    assert out.splitlines() == [
        f'{path}:7:48: error: model_list[2].litellm_params.api_key: "secret://vault/nomount": '
        "a Vault reference is secret://vault/<mount>/<path>#<field>",
        f"{path}: invalid (1 error, 0 warnings)",
    ]
    assert len(vault.requests) == reads  # nothing was read
