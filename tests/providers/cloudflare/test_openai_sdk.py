"""End to end: the `openai` SDK -> a live Ogem -> the Workers AI emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from providers.base import Deployment
from tests.emulators.cloudflare_api import (
    ACCOUNT_ID,
    API_TOKEN,
    CloudflareEmulator,
    cloudflare_emulator_get,
    failure,
)
from tests.live import LiveServer

pytestmark = pytest.mark.live
LLAMA = "@cf/meta/llama-3.1-8b-instruct"
RUN_PATH = f"/client/v4/accounts/{ACCOUNT_ID}/ai/run/"


@pytest.fixture
def cloudflare_emulator() -> Iterator[CloudflareEmulator]:
    emulator = cloudflare_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


def cloudflare_deployment(emulator: CloudflareEmulator, *, name: str, model: str) -> Deployment:
    return Deployment(
        id=f"test:{name}:0",
        model_name=name,
        provider="cloudflare",
        upstream_model=model,
        api_base=f"{emulator.url}{RUN_PATH}",
        api_key=API_TOKEN,
    )


@pytest.fixture
def client(
    live_ogem: LiveServer,
    master_key: str,
    cloudflare_emulator: CloudflareEmulator,
    install_deployments: Callable[..., None],
) -> openai.OpenAI:
    install_deployments(
        cloudflare_deployment(cloudflare_emulator, name="cf-llama", model=LLAMA),
        cloudflare_deployment(
            cloudflare_emulator, name="cf-embed", model="@cf/baai/bge-base-en-v1.5"
        ),
        cloudflare_deployment(cloudflare_emulator, name="cf-missing", model="@cf/none/none"),
    )
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


def test_chat(client: openai.OpenAI, cloudflare_emulator: CloudflareEmulator) -> None:
    completion = client.chat.completions.create(
        model="cf-llama",
        messages=[
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": [{"type": "text", "text": "Say hello"}]},
        ],
        max_tokens=30,
        temperature=0.2,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        tool_choice="none",
    )
    assert completion.choices[0].message.content == "Hello from Workers AI."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 4)
    [call] = cloudflare_emulator.requests
    assert call.path == f"{RUN_PATH}{LLAMA}"
    assert call.headers["authorization"] == f"Bearer {API_TOKEN}"
    assert call.body == {
        "messages": [
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "Say hello"},
        ],
        "max_tokens": 30,
        "temperature": 0.2,
    }


def test_stream(client: openai.OpenAI, cloudflare_emulator: CloudflareEmulator) -> None:
    chunks = list(
        client.chat.completions.create(
            model="cf-llama",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from Workers AI."
    )
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert [c.usage.total_tokens for c in chunks if c.usage] == [6]
    assert cloudflare_emulator.requests[0].body["stream"] is True


def test_embeddings(client: openai.OpenAI, cloudflare_emulator: CloudflareEmulator) -> None:
    answer = client.embeddings.create(model="cf-embed", input="one two")
    assert [d.embedding for d in answer.data] == [[7.0, 2.0, 0.25]]
    assert cloudflare_emulator.requests[0].body == {"text": ["one two"]}


def test_errors_are_mapped(client: openai.OpenAI, cloudflare_emulator: CloudflareEmulator) -> None:
    with pytest.raises(openai.BadRequestError) as missing:
        client.chat.completions.create(
            model="cf-missing", messages=[{"role": "user", "content": "Hi"}]
        )
    assert "No such model @cf/none/none" in missing.value.message
    cloudflare_emulator.script(failure(429, 3040, "Capacity temporarily exceeded"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="cf-llama", messages=[{"role": "user", "content": "Hi"}]
        )
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="cf-llama",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
                }
            ],
        )
