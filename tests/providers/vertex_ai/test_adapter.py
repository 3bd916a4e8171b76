"""Vertex AI URLs, publishers and credentials, without the network."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from gateway.errors import InvalidRequestError
from providers.addresses import AddressPolicy
from providers.base import Deployment, Endpoint
from providers.vertex_ai.adapter import VertexAIAdapter
from providers.vertex_ai.auth import credentials_info_parse, deployment_credentials
from tests.emulators.google_identity_api import POOL_AUDIENCE

ADAPTER = VertexAIAdapter()


def _deployment(**fields: object) -> Deployment:
    values: dict = {
        "id": "t:v:0",
        "model_name": "v",
        "provider": "vertex_ai",
        "upstream_model": "gemini-2.0-flash",
        "params": {"vertex_project": "p1"},
    }
    values.update(fields)
    return Deployment(**values)  # type: ignore[arg-type]


def test_regional_global_and_default_endpoints() -> None:
    body = {"messages": [{"role": "user", "content": "x"}]}
    regional = ADAPTER.build_request(
        endpoint=Endpoint.CHAT,
        deployment=_deployment(region="asia-northeast1"),
        body=body,
        stream=True,
    )
    assert regional.url == (
        "https://asia-northeast1-aiplatform.googleapis.com/v1/projects/p1/locations/"
        "asia-northeast1/publishers/google/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    )
    world = ADAPTER.build_request(
        endpoint=Endpoint.CHAT, deployment=_deployment(region="global"), body=body, stream=False
    )
    assert world.url == (
        "https://aiplatform.googleapis.com/v1/projects/p1/locations/global/publishers/google/"
        "models/gemini-2.0-flash:generateContent"
    )
    default = ADAPTER.build_request(
        endpoint=Endpoint.CHAT,
        deployment=_deployment(
            upstream_model="claude-sonnet-4@20250514",
            params={"vertex_project": "p1", "vertex_location": "europe-west1"},
            api_version="v1beta1",
        ),
        body=body,
        stream=False,
    )
    assert default.url == (
        "https://europe-west1-aiplatform.googleapis.com/v1beta1/projects/p1/locations/"
        "europe-west1/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict"
    )
    assert default.json == {
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "x"}],
        "anthropic_version": "vertex-2023-10-16",
    }


def test_a_deployment_without_a_project_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="names no vertex_project"):
        ADAPTER.build_request(
            endpoint=Endpoint.CHAT,
            deployment=_deployment(params={}),
            body={"messages": [{"role": "user", "content": "x"}]},
            stream=False,
        )


def test_service_account_parsing_keeps_the_key_out_of_reprs(vertex_keys: tuple[str, str]) -> None:
    key = {
        "type": "service_account",
        "client_email": "a@p.iam.gserviceaccount.com",
        "private_key": vertex_keys[0],
        "project_id": "p",
    }
    assert credentials_info_parse(orjson.dumps(key).decode()) == {
        **key,
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    credential = deployment_credentials(_deployment(params={"vertex_credentials": key}))
    assert credential is not None and credential.project_id == "p"
    assert "PRIVATE KEY" not in repr(credential)
    assert repr(credential) == "GoogleCredential('the service account a@p.iam.gserviceaccount.com')"
    with pytest.raises(InvalidRequestError, match="lack private_key"):
        credentials_info_parse({"client_email": "a@p"})
    with pytest.raises(InvalidRequestError, match="not a JSON object"):
        credentials_info_parse(["a list"])
    with pytest.raises(InvalidRequestError, match=r"\(authorized_user\) cannot be used"):
        deployment_credentials(
            _deployment(params={"vertex_credentials": {"type": "authorized_user"}})
        )


def test_an_organizations_deployment_uses_only_its_own_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    external = {
        "type": "external_account",
        "audience": POOL_AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "credential_source": {"file": "/etc/hostname"},  # a file of the server's
    }
    tenant = AddressPolicy()
    with pytest.raises(InvalidRequestError, match="must be a service account key"):
        deployment_credentials(
            _deployment(params={"vertex_credentials": external}, address_policy=tenant)
        )
    # Nor the server's own: neither GOOGLE_APPLICATION_CREDENTIALS nor application defaults.
    server_key = tmp_path / "server.json"
    server_key.write_bytes(orjson.dumps(external))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(server_key))
    assert deployment_credentials(_deployment(api_key="ya29.t", address_policy=tenant)) is None
    assert deployment_credentials(_deployment(address_policy=tenant)) is None
    operator = deployment_credentials(_deployment())
    assert operator is not None and operator.label == "the external_account credentials"
