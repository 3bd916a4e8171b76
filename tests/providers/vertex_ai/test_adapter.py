"""Vertex AI URLs, publishers and credentials, without the network."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidRequestError
from providers.base import Deployment, Endpoint
from providers.vertex_ai.adapter import VertexAIAdapter
from providers.vertex_ai.auth import ServiceAccount, service_account_parse

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


def test_service_account_parsing_keeps_the_key_out_of_its_repr() -> None:
    account = service_account_parse(
        '{"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com", '
        '"private_key": "-----BEGIN PRIVATE KEY-----secret", "project_id": "p"}'
    )
    assert account == ServiceAccount(
        client_email="a@p.iam.gserviceaccount.com",
        private_key="-----BEGIN PRIVATE KEY-----secret",
        private_key_id="",
        token_uri="https://oauth2.googleapis.com/token",
        project_id="p",
    )
    assert "secret" not in repr(account)
    with pytest.raises(InvalidRequestError, match="lack private_key"):
        service_account_parse({"client_email": "a@p"})
    with pytest.raises(InvalidRequestError, match="not a service account"):
        service_account_parse({"type": "authorized_user"})
