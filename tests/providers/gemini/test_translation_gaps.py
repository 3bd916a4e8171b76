"""tool_choice "none" on Gemini, through a live Ogem with the openai SDK: it becomes
`functionCallingConfig.mode: NONE`, under which the emulator's model calls no function.
(reasoning_effort and cached tokens: tests/providers/gemini/test_openai_sdk.py.)"""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from providers.base import Deployment
from tests.emulators.gemini_api import GeminiEmulator, Reply
from tests.live import LiveServer

pytestmark = pytest.mark.live

WEATHER_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
}
CALL = {"functionCall": {"name": "get_weather", "args": {}}}


@pytest.fixture
def gemini(gemini_deployment: Deployment, install_deployments: Callable[..., None]) -> str:
    install_deployments(gemini_deployment)
    return "gemini"


@pytest.fixture
def client(live_ogem: LiveServer, master_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


def test_tool_choice_none_calls_no_function(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    gemini_emulator.script(Reply(parts=[CALL]))
    completion = client.chat.completions.create(
        model=gemini,
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[WEATHER_TOOL],
        tool_choice="none",
    )
    [body] = gemini_emulator.bodies
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].message.content == "(I may not call get_weather.)"
    assert completion.choices[0].finish_reason == "stop"
