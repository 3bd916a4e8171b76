"""The TTL cache: one read per TTL, a re-read after it, the last value kept through an outage."""

from __future__ import annotations

import pytest

from gateway.secrets import (
    SecretManagerError,
    secret_cache_prune,
    secret_manager_resolve,
    secret_refresh_due,
)
from tests.live import wait_for

REF = "secret://vault/kv/openai#api_key"
PATH = "/v1/kv/data/openai"


@pytest.fixture
def stocked(vault, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("VAULT_TOKEN", vault.root_token)
    vault.put("kv", "openai", {"api_key": "sk-1"})
    return vault


def test_read_once_per_ttl(stocked, settings) -> None:
    settings.OGEM_SECRET_TTL = 0.5
    assert [secret_manager_resolve(REF) for _ in range(5)] == ["sk-1"] * 5
    assert stocked.reads(PATH) == 1
    assert not secret_refresh_due()
    stocked.put("kv", "openai", {"api_key": "sk-2"})
    assert secret_manager_resolve(REF) == "sk-1"  # within the TTL: still the cached value
    wait_for(secret_refresh_due, what="the TTL's end")
    assert secret_manager_resolve(REF) == "sk-2"
    assert stocked.reads(PATH) == 2
    assert not secret_refresh_due()


def test_outage_keeps_the_last_value(stocked, settings, caplog) -> None:
    settings.OGEM_SECRET_TTL = 0.2
    assert secret_manager_resolve(REF) == "sk-1"
    wait_for(secret_refresh_due, what="the TTL's end")
    stocked.fail_with = 503
    with caplog.at_level("WARNING", logger="ogem.secrets"):
        assert secret_manager_resolve(REF) == "sk-1"
    assert [r.getMessage() for r in caplog.records if r.name == "ogem.secrets"] == [
        "secret refresh failed, the cached value stays in use: "
        f'"{REF}": Vault answered 503 (an unexpected answer)'
    ]
    assert "sk-1" not in caplog.text
    stocked.fail_with = None
    wait_for(secret_refresh_due, what="the retry's time")  # min(TTL, 30 s) after the failure
    stocked.put("kv", "openai", {"api_key": "sk-2"})
    assert secret_manager_resolve(REF) == "sk-2"


def test_outage_without_a_cached_value_fails(stocked) -> None:
    stocked.fail_with = 503
    with pytest.raises(SecretManagerError, match=r"Vault answered 503"):
        secret_manager_resolve(REF)


def test_prune_forgets_what_is_no_longer_read(stocked, settings) -> None:
    settings.OGEM_SECRET_TTL = 0.1
    secret_manager_resolve(REF)
    wait_for(secret_refresh_due, what="the TTL's end")
    secret_cache_prune()
    assert not secret_refresh_due()
    assert secret_manager_resolve(REF) == "sk-1"
    assert stocked.reads(PATH) == 2
