from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from providers.base import Deployment
from providers.vertex_ai.auth import tokens_forget
from tests.emulators.vertex_api import CLIENT_EMAIL, PROJECT, VertexEmulator


def _pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="session")
def vertex_keys() -> tuple[str, str]:
    """The service account's key pair: (private PEM, public PEM)."""
    return _pem_pair()


@pytest.fixture(scope="session")
def _vertex_server(vertex_keys: tuple[str, str]) -> VertexEmulator:
    return VertexEmulator(public_key=vertex_keys[1]).start()


@pytest.fixture
def vertex_emulator(_vertex_server: VertexEmulator) -> Iterator[VertexEmulator]:
    _vertex_server.reset()
    tokens_forget()
    yield _vertex_server
    _vertex_server.reset()
    tokens_forget()


@pytest.fixture
def service_account(
    vertex_keys: tuple[str, str], vertex_emulator: VertexEmulator
) -> dict[str, Any]:
    """A service-account key file's content, with its token URI at the emulator."""
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "kid-emulator-1",
        "private_key": vertex_keys[0],
        "client_email": CLIENT_EMAIL,
        "client_id": "1234567890",
        "token_uri": vertex_emulator.token_uri,
    }


@pytest.fixture
def vertex_gemini(vertex_emulator: VertexEmulator, service_account: dict[str, Any]) -> Deployment:
    return Deployment(
        id="test:vertex-gemini:0",
        model_name="vertex-gemini",
        provider="vertex_ai",
        upstream_model="gemini-2.0-flash",
        api_base=vertex_emulator.url,
        region="europe-west4",
        params={"vertex_credentials": service_account},
    )


@pytest.fixture
def vertex_claude(vertex_emulator: VertexEmulator, service_account: dict[str, Any]) -> Deployment:
    return Deployment(
        id="test:vertex-claude:0",
        model_name="vertex-claude",
        provider="vertex_ai",
        upstream_model="claude-3-5-haiku@20241022",
        api_base=vertex_emulator.url,
        region="us-east5",
        params={"vertex_credentials": service_account, "vertex_project": PROJECT},
    )
