"""Azure OpenAI: deployment URLs, api-version, `api-key` or Entra ID auth; AzureOpenAI SDK too."""

from __future__ import annotations

import openai
import pytest

from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def azure(openai_emulator, install_deployments):  # type: ignore[no-untyped-def]
    install_deployments(
        Deployment(
            id="test:azure-key",
            model_name="azure-gpt",
            provider="azure",
            upstream_model="gpt-4o",
            api_base=openai_emulator.url,
            api_key=UPSTREAM_KEY,
            api_version="2024-10-21",
            params={"deployment": "prod-gpt4o"},
        ),
        Deployment(
            id="test:azure-entra",
            model_name="azure-entra",
            provider="azure",
            upstream_model="gpt-4o-mini",
            api_base=openai_emulator.url + "/",
            params={"azure_ad_token": UPSTREAM_KEY},
        ),
    )
    return openai_emulator


def test_api_key_deployment_url_and_version(sdk: openai.OpenAI, azure) -> None:  # type: ignore[no-untyped-def]
    completion = sdk.chat.completions.create(model="azure-gpt", messages=HELLO, user="u1")
    assert completion.choices[0].message.content == "Emulated reply to: Hello there"
    sent = azure.last
    assert sent.path == "/openai/deployments/prod-gpt4o/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == UPSTREAM_KEY
    assert "authorization" not in sent.headers
    assert sent.json["user"] == "u1"


def test_entra_token_and_default_version(sdk: openai.OpenAI, azure) -> None:  # type: ignore[no-untyped-def]
    embedding = sdk.embeddings.create(model="azure-entra", input="x", encoding_format="float")
    assert len(embedding.data[0].embedding) == 4
    sent = azure.last
    assert sent.path == "/openai/deployments/gpt-4o-mini/embeddings"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "api-key" not in sent.headers


def test_streaming_through_azure(sdk: openai.OpenAI, azure) -> None:  # type: ignore[no-untyped-def]
    chunks = list(sdk.chat.completions.create(model="azure-gpt", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Emulated reply to: Hello there"
    )
    assert azure.last.json["stream_options"] == {"include_usage": True}


def test_azure_sdk_client_against_ogem(live_ogem, master_key, azure) -> None:  # type: ignore[no-untyped-def]
    """Applications written for Azure point AzureOpenAI at Ogem: `api-key` header auth."""
    client = openai.AzureOpenAI(
        base_url=f"{live_ogem.url}/v1",
        api_key=master_key,
        api_version="2024-10-21",
        max_retries=0,
    )
    raw = client.chat.completions.with_raw_response.create(model="azure-gpt", messages=HELLO)
    assert raw.http_request.url.path == "/v1/deployments/azure-gpt/chat/completions"
    assert raw.http_request.headers["api-key"] == master_key
    assert raw.parse().choices[0].message.content == "Emulated reply to: Hello there"
    assert azure.last.path == "/openai/deployments/prod-gpt4o/chat/completions"
    embedded = client.embeddings.create(model="azure-entra", input="x", encoding_format="float")
    assert len(embedded.data[0].embedding) == 4
