"""Cached tokens, tool_choice "none" and reasoning_effort on Cohere, through a live Ogem with the
openai SDK against the Cohere emulator."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from tests.emulators.cohere_api import CohereEmulator, Reply
from tests.providers.cohere.conftest import cohere_deployment

pytestmark = pytest.mark.live

CACHED_USAGE = {
    "billed_units": {"input_tokens": 900, "output_tokens": 5},
    "tokens": {"input_tokens": 1000, "output_tokens": 5},
    "cached_tokens": 768,
}
WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
QUESTION = [{"role": "user", "content": "Meaning of life?"}]


@pytest.fixture
def reasoning(cohere_emulator: CohereEmulator, install_deployments: Callable[..., None]) -> str:
    install_deployments(
        cohere_deployment(cohere_emulator, model="command-a-reasoning-08-2025", name="reasoner")
    )
    return "reasoner"


def test_cached_tokens_reach_prompt_tokens_details(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(Reply(text="Hi.", usage=CACHED_USAGE))
    completion = client.chat.completions.create(model=command, messages=QUESTION)
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 1000
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 768


def test_cached_tokens_when_streaming(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(Reply(text="Hi.", usage=CACHED_USAGE))
    stream = client.chat.completions.create(
        model=command,
        messages=QUESTION,
        stream=True,
        stream_options={"include_usage": True},
    )
    usages = [chunk.usage for chunk in stream if chunk.usage is not None]
    assert [(u.prompt_tokens, u.prompt_tokens_details.cached_tokens) for u in usages] == [
        (1000, 768)
    ]


def test_tool_choice_none_is_cohere_none(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(Reply(text="No tool."))
    completion = client.chat.completions.create(
        model=command, messages=QUESTION, tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert cohere_emulator.bodies()[0]["tool_choice"] == "NONE"
    assert completion.choices[0].message.tool_calls is None


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("high", 4096)])
def test_reasoning_effort_becomes_the_thinking_budget(
    client: openai.OpenAI,
    reasoning: str,
    cohere_emulator: CohereEmulator,
    effort: str,
    budget: int,
) -> None:
    cohere_emulator.script(Reply(text="42.", thinking="Let me think."))
    completion = client.chat.completions.create(
        model=reasoning,
        messages=QUESTION,
        reasoning_effort=effort,  # type: ignore[arg-type]
    )
    assert cohere_emulator.bodies()[0]["thinking"] == {"type": "enabled", "token_budget": budget}
    message = completion.choices[0].message.model_dump()
    assert message["content"] == "42."
    assert message["reasoning_content"] == "Let me think."


def test_reasoning_streams_as_reasoning_content(
    client: openai.OpenAI, reasoning: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(Reply(text="42.", thinking="Let me think."))
    stream = client.chat.completions.create(
        model=reasoning, messages=QUESTION, reasoning_effort="medium", stream=True
    )
    reasoning_text, content = "", ""
    for chunk in stream:
        for choice in chunk.choices:
            delta = choice.delta.model_dump()
            reasoning_text += delta.get("reasoning_content") or ""
            content += delta.get("content") or ""
    assert cohere_emulator.bodies()[0]["thinking"] == {"type": "enabled", "token_budget": 2048}
    assert (reasoning_text, content) == ("Let me think.", "42.")


def test_reasoning_effort_none_disables_thinking(
    client: openai.OpenAI, reasoning: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(Reply(text="42.", thinking="Let me think."))
    completion = client.chat.completions.create(
        model=reasoning,
        messages=QUESTION,
        reasoning_effort="none",  # type: ignore[arg-type]
    )
    assert cohere_emulator.bodies()[0]["thinking"] == {"type": "disabled"}
    assert "reasoning_content" not in completion.choices[0].message.model_dump(exclude_none=True)


def test_reasoning_effort_is_not_sent_to_models_without_thinking(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(Reply(text="42."))
    completion = client.chat.completions.create(
        model=command, messages=QUESTION, reasoning_effort="high"
    )
    assert "thinking" not in cohere_emulator.bodies()[0]
    assert completion.choices[0].message.content == "42."
