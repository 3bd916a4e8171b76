"""tool_choice "none", reasoning_effort and cached tokens on Vertex AI (Gemini and Claude),
through a live Ogem with the openai SDK against the Vertex emulator."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import openai
import pytest

from providers.base import Deployment
from tests.emulators import anthropic_api
from tests.emulators.gemini_api import Reply
from tests.emulators.vertex_api import VertexEmulator
from tests.live import LiveServer

pytestmark = pytest.mark.live

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
QUESTION = [{"role": "user", "content": "Weather?"}]


@pytest.fixture
def client(live_ogem: LiveServer, master_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


@pytest.fixture
def models(
    vertex_gemini: Deployment, vertex_claude: Deployment, install_deployments: Callable[..., None]
) -> None:
    sonnet = replace(
        vertex_claude,
        id="test:vertex-sonnet:0",
        model_name="vertex-sonnet",
        upstream_model="claude-sonnet-4@20250514",
    )
    install_deployments(vertex_gemini, vertex_claude, sonnet)


def test_gemini_tool_choice_none_calls_no_function(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script(Reply(parts=[{"functionCall": {"name": "get_weather", "args": {}}}]))
    completion = client.chat.completions.create(
        model="vertex-gemini", messages=QUESTION, tools=[WEATHER_TOOL], tool_choice="none"
    )
    body = vertex_emulator.model_requests[0].body
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == "(I may not call get_weather.)"


def test_gemini_reasoning_effort_and_cached_tokens(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script(
        Reply(
            parts=[{"text": "Looking outside.", "thought": True}, {"text": "Sunny."}],
            usage={
                "promptTokenCount": 900,
                "cachedContentTokenCount": 512,
                "candidatesTokenCount": 4,
                "thoughtsTokenCount": 20,
                "totalTokenCount": 924,
            },
        )
    )
    completion = client.chat.completions.create(
        model="vertex-gemini", messages=QUESTION, reasoning_effort="high"
    )
    body = vertex_emulator.model_requests[0].body
    assert body["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 4096,
        "includeThoughts": True,
    }
    message = completion.choices[0].message.model_dump()
    assert (message["content"], message["reasoning_content"]) == ("Sunny.", "Looking outside.")
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 512


def test_claude_tool_choice_none_calls_no_tool(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    call = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}
    vertex_emulator.script_claude(anthropic_api.Reply(content=[call], stop_reason="tool_use"))
    completion = client.chat.completions.create(
        model="vertex-claude", messages=QUESTION, tools=[WEATHER_TOOL], tool_choice="none"
    )
    assert vertex_emulator.model_requests[0].body["tool_choice"] == {"type": "none"}
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"


def test_claude_reasoning_effort_and_cached_tokens(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_claude(
        anthropic_api.Reply(
            content=[
                {"type": "thinking", "thinking": "Check the sky.", "signature": "sig-1"},
                {"type": "text", "text": "Sunny."},
            ],
            usage={"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 300},
        )
    )
    completion = client.chat.completions.create(
        model="vertex-sonnet", messages=QUESTION, reasoning_effort="medium"
    )
    body = vertex_emulator.model_requests[0].body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    message = completion.choices[0].message.model_dump()
    assert (message["content"], message["reasoning_content"]) == ("Sunny.", "Check the sky.")
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens == 310
    assert completion.usage.prompt_tokens_details.cached_tokens == 300
