"""Secret manager emulators (real sockets) and the environment that points Ogem at them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.secrets import secret_cache_clear
from tests.emulators.azure_keyvault_api import AzureKeyVaultEmulator
from tests.emulators.gcp_secrets_api import GcpSecretsEmulator
from tests.emulators.google_identity_api import GoogleIdentityEmulator
from tests.emulators.vault_api import VaultEmulator
from tests.live import free_port

MANAGER_ENV = (
    "VAULT_ADDR",
    "VAULT_TOKEN",
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID",
    "VAULT_NAMESPACE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCE_METADATA_HOST",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
)


@pytest.fixture(autouse=True)
def _fresh_secrets(monkeypatch) -> Iterator[None]:
    for name in MANAGER_ENV:
        monkeypatch.delenv(name, raising=False)
    secret_cache_clear()
    yield
    secret_cache_clear()


@pytest.fixture
def vault(monkeypatch) -> Iterator[VaultEmulator]:
    emulator = VaultEmulator().start()
    monkeypatch.setenv("VAULT_ADDR", emulator.url)
    yield emulator
    emulator.stop()


@pytest.fixture
def gcp(monkeypatch) -> Iterator[GcpSecretsEmulator]:
    emulator = GcpSecretsEmulator().start()
    monkeypatch.setenv("OGEM_GCP_SECRETMANAGER_URL", emulator.url)
    yield emulator
    emulator.stop()


@pytest.fixture
def gcp_identity(gcp: GcpSecretsEmulator) -> Iterator[GoogleIdentityEmulator]:
    """The metadata server and STS, issuing tokens Secret Manager's emulator accepts."""
    emulator = GoogleIdentityEmulator(issue=gcp.issue_token, project="test-project").start()
    yield emulator  # type: ignore[misc]
    emulator.stop()


@pytest.fixture
def gcp_service_account(gcp: GcpSecretsEmulator, tmp_path: Path, monkeypatch) -> Path:
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(gcp.service_account()))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    return path


@pytest.fixture
def azure(monkeypatch) -> Iterator[AzureKeyVaultEmulator]:
    emulator = AzureKeyVaultEmulator().start()
    monkeypatch.setenv("OGEM_AZURE_KEYVAULT_URL", f"{emulator.url}/{{vault}}")
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", emulator.url)
    monkeypatch.setenv("AZURE_TENANT_ID", emulator.tenant)
    monkeypatch.setenv("AZURE_CLIENT_ID", emulator.client_id)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", emulator.client_secret)
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """moto in server mode: AWS Secrets Manager over HTTP, SigV4-signed requests and all."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/moto-api/", timeout=2)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError("moto_server did not start")
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def aws(moto_server: str, monkeypatch):  # type: ignore[no-untyped-def]
    """A botocore Secrets Manager client on moto, with Ogem's environment pointed there too."""
    import botocore.session

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAOGEMTEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ogem-test-secret")
    httpx.post(f"{moto_server}/moto-api/reset")
    session = botocore.session.get_session()
    return session.create_client(
        "secretsmanager",
        region_name="eu-west-1",
        endpoint_url=moto_server,
        aws_access_key_id="AKIAOGEMTEST",
        aws_secret_access_key="ogem-test-secret",
    )
