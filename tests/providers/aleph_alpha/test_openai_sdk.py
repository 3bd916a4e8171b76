"""End to end: the `openai` SDK -> a live Ogem -> the Aleph Alpha emulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from providers.base import Deployment
from tests.emulators.aleph_alpha_api import (
    API_TOKEN,
    REPLY,
    AlephAlphaEmulator,
    aleph_alpha_emulator_get,
    failure,
)
from tests.live import LiveServer

pytestmark = pytest.mark.live
HELLO = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def aleph_alpha_emulator() -> Iterator[AlephAlphaEmulator]:
    emulator = aleph_alpha_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def client(
    live_ogem: LiveServer,
    master_key: str,
    aleph_alpha_emulator: AlephAlphaEmulator,
    install_deployments: Callable[..., None],
) -> openai.OpenAI:
    def deployment(name: str, model: str, api_base: str) -> Deployment:
        return Deployment(
            id=f"test:{name}:0",
            model_name=name,
            provider="aleph_alpha",
            upstream_model=model,
            api_base=api_base,
            api_key=API_TOKEN,
        )

    url = aleph_alpha_emulator.url
    install_deployments(
        deployment("aa-luminous", "luminous-base", f"{url}/complete"),
        deployment("aa-root", "luminous-base", url),
        deployment("aa-missing", "luminous-extended", f"{url}/complete"),
    )
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


def test_chat(client: openai.OpenAI, aleph_alpha_emulator: AlephAlphaEmulator) -> None:
    completion = client.chat.completions.create(
        model="aa-luminous", messages=HELLO, max_tokens=40, temperature=0.2, stop="###", n=2
    )
    assert [c.message.content for c in completion.choices] == [REPLY, REPLY]
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 8)
    [call] = aleph_alpha_emulator.requests
    assert call.path == "/complete"
    assert call.headers["authorization"] == f"Bearer {API_TOKEN}"
    assert call.body == {
        "model": "luminous-base",
        "prompt": "User: Say hello\nAssistant:",
        "maximum_tokens": 40,
        "stop_sequences": ["###"],
        "temperature": 0.2,
        "n": 2,
    }


def test_server_root_and_default_budget(
    client: openai.OpenAI, aleph_alpha_emulator: AlephAlphaEmulator
) -> None:
    client.chat.completions.create(model="aa-root", messages=HELLO)
    [call] = aleph_alpha_emulator.requests
    assert (call.path, call.body["maximum_tokens"]) == ("/complete", 256)


def test_stream_is_the_answer_in_one_chunk(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="aa-luminous", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert [c.usage.total_tokens for c in chunks if c.usage] == [8]


def test_errors_are_mapped(client: openai.OpenAI, aleph_alpha_emulator: AlephAlphaEmulator) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="aa-missing", messages=HELLO)
    assert "luminous-extended not found" in missing.value.message
    aleph_alpha_emulator.script(failure(429, "TOO_MANY_REQUESTS", "rate limited"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="aa-luminous", messages=HELLO)
