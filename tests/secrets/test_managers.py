"""Each secret manager against its emulator over a real socket: auth, fields, errors."""

from __future__ import annotations

import json

import httpx
import pytest

from gateway.secrets import SecretManagerError, secret_cache_clear, secret_manager_resolve
from tests.emulators.google_identity_api import metadata_server_at


# -- HashiCorp Vault ---------------------------------------------------------------------------
def test_vault_token_and_fields(vault, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", vault.root_token)
    vault.put("kv", "openai", {"api_key": "sk-vault-1", "org": "org-1"})
    vault.put("kv", "single", {"token": "only-one"})
    assert secret_manager_resolve("secret://vault/kv/openai#api_key") == "sk-vault-1"
    assert secret_manager_resolve("secret://vault/kv/openai#org") == "org-1"
    assert secret_manager_resolve("secret://vault/kv/single") == "only-one"
    with pytest.raises(SecretManagerError, match=r"holds several fields; name one with #field"):
        secret_manager_resolve("secret://vault/kv/openai")
    with pytest.raises(SecretManagerError, match=r'the secret has no field "nope"'):
        secret_manager_resolve("secret://vault/kv/openai#nope")
    with pytest.raises(SecretManagerError, match=r"Vault answered 404 \(no such secret\)"):
        secret_manager_resolve("secret://vault/kv/absent#api_key")
    read = vault.requests[0]
    assert (read.method, read.path) == ("GET", "/v1/kv/data/openai")
    assert read.headers["X-Vault-Token"] == vault.root_token


def test_vault_refuses_a_wrong_token_without_echoing_it(vault, monkeypatch) -> None:
    monkeypatch.setenv("VAULT_TOKEN", "hvs.not-a-real-token")
    vault.put("kv", "openai", {"api_key": "sk-vault-1"})
    with pytest.raises(SecretManagerError) as caught:
        secret_manager_resolve("secret://vault/kv/openai#api_key")
    assert str(caught.value) == (
        '"secret://vault/kv/openai#api_key": Vault answered 403 (access denied)'
    )


def test_vault_approle_logs_in_once_and_again_when_revoked(vault, monkeypatch) -> None:
    role_id, secret_id = vault.approle()
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", secret_id)
    vault.put("kv", "a", {"k": "value-a"})
    vault.put("kv", "b", {"k": "value-b"})
    assert secret_manager_resolve("secret://vault/kv/a#k") == "value-a"
    assert secret_manager_resolve("secret://vault/kv/b#k") == "value-b"
    logins = [r for r in vault.requests if r.path == "/v1/auth/approle/login"]
    assert len(logins) == 1
    assert json.loads(logins[0].body) == {"role_id": role_id, "secret_id": secret_id}
    vault.revoke_tokens()
    vault.put("kv", "c", {"k": "value-c"})
    assert secret_manager_resolve("secret://vault/kv/c#k") == "value-c"
    assert len([r for r in vault.requests if r.path == "/v1/auth/approle/login"]) == 2


def test_vault_approle_bad_secret_id(vault, monkeypatch) -> None:
    role_id, _ = vault.approle()
    monkeypatch.setenv("VAULT_ROLE_ID", role_id)
    monkeypatch.setenv("VAULT_SECRET_ID", "wrong")
    with pytest.raises(SecretManagerError, match=r"Vault AppRole login answered 400"):
        secret_manager_resolve("secret://vault/kv/a#k")


def test_vault_without_address_or_credentials(monkeypatch) -> None:
    with pytest.raises(SecretManagerError, match=r"VAULT_ADDR is not set"):
        secret_manager_resolve("secret://vault/kv/a#k")
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")
    with pytest.raises(SecretManagerError, match=r"set VAULT_TOKEN, or VAULT_ROLE_ID"):
        secret_manager_resolve("secret://vault/kv/a#k")
    monkeypatch.setenv("VAULT_TOKEN", "t")
    with pytest.raises(SecretManagerError, match=r"Vault is unreachable \(ConnectError\)"):
        secret_manager_resolve("secret://vault/kv/a#k")


# -- AWS Secrets Manager (moto server mode) ----------------------------------------------------
def test_aws_string_json_and_binary(aws) -> None:
    aws.create_secret(Name="prod/openai", SecretString=json.dumps({"api_key": "sk-aws-1"}))
    aws.create_secret(Name="plain", SecretString="sk-plain")
    aws.create_secret(Name="binary", SecretBinary=b"sk-binary")
    assert secret_manager_resolve("secret://aws/prod/openai#api_key") == "sk-aws-1"
    assert secret_manager_resolve("secret://aws/plain") == "sk-plain"
    assert secret_manager_resolve("secret://aws/binary") == "sk-binary"
    with pytest.raises(SecretManagerError, match=r"is not a JSON object, so it has no field"):
        secret_manager_resolve("secret://aws/plain#api_key")
    with pytest.raises(SecretManagerError, match=r"AWS Secrets Manager: no such secret"):
        secret_manager_resolve("secret://aws/absent")


def test_aws_reads_the_current_version_after_rotation(aws, settings) -> None:
    settings.OGEM_SECRET_TTL = 0
    aws.create_secret(Name="rotating", SecretString="sk-old")
    assert secret_manager_resolve("secret://aws/rotating") == "sk-old"
    aws.put_secret_value(SecretId="rotating", SecretString="sk-new")
    assert secret_manager_resolve("secret://aws/rotating") == "sk-new"


# -- Google Secret Manager ---------------------------------------------------------------------
REFUSED = r"Google refused the credentials \(invalid_grant\)"


def test_gcp_service_account(gcp, gcp_service_account) -> None:
    gcp.add_version("p", "openai", "sk-gcp-1")
    gcp.add_version("p", "openai", json.dumps({"api_key": "sk-gcp-2"}))
    assert secret_manager_resolve("secret://gcp/projects/p/secrets/openai/versions/1") == (
        "sk-gcp-1"
    )
    assert secret_manager_resolve("secret://gcp/projects/p/secrets/openai#api_key") == "sk-gcp-2"
    with pytest.raises(SecretManagerError, match=r"Google Secret Manager answered 404"):
        secret_manager_resolve("secret://gcp/projects/p/secrets/absent")
    assert [r.path for r in gcp.requests if r.path == "/token"] == ["/token"]  # token reused
    access = gcp.requests[-1]
    assert access.path == "/v1/projects/p/secrets/absent/versions/latest:access"
    assert access.headers["Authorization"].startswith("Bearer ya29.")


def test_gcp_refuses_a_key_it_does_not_know(gcp, tmp_path, monkeypatch) -> None:
    from tests.emulators.gcp_secrets_api import GcpSecretsEmulator

    stranger = GcpSecretsEmulator()  # another key pair, same token_uri
    stranger.url = gcp.url
    path = tmp_path / "stranger.json"
    path.write_text(json.dumps(stranger.service_account()))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    gcp.add_version("p", "openai", "sk-gcp-1")
    with pytest.raises(
        SecretManagerError, match=r"Google refused the credentials \(invalid_grant\)"
    ):
        secret_manager_resolve("secret://gcp/projects/p/secrets/openai")


def test_gcp_metadata_server(gcp, gcp_identity) -> None:
    gcp.add_version("p", "openai", "sk-from-metadata")
    with metadata_server_at(gcp_identity):
        assert secret_manager_resolve("secret://gcp/projects/p/secrets/openai") == (
            "sk-from-metadata"
        )
    (token_call,) = [r for r in gcp_identity.requests if r.path.endswith("/default/token")]
    assert token_call.headers["Metadata-Flavor"] == "Google"
    without = httpx.get(f"{gcp_identity.url}{token_call.path}")
    assert without.status_code == 403  # the emulator checks the header like the real one


def test_gcp_workload_identity_federation(gcp, gcp_identity, tmp_path, monkeypatch) -> None:
    token_file = tmp_path / "oidc-token"
    token_file.write_text(gcp_identity.subject_token)
    config = tmp_path / "external-account.json"
    config.write_text(json.dumps(gcp_identity.external_account(str(token_file))))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(config))
    gcp.add_version("p", "openai", "sk-from-federation")
    assert secret_manager_resolve("secret://gcp/projects/p/secrets/openai") == "sk-from-federation"
    (exchange,) = gcp_identity.requests
    assert exchange.path == "/v1/token"
    token_file.write_text("a token STS does not know")
    secret_cache_clear()
    with pytest.raises(
        SecretManagerError, match=r"Google refused the credentials \(invalid_grant\)"
    ):
        secret_manager_resolve("secret://gcp/projects/p/secrets/openai")


# -- Azure Key Vault ---------------------------------------------------------------------------
def test_azure_client_credentials(azure) -> None:
    azure.set_secret("myvault", "openai-key", "sk-azure-1")
    azure.set_secret("myvault", "openai-key", "sk-azure-2")
    assert secret_manager_resolve("secret://azure/myvault/openai-key") == "sk-azure-2"
    assert secret_manager_resolve("secret://azure/myvault/openai-key/v1") == "sk-azure-1"
    with pytest.raises(SecretManagerError, match=r"Azure Key Vault answered 404"):
        secret_manager_resolve("secret://azure/myvault/absent")
    tokens = [r for r in azure.requests if r.path.endswith("/oauth2/v2.0/token")]
    assert len(tokens) == 1
    read = next(r for r in azure.requests if r.path == "/myvault/secrets/openai-key")
    assert read.query == {"api-version": "7.4"}
    unauthenticated = httpx.get(f"{azure.url}/myvault/secrets/openai-key?api-version=7.4")
    assert unauthenticated.status_code == 401
    assert "WWW-Authenticate" in unauthenticated.headers


def test_azure_wrong_client_secret(azure, monkeypatch) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "wrong")
    azure.set_secret("myvault", "openai-key", "sk-azure-1")
    with pytest.raises(SecretManagerError) as caught:
        secret_manager_resolve("secret://azure/myvault/openai-key")
    assert str(caught.value) == (
        '"secret://azure/myvault/openai-key": Entra ID answered 401 (authentication failed)'
    )


# -- environment and mounted files -------------------------------------------------------------
def test_env_and_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("R2G_KEY", "sk-env")
    mounted = tmp_path / "key"
    mounted.write_text("sk-file\n")
    assert secret_manager_resolve("secret://env/R2G_KEY") == "sk-env"
    assert secret_manager_resolve(f"secret://file/{mounted}") == "sk-file"
    with pytest.raises(SecretManagerError, match=r"environment variable R2G_ABSENT is not set"):
        secret_manager_resolve("secret://env/R2G_ABSENT")
