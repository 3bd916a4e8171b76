"""tool_choice "none" on Anthropic, through a live Ogem with the openai SDK: the Messages API has
`{"type": "none"}`, and the emulator's model then calls no tool. (reasoning_effort and cached
tokens: tests/providers/anthropic/test_openai_sdk.py.)"""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from providers.base import Deployment
from tests.emulators.anthropic_api import AnthropicEmulator, Reply
from tests.live import LiveServer

pytestmark = pytest.mark.live

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
CALL = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}


@pytest.fixture
def claude(claude_deployment: Deployment, install_deployments: Callable[..., None]) -> str:
    install_deployments(claude_deployment)
    return "claude"


@pytest.fixture
def client(live_ogem: LiveServer, master_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_choice_none_calls_no_tool(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator, stream: bool
) -> None:
    anthropic_emulator.script(Reply(content=[CALL], stop_reason="tool_use"))
    request = {
        "model": claude,
        "messages": [{"role": "user", "content": "Weather?"}],
        "tools": [WEATHER_TOOL],
        "tool_choice": "none",
    }
    if stream:
        chunks = list(client.chat.completions.create(**request, stream=True))
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        calls = [c for c in chunks if c.choices and c.choices[0].delta.tool_calls]
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        completion = client.chat.completions.create(**request)
        content = completion.choices[0].message.content or ""
        calls = completion.choices[0].message.tool_calls or []
        finish = completion.choices[0].finish_reason
    [body] = anthropic_emulator.bodies
    assert body["tool_choice"] == {"type": "none"}
    assert body["tools"][0]["name"] == "get_weather"
    assert calls == []
    assert content == "(I may not call get_weather.)"
    assert finish == "stop"
