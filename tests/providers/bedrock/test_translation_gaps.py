"""tool_choice "none" and reasoning_effort on Bedrock, through a live Ogem with the openai SDK.

Converse has no tool_choice "none" and no `reasoning_effort`: the emulator's model calls any
declared tool it is scripted to call, and accepts extended thinking only on the Claude models
that have it, with the API's rules (tests/emulators/bedrock_api.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.emulators.bedrock_api import SIGNATURE, BedrockEmulator, Reply, reply_text
from tests.providers.bedrock.conftest import bedrock_deployment

pytestmark = pytest.mark.live

SONNET_4 = "us.anthropic.claude-sonnet-4-20250514-v1:0"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
CALL = {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}}
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "Weather in Paris?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "tooluse_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C"},
    {"role": "user", "content": "And tomorrow?"},
]


@pytest.fixture
def sonnet(bedrock_emulator: BedrockEmulator, install_deployments: Callable[..., None]) -> str:
    install_deployments(bedrock_deployment(bedrock_emulator, model=SONNET_4, name="sonnet-4"))
    return "sonnet-4"


def test_tool_choice_none_declares_no_tool_so_none_is_called(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(Reply(content=[CALL], stop_reason="tool_use"))
    completion = client.chat.completions.create(
        model=claude,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="none",
    )
    [body] = bedrock_emulator.bodies()
    assert "toolConfig" not in body
    message = completion.choices[0].message
    assert message.tool_calls is None
    assert message.content == "(I have no tool named get_weather.)"
    assert completion.choices[0].finish_reason == "stop"


def test_tool_choice_none_with_tool_calls_in_the_history(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(Reply(content=[CALL], stop_reason="tool_use"))
    completion = client.chat.completions.create(
        model=claude, messages=HISTORY, tools=[WEATHER_TOOL], tool_choice="none"
    )
    [body] = bedrock_emulator.bodies()
    # Converse refuses toolUse/toolResult blocks without a toolConfig: they travel as text.
    assert "toolConfig" not in body
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [{"text": '[tool call tooluse_1: get_weather({"city":"Paris"})]'}],
        },
        {
            "role": "user",
            "content": [{"text": "[tool result tooluse_1: 18C]"}, {"text": "And tomorrow?"}],
        },
    ]
    assert completion.choices[0].message.tool_calls is None


def test_tool_calls_in_the_history_without_tools_are_accepted(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(reply_text("Sunny."))
    completion = client.chat.completions.create(model=claude, messages=HISTORY)
    assert completion.choices[0].message.content == "Sunny."
    assert "toolConfig" not in bedrock_emulator.bodies()[0]


def test_tool_choice_auto_still_declares_the_tools(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(Reply(content=[CALL], stop_reason="tool_use"))
    completion = client.chat.completions.create(
        model=claude, messages=HISTORY, tools=[WEATHER_TOOL], tool_choice="auto"
    )
    [body] = bedrock_emulator.bodies()
    assert body["toolConfig"]["toolChoice"] == {"auto": {}}
    assert "toolUse" in body["messages"][1]["content"][0]
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"


@pytest.mark.parametrize(("effort", "budget"), [("low", 1024), ("medium", 2048), ("high", 4096)])
def test_reasoning_effort_becomes_the_thinking_budget(
    client: openai.OpenAI,
    sonnet: str,
    bedrock_emulator: BedrockEmulator,
    effort: str,
    budget: int,
) -> None:
    bedrock_emulator.script(reply_text("42."))
    completion = client.chat.completions.create(
        model=sonnet,
        messages=[{"role": "user", "content": "Meaning of life?"}],
        reasoning_effort=effort,  # type: ignore[arg-type]
    )
    [body] = bedrock_emulator.bodies()
    assert body["additionalModelRequestFields"] == {
        "thinking": {"type": "enabled", "budget_tokens": budget}
    }
    assert body["inferenceConfig"] == {"maxTokens": budget + 4096}
    message = completion.choices[0].message.model_dump()
    assert message["content"] == "42."
    assert message["reasoning_content"] == "Thinking about Meaning of life?."
    assert message["thinking_blocks"] == [
        {"type": "thinking", "thinking": "Thinking about Meaning of life?.", "signature": SIGNATURE}
    ]


def test_reasoning_streams_as_reasoning_content(
    client: openai.OpenAI, sonnet: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(reply_text("42."))
    stream = client.chat.completions.create(
        model=sonnet,
        messages=[{"role": "user", "content": "Meaning of life?"}],
        reasoning_effort="low",
        max_tokens=3000,
        stream=True,
    )
    reasoning, content, blocks = "", "", []
    for chunk in stream:
        for choice in chunk.choices:
            delta = choice.delta.model_dump()
            reasoning += delta.get("reasoning_content") or ""
            content += delta.get("content") or ""
            blocks += delta.get("thinking_blocks") or []
    body = bedrock_emulator.bodies("converse-stream")[0]
    assert body["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1024
    assert body["inferenceConfig"] == {"maxTokens": 3000}
    assert reasoning == "Thinking about Meaning of life?."
    assert content == "42."
    assert blocks == [{"type": "thinking", "thinking": reasoning, "signature": SIGNATURE}]


def test_thinking_blocks_go_back_in_a_tool_use_loop(
    client: openai.OpenAI, sonnet: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(Reply(content=[CALL], stop_reason="tool_use"), reply_text("18C."))
    question = {"role": "user", "content": "Weather in Paris?"}
    first = client.chat.completions.create(
        model=sonnet, messages=[question], tools=[WEATHER_TOOL], reasoning_effort="medium"
    )
    message = first.choices[0].message.model_dump(exclude_none=True)
    assert message["tool_calls"][0]["function"]["name"] == "get_weather"
    # The emulator refuses a tool-use turn that lost its reasoning block while thinking is on.
    second = client.chat.completions.create(
        model=sonnet,
        tools=[WEATHER_TOOL],
        reasoning_effort="medium",
        messages=[
            question,
            message,  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": "tooluse_1", "content": "18C"},
        ],
    )
    assert second.choices[0].message.content == "18C."
    sent = bedrock_emulator.bodies()[1]["messages"][1]["content"]
    assert sent[0] == {
        "reasoningContent": {
            "reasoningText": {"text": "Thinking about Weather in Paris?.", "signature": SIGNATURE}
        }
    }
    assert "toolUse" in sent[1]


def test_reasoning_effort_is_not_sent_to_models_without_thinking(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    # Claude 3.5 Haiku has no extended thinking: Bedrock refuses a thinking field for it.
    bedrock_emulator.script(reply_text("Hi."))
    completion = client.chat.completions.create(
        model=claude, messages=[{"role": "user", "content": "Hi"}], reasoning_effort="high"
    )
    assert completion.choices[0].message.content == "Hi."
    assert "additionalModelRequestFields" not in bedrock_emulator.bodies()[0]


def test_forcing_a_tool_while_thinking_is_refused_upstream(
    client: openai.OpenAI, sonnet: str, bedrock_emulator: BedrockEmulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=sonnet,
            messages=[{"role": "user", "content": "Weather?"}],
            tools=[WEATHER_TOOL],
            tool_choice="required",
            reasoning_effort="low",
        )
    assert "tool_choice forces tool use" in str(caught.value)
