"""LiteLLM's OpenAI routes without `/v1` (`/chat/completions`, `/embeddings`, `/models`, ...) are
their /v1 twins, and `mock_response` (allowed per key) answers on /v1/responses and /v1/messages
as it does on chat."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx
import openai
import pytest

from gateway.asgi import v1_twin
from tests.emulators.openai_api import OpenAIEmulator
from tests.live import LiveServer

pytestmark = pytest.mark.live


@pytest.mark.parametrize(
    ("path", "twin"),
    [
        ("/chat/completions", "/v1/chat/completions"),
        ("/completions", "/v1/completions"),
        ("/embeddings", "/v1/embeddings"),
        ("/models", "/v1/models"),
        ("/models/mock-chat", "/v1/models/mock-chat"),
        ("/moderations", "/v1/moderations"),
        ("/images/generations", "/v1/images/generations"),
        ("/audio/transcriptions", "/v1/audio/transcriptions"),
        ("/rerank", "/v1/rerank"),
        ("/responses", "/v1/responses"),
        ("/responses/resp_1/input_items", "/v1/responses/resp_1/input_items"),
        ("/files", "/v1/files"),
        ("/batches/batch_1", "/v1/batches/batch_1"),
        # The portal's pages and everything else stay where they are.
        ("/models/", None),
        ("/batches/", None),
        ("/key/generate", None),
        ("/", None),
        ("/chatty", None),
    ],
)
def test_v1_twin(path: str, twin: str | None) -> None:
    assert v1_twin(path) == twin


def test_the_sdk_without_v1_reaches_the_same_routes(live_ogem: LiveServer, master_key: str) -> None:
    client = openai.OpenAI(base_url=live_ogem.url, api_key=master_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="mock-chat", messages=[{"role": "user", "content": "Hi"}]
    )
    assert raw.http_request.url.path == "/chat/completions"
    assert raw.parse().choices[0].message.content == "Mock reply to: Hi"
    chunks = list(
        client.chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Mock reply to: Hi"
    )
    assert "mock-chat" in [m.id for m in client.models.list()]
    anonymous = httpx.post(f"{live_ogem.url}/chat/completions", json={}, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["type"] == "authentication_error"
    # The portal's /models/ page is still the portal's (a sign-in redirect, not JSON).
    page = httpx.get(f"{live_ogem.url}/models/", timeout=10)
    assert page.status_code == 302


@pytest.fixture
def emulated(emulated_model: Callable[..., OpenAIEmulator]) -> OpenAIEmulator:
    return emulated_model()


def _keys(live_ogem: LiveServer, master_key: str) -> tuple[str, str]:
    proxy = httpx.Client(
        base_url=live_ogem.url, headers={"Authorization": f"Bearer {master_key}"}, timeout=30
    )
    org = proxy.post("/organization/new", json={"organization_alias": "mocks"}).json()
    allowed = proxy.post(
        "/key/generate",
        json={"organization_id": org["organization_id"], "metadata": {"allow_mock_response": True}},
    ).json()["key"]
    plain = proxy.post("/key/generate", json={"organization_id": org["organization_id"]}).json()
    return allowed, plain["key"]


def test_mock_response_on_responses(
    live_ogem: LiveServer, master_key: str, emulated: OpenAIEmulator
) -> None:
    allowed, plain = _keys(live_ogem, master_key)
    body = {"model": "emulated", "input": "hi", "mock_response": "canned answer", "store": False}
    mocked = httpx.post(
        f"{live_ogem.url}/v1/responses",
        json=body,
        headers={"Authorization": f"Bearer {allowed}"},
        timeout=30,
    )
    assert mocked.status_code == 200, mocked.text
    assert mocked.json()["output"][0]["content"][0]["text"] == "canned answer"
    assert emulated.requests == []
    refused = httpx.post(
        f"{live_ogem.url}/v1/responses",
        json=body,
        headers={"Authorization": f"Bearer {plain}"},
        timeout=30,
    )
    assert refused.status_code == 200, refused.text
    assert len(emulated.requests) == 1
    assert "mock_response" not in emulated.requests[0].json


def test_mock_response_on_messages(
    live_ogem: LiveServer, master_key: str, emulated: OpenAIEmulator
) -> None:
    allowed, plain = _keys(live_ogem, master_key)
    client = anthropic.Anthropic(base_url=live_ogem.url, api_key=allowed, max_retries=0)
    message = client.messages.create(
        model="emulated",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"mock_response": "canned answer"},
    )
    assert message.content[0].text == "canned answer"  # type: ignore[union-attr]
    assert emulated.requests == []
    other = anthropic.Anthropic(base_url=live_ogem.url, api_key=plain, max_retries=0)
    answered = other.messages.create(
        model="emulated",
        max_tokens=50,
        messages=[{"role": "user", "content": "hi"}],
        extra_body={"mock_response": "canned answer"},
    )
    assert answered.content[0].text != "canned answer"  # type: ignore[union-attr]
    assert len(emulated.requests) == 1
    assert "mock_response" not in emulated.requests[0].json
