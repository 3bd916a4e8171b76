"""End to end: the `openai` SDK -> a live Ogem -> the NLP Cloud emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from providers.base import Deployment
from tests.emulators.nlp_cloud_api import (
    API_KEY,
    REPLY,
    NLPCloudEmulator,
    failure,
    nlp_cloud_emulator_get,
)
from tests.live import LiveServer

pytestmark = pytest.mark.live
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def nlp_cloud_emulator() -> Iterator[NLPCloudEmulator]:
    emulator = nlp_cloud_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def client(
    live_ogem: LiveServer,
    master_key: str,
    nlp_cloud_emulator: NLPCloudEmulator,
    install_deployments: Callable[..., None],
) -> openai.OpenAI:
    def deployment(name: str, model: str) -> Deployment:
        return Deployment(
            id=f"test:{name}:0",
            model_name=name,
            provider="nlp_cloud",
            upstream_model=model,
            api_base=f"{nlp_cloud_emulator.url}/v1/gpu",  # no trailing slash: one is added
            api_key=API_KEY,
        )

    install_deployments(
        deployment("nc-llama", "finetuned-llama-3-70b"), deployment("nc-missing", "gpt-j")
    )
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


def test_chat(client: openai.OpenAI, nlp_cloud_emulator: NLPCloudEmulator) -> None:
    completion = client.chat.completions.create(
        model="nc-llama", messages=HELLO, max_tokens=50, temperature=0.7, stop=["\n\n"]
    )
    assert completion.choices[0].message.content == REPLY
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 4)
    [call] = nlp_cloud_emulator.requests
    assert call.path == "/v1/gpu/finetuned-llama-3-70b/generation"
    assert call.headers["authorization"] == f"Token {API_KEY}"
    assert call.body == {
        "text": "User: Say hello\nAssistant:",
        "remove_input": True,
        "max_length": 50,
        "length_no_input": True,
        "end_sequence": "\n\n",
        "remove_end_sequence": True,
        "temperature": 0.7,
    }


def test_stream_is_the_answer_in_one_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="nc-llama",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert [c.usage.total_tokens for c in chunks if c.usage] == [8]


def test_errors_are_mapped(client: openai.OpenAI, nlp_cloud_emulator: NLPCloudEmulator) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nc-missing", messages=HELLO)
    nlp_cloud_emulator.script(failure(429, "Too many requests"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="nc-llama", messages=HELLO)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="nc-llama", messages=HELLO, n=2)
