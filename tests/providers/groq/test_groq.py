"""Groq: fields Groq answers 400 to are dropped, n>1 is refused clearly, x_groq usage is read."""

from __future__ import annotations

import openai
import pytest

from providers.base import Deployment, Endpoint
from providers.groq.adapter import GroqAdapter
from tests.emulators.fixtures import UPSTREAM_KEY

HELLO = [{"role": "user", "content": "Hey", "name": "alice"}]


@pytest.fixture
def groq(openai_emulator, install_deployments):  # type: ignore[no-untyped-def]
    openai_emulator.flavor = "groq"
    install_deployments(
        Deployment(
            id="test:groq",
            model_name="llama",
            provider="groq",
            upstream_model="llama-3.1-8b-instant",
            api_base=f"{openai_emulator.url}/openai/v1",
            api_key=UPSTREAM_KEY,
        )
    )
    return openai_emulator


def test_default_base_url() -> None:
    deployment = Deployment(id="d", model_name="m", provider="groq", upstream_model="x")
    request = GroqAdapter().build_request(
        endpoint=Endpoint.CHAT, deployment=deployment, body={"messages": []}, stream=False
    )
    assert request.url == "https://api.groq.com/openai/v1/chat/completions"


def test_rejected_fields_dropped(sdk: openai.OpenAI, groq) -> None:  # type: ignore[no-untyped-def]
    completion = sdk.chat.completions.create(
        model="llama", messages=HELLO, logprobs=True, top_logprobs=2, logit_bias={"1": 1}, n=1
    )
    assert completion.choices[0].message.content == "Emulated reply to: Hey"
    sent = groq.last
    assert sent.path == "/openai/v1/chat/completions"
    assert sent.json["messages"] == [{"role": "user", "content": "Hey"}]
    assert not {"logprobs", "top_logprobs", "logit_bias"} & set(sent.json)


def test_n_above_one_refused(sdk: openai.OpenAI, groq) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="llama", messages=HELLO, n=2)
    assert caught.value.body["param"] == "n"
    assert groq.requests == []


def test_stream_and_unsupported_endpoint(sdk: openai.OpenAI, groq) -> None:  # type: ignore[no-untyped-def]
    chunks = list(sdk.chat.completions.create(model="llama", messages=HELLO, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Emulated reply to: Hey"
    )
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.embeddings.create(model="llama", input="x")
    assert caught.value.body["code"] == "unsupported_endpoint"


def test_x_groq_usage_is_read() -> None:
    chunk = {"choices": [], "x_groq": {"usage": {"prompt_tokens": 3, "completion_tokens": 2}}}
    assert GroqAdapter().stream_usage(chunk) == {"prompt_tokens": 3, "completion_tokens": 2}
    assert GroqAdapter().stream_usage({"usage": {"total_tokens": 1}}) == {"total_tokens": 1}
