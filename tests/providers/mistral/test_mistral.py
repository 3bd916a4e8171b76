"""Mistral: the strict emulator answers 422 to any OpenAI-only field, so these pass only when the
adapter renamed or dropped every one of them."""

from __future__ import annotations

import openai
import pytest

from providers.base import Deployment, Endpoint
from providers.mistral.adapter import MistralAdapter
from tests.emulators.fixtures import UPSTREAM_KEY

HELLO = [{"role": "user", "content": "Bonjour"}]


@pytest.fixture
def mistral(openai_emulator, install_deployments):  # type: ignore[no-untyped-def]
    openai_emulator.flavor = "mistral"
    install_deployments(
        Deployment(
            id="test:mistral",
            model_name="mistral-small",
            provider="mistral",
            upstream_model="mistral-small-latest",
            api_base=f"{openai_emulator.url}/v1",
            api_key=UPSTREAM_KEY,
        )
    )
    return openai_emulator


def test_default_base_url() -> None:
    deployment = Deployment(id="d", model_name="m", provider="mistral", upstream_model="x")
    request = MistralAdapter().build_request(
        endpoint=Endpoint.CHAT,
        deployment=deployment,
        body={"model": "m", "messages": HELLO},
        stream=False,
    )
    assert request.url == "https://api.mistral.ai/v1/chat/completions"


def test_openai_only_fields_are_translated(sdk: openai.OpenAI, mistral) -> None:  # type: ignore[no-untyped-def]
    completion = sdk.chat.completions.create(
        model="mistral-small",
        messages=HELLO,
        seed=42,
        user="end-user-1",
        logit_bias={"1": 2},
        max_completion_tokens=50,
        tool_choice="required",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        extra_body={"safe_prompt": True},
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    sent = mistral.last.json
    assert sent["random_seed"] == 42
    assert sent["max_tokens"] == 50
    assert sent["tool_choice"] == "any"
    assert sent["safe_prompt"] is True  # Mistral's own fields pass through
    assert not {"seed", "user", "logit_bias", "max_completion_tokens"} & set(sent)
    assert sent["model"] == "mistral-small-latest"
    assert mistral.last.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_streaming_without_stream_options(sdk: openai.OpenAI, mistral) -> None:  # type: ignore[no-untyped-def]
    chunks = list(
        sdk.chat.completions.create(
            model="mistral-small",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "stream_options" not in mistral.last.json
    assert mistral.last.json["stream"] is True
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Emulated reply to: Bonjour"


def test_mistral_rejection_is_400_naming_the_provider(sdk: openai.OpenAI, mistral) -> None:  # type: ignore[no-untyped-def]
    mistral.inject(
        status=422,
        body={
            "object": "error",
            "message": "Extra inputs are not permitted",
            "type": "invalid_request_error",
        },
    )
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="mistral-small", messages=HELLO)
    assert caught.value.body["message"] == "mistral returned 422: Extra inputs are not permitted"
    assert "Extra inputs are not permitted" in caught.value.body["message"]


TOOL = {"type": "function", "function": {"name": "f", "parameters": {}}}


def test_tool_choice_none_passes_through_and_no_tool_is_called(
    sdk: openai.OpenAI,
    mistral,  # type: ignore[no-untyped-def]
) -> None:
    completion = sdk.chat.completions.create(
        model="mistral-small", messages=HELLO, tools=[TOOL], tool_choice="none"
    )
    assert mistral.last.json["tool_choice"] == "none"
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == "Emulated reply to: Bonjour"


def test_reasoning_chunks_become_reasoning_content_and_cached_tokens_are_kept(
    sdk: openai.OpenAI,
    mistral,  # type: ignore[no-untyped-def]
) -> None:
    first = sdk.chat.completions.create(
        model="mistral-small",
        messages=HELLO,
        reasoning_effort="high",  # type: ignore[arg-type]
    )
    assert mistral.last.json["reasoning_effort"] == "high"  # Mistral's own parameter
    message = first.choices[0].message.model_dump()
    assert message["content"] == "Emulated reply to: Bonjour"
    assert message["reasoning_content"] == "Thinking about Bonjour."
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0

    chunks = list(
        sdk.chat.completions.create(
            model="mistral-small", messages=HELLO, reasoning_effort="high", stream=True
        )
    )
    deltas = [c.choices[0].delta.model_dump() for c in chunks if c.choices]
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "Thinking about Bonjour."
    assert "".join(d.get("content") or "" for d in deltas) == "Emulated reply to: Bonjour"
