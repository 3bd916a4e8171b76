"""End to end: the `openai` SDK -> a live Ogem -> the Triton emulator (generate and infer)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from providers.base import Deployment
from tests.emulators.triton_api import REPLY, TritonEmulator, failure, triton_emulator_get
from tests.live import LiveServer

pytestmark = pytest.mark.live


@pytest.fixture
def triton_emulator() -> Iterator[TritonEmulator]:
    emulator = triton_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


def triton_deployment(name: str, *, model: str, api_base: str) -> Deployment:
    return Deployment(
        id=f"test:{name}:0",
        model_name=name,
        provider="triton",
        upstream_model=model,
        api_base=api_base,
    )


@pytest.fixture
def client(
    live_ogem: LiveServer,
    master_key: str,
    triton_emulator: TritonEmulator,
    install_deployments: Callable[..., None],
) -> openai.OpenAI:
    url = triton_emulator.url
    install_deployments(
        triton_deployment(
            "tr-gen", model="ensemble", api_base=f"{url}/v2/models/ensemble/generate"
        ),
        triton_deployment(
            "tr-infer", model="llama-infer", api_base=f"{url}/v2/models/llama-infer/infer"
        ),
        triton_deployment("tr-root", model="ensemble", api_base=url),
        triton_deployment("tr-missing", model="nope", api_base=url),
    )
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


HELLO = [{"role": "user", "content": "What is machine learning?"}]


def test_generate(client: openai.OpenAI, triton_emulator: TritonEmulator) -> None:
    completion = client.chat.completions.create(
        model="tr-gen", messages=HELLO, max_tokens=20, temperature=0.3, stop="\n"
    )
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    # Triton reports no usage: Ogem's estimate, never zero.
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    [call] = triton_emulator.requests
    assert call.path == "/v2/models/ensemble/generate"
    assert call.body == {
        "text_input": "User: What is machine learning?\nAssistant:",
        "max_tokens": 20,
        "temperature": 0.3,
        "bad_words": "",
        "stop_words": ["\n"],
    }


def test_generate_stream(client: openai.OpenAI, triton_emulator: TritonEmulator) -> None:
    chunks = list(client.chat.completions.create(model="tr-gen", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    [call] = triton_emulator.requests
    assert call.path == "/v2/models/ensemble/generate_stream"
    assert call.body["stream"] is True and call.body["max_tokens"] == 2000


def test_server_root_uses_generate(client: openai.OpenAI, triton_emulator: TritonEmulator) -> None:
    client.chat.completions.create(model="tr-root", messages=HELLO)
    assert triton_emulator.requests[0].path == "/v2/models/ensemble/generate"


def test_infer(client: openai.OpenAI, triton_emulator: TritonEmulator) -> None:
    completion = client.chat.completions.create(
        model="tr-infer", messages=HELLO, max_tokens=16, temperature=0.5
    )
    assert completion.choices[0].message.content == REPLY
    [call] = triton_emulator.requests
    assert call.path == "/v2/models/llama-infer/infer"
    assert call.body == {
        "inputs": [
            {
                "name": "text_input",
                "shape": [1],
                "datatype": "BYTES",
                "data": ["User: What is machine learning?\nAssistant:"],
            },
            {"name": "max_tokens", "shape": [1], "datatype": "INT32", "data": [16]},
            {"name": "temperature", "shape": [1], "datatype": "FP32", "data": [0.5]},
        ]
    }


def test_infer_streamed_as_one_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="tr-infer", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_errors_are_mapped(client: openai.OpenAI, triton_emulator: TritonEmulator) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="tr-missing", messages=HELLO)
    assert "unknown model" in missing.value.message
    triton_emulator.script(failure(400, "input 'max_tokens' out of range"))
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tr-gen", messages=HELLO)
