"""End to end: the `openai` SDK -> a live Ogem -> the Predibase (LoRAX) emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from providers.base import Deployment
from tests.emulators.predibase_api import (
    API_TOKEN,
    REPLY,
    TENANT_ID,
    PredibaseEmulator,
    failure,
    predibase_emulator_get,
)
from tests.live import LiveServer

pytestmark = pytest.mark.live
GENERATE = f"/{TENANT_ID}/deployments/v2/llms/llama-3-8b-instruct/generate"


@pytest.fixture
def predibase_emulator() -> Iterator[PredibaseEmulator]:
    emulator = predibase_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


def predibase_deployment(
    emulator: PredibaseEmulator, *, name: str, model: str, **params: str
) -> Deployment:
    return Deployment(
        id=f"test:{name}:0",
        model_name=name,
        provider="predibase",
        upstream_model=model,
        api_base=emulator.url,
        api_key=API_TOKEN,
        params={"tenant_id": TENANT_ID, **params},
    )


@pytest.fixture
def client(
    live_ogem: LiveServer,
    master_key: str,
    predibase_emulator: PredibaseEmulator,
    install_deployments: Callable[..., None],
) -> openai.OpenAI:
    install_deployments(
        predibase_deployment(predibase_emulator, name="pb-llama", model="llama-3-8b-instruct"),
        predibase_deployment(
            predibase_emulator,
            name="pb-tuned",
            model="llama-3-8b-instruct",
            adapter_id="news-summarizer/1",
            adapter_source="pbase",
        ),
        predibase_deployment(predibase_emulator, name="pb-missing", model="no-such-llm"),
    )
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


def test_chat(client: openai.OpenAI, predibase_emulator: PredibaseEmulator) -> None:
    completion = client.chat.completions.create(
        model="pb-llama",
        messages=[
            {"role": "system", "content": "Be brief"},
            {"role": "user", "content": "Say hello"},
        ],
        max_tokens=30,
        temperature=0.5,
        stop=["\n"],
    )
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    # The prompt's words ("System: Be brief / User: Say hello / Assistant:"), the reply's.
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 5)
    [call] = predibase_emulator.requests
    assert call.path == GENERATE
    assert call.headers["authorization"] == f"Bearer {API_TOKEN}"
    assert call.body["inputs"] == "System: Be brief\nUser: Say hello\nAssistant:"
    parameters = call.body["parameters"]
    assert (parameters["max_new_tokens"], parameters["temperature"], parameters["stop"]) == (
        30,
        0.5,
        ["\n"],
    )
    assert parameters["return_full_text"] is False


def test_stream(client: openai.OpenAI, predibase_emulator: PredibaseEmulator) -> None:
    chunks = list(
        client.chat.completions.create(
            model="pb-llama",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert [(c.usage.prompt_tokens, c.usage.completion_tokens) for c in chunks if c.usage] == [
        (4, 5)
    ]
    [call] = predibase_emulator.requests
    assert call.path == GENERATE + "_stream"
    assert call.body["parameters"]["max_new_tokens"] == 4096  # no limit given: LiteLLM's


def test_fine_tuned_adapter(client: openai.OpenAI, predibase_emulator: PredibaseEmulator) -> None:
    client.chat.completions.create(model="pb-tuned", messages=[{"role": "user", "content": "Hi"}])
    parameters = predibase_emulator.requests[0].body["parameters"]
    assert (parameters["adapter_id"], parameters["adapter_source"]) == (
        "news-summarizer/1",
        "pbase",
    )


def test_errors_are_mapped(client: openai.OpenAI, predibase_emulator: PredibaseEmulator) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="pb-missing", messages=[{"role": "user", "content": "Hi"}]
        )
    assert "deployment no-such-llm not found" in missing.value.message
    predibase_emulator.script(failure(429, "Model is overloaded", "overloaded"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="pb-llama", messages=[{"role": "user", "content": "Hi"}]
        )
