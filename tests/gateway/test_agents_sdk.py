"""The OpenAI Agents SDK (`openai-agents`) unchanged against Ogem's Responses API on a provider
that has none: an agent with a function tool on Claude (the Anthropic emulator) runs its tool loop
through `/v1/responses`, plain and streamed, with the turns recorded as the key's usage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import openai
import pytest

from billing.models import RequestLog
from billing.services import usage_drain
from providers.base import Deployment
from tests.emulators import anthropic_api
from tests.emulators.anthropic_api import AnthropicEmulator, anthropic_emulator_get
from tests.live import LiveServer

agents = pytest.importorskip("agents")

pytestmark = pytest.mark.live

WEATHER_CALL = anthropic_api.Reply(
    content=[
        {
            "type": "tool_use",
            "id": "toolu_agents_1",
            "name": "get_weather",
            "input": {"city": "Oslo"},
        }
    ],
    stop_reason="tool_use",
)


@pytest.fixture
def claude(install_deployments: Callable[..., None]) -> Iterator[AnthropicEmulator]:
    emulator = anthropic_emulator_get()
    emulator.reset()
    install_deployments(
        Deployment(
            id="test:claude-agents:0",
            model_name="claude-agents",
            provider="anthropic",
            upstream_model="claude-3-5-haiku-20241022",
            api_base=emulator.url,
            api_key=anthropic_api.API_KEY,
        )
    )
    yield emulator
    emulator.reset()


def _agent(live: LiveServer, secret: str, calls: list[str]):  # type: ignore[no-untyped-def]
    # The SDK's own trace export goes to OpenAI's platform, out of reach here and not Ogem's.
    agents.set_tracing_disabled(True)

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "3°C and clear"

    client = openai.AsyncOpenAI(base_url=f"{live.url}/v1", api_key=secret, max_retries=0)
    model = agents.OpenAIResponsesModel(model="claude-agents", openai_client=client)
    return agents.Agent(
        name="forecaster", instructions="Answer briefly.", model=model, tools=[get_weather]
    )


def test_an_agent_runs_its_tool_loop_through_ogem(
    live_ogem: LiveServer, master_key: str, claude: AnthropicEmulator
) -> None:
    claude.script(WEATHER_CALL, anthropic_api.reply_text("Oslo: 3°C and clear."))
    calls: list[str] = []
    result = agents.Runner.run_sync(_agent(live_ogem, master_key, calls), "Weather in Oslo?")
    assert result.final_output == "Oslo: 3°C and clear."
    assert calls == ["Oslo"]
    first, second = claude.bodies[-2:]
    assert first["system"] in ("Answer briefly.", [{"type": "text", "text": "Answer briefly."}])
    assert first["tools"][0]["name"] == "get_weather"
    assert second["messages"][-1]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_agents_1",
        "content": "3°C and clear",
    }
    usage_drain()
    logged = RequestLog.objects.filter(endpoint="responses", model="claude-agents")
    assert logged.count() == 2


def test_a_streamed_agent_run_gets_text_deltas(
    live_ogem: LiveServer, master_key: str, claude: AnthropicEmulator
) -> None:
    claude.script(WEATHER_CALL, anthropic_api.reply_text("Oslo: 3°C and clear, a fine day."))
    calls: list[str] = []

    async def run() -> tuple[str, list[str]]:
        streamed = agents.Runner.run_streamed(
            _agent(live_ogem, master_key, calls), "Weather in Oslo?"
        )
        deltas: list[str] = []
        async for event in streamed.stream_events():
            if (
                event.type == "raw_response_event"
                and event.data.type == "response.output_text.delta"
            ):
                deltas.append(event.data.delta)
        return streamed.final_output, deltas

    final, deltas = asyncio.run(run())
    assert final == "Oslo: 3°C and clear, a fine day."
    assert len(deltas) > 1 and "".join(deltas) == final
    assert calls == ["Oslo"]
