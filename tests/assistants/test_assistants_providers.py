"""Assistants runs on a non-OpenAI provider: the Anthropic emulator (its real Messages wire
format over a socket) behind Ogem, through the live server and the official `openai` SDK. A
function call becomes Anthropic's tool_use, the submitted output its tool_result."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from openai import AssistantEventHandler

from providers.base import Deployment
from tests.emulators import anthropic_api
from tests.emulators.anthropic_api import AnthropicEmulator, anthropic_emulator_get

pytestmark = pytest.mark.live

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TOOL_USE = anthropic_api.Reply(
    content=[
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Oslo"}}
    ],
    stop_reason="tool_use",
)


@pytest.fixture
def anthropic() -> Iterator[AnthropicEmulator]:
    emulator = anthropic_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def claude(anthropic: AnthropicEmulator, install_deployments: Callable[..., None]) -> str:
    install_deployments(
        Deployment(
            id="test:claude-assistants:0",
            model_name="claude-assistants",
            provider="anthropic",
            upstream_model="claude-3-5-haiku-20241022",
            api_base=anthropic.url,
            api_key=anthropic_api.API_KEY,
        )
    )
    return "claude-assistants"


def test_polling_run_with_a_tool_call_on_anthropic(
    sdk: openai.OpenAI, claude: str, anthropic: AnthropicEmulator
) -> None:
    anthropic.script(TOOL_USE, anthropic_api.reply_text("It is 3°C in Oslo."))
    assistant = sdk.beta.assistants.create(
        model=claude, instructions="You report the weather.", tools=[WEATHER]
    )
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Weather in Oslo?"}])
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == (
        "toolu_01",
        "get_weather",
        '{"city":"Oslo"}',
    )
    first = anthropic.bodies[-1]
    assert first["system"] in (
        "You report the weather.",
        [{"type": "text", "text": "You report the weather."}],
    )
    assert first["tools"][0]["name"] == "get_weather"
    assert first["messages"] == [{"role": "user", "content": "Weather in Oslo?"}]

    done = sdk.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": "toolu_01", "output": "3°C"}],
    )
    assert done.status == "completed"
    assert done.usage is not None and done.usage.prompt_tokens > 0
    sent = anthropic.bodies[-1]
    assert sent["messages"][1]["content"][0]["type"] == "tool_use"
    assert sent["messages"][2]["content"][0] == {
        "type": "tool_result",
        "tool_use_id": "toolu_01",
        "content": "3°C",
    }
    messages = sdk.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assert [(m.role, m.content[0].text.value) for m in messages.data] == [
        ("user", "Weather in Oslo?"),
        ("assistant", "It is 3°C in Oslo."),
    ]


def test_streamed_run_on_anthropic(
    sdk: openai.OpenAI, claude: str, anthropic: AnthropicEmulator
) -> None:
    anthropic.script(anthropic_api.reply_text("Hello Ada."))
    assistant = sdk.beta.assistants.create(model=claude)
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "I am Ada."}])
    with sdk.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        stream.until_done()
        text = "".join(part.text.value for m in stream.get_final_messages() for part in m.content)
        run = stream.current_run
    assert text == "Hello Ada."
    assert run is not None and run.status == "completed"
    assert anthropic.bodies[-1]["messages"] == [{"role": "user", "content": "I am Ada."}]


def test_a_streamed_run_on_anthropic_streams_its_text_and_tool_call_as_they_come(
    sdk: openai.OpenAI, claude: str, anthropic: AnthropicEmulator
) -> None:
    """Anthropic's text_delta and input_json_delta events reach the SDK's handler one by one:
    the text before the call as message deltas, the call's arguments as run step deltas."""
    anthropic.script(
        anthropic_api.Reply(
            content=[{"type": "text", "text": "Let me check the weather."}, *TOOL_USE.content],
            stop_reason="tool_use",
        ),
        anthropic_api.reply_text("It is 3°C in Oslo, wear a coat."),
    )
    assistant = sdk.beta.assistants.create(model=claude, tools=[WEATHER])
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Weather in Oslo?"}])
    texts: list[str] = []
    arguments: list[str] = []
    events: list[str] = []

    class Handler(AssistantEventHandler):
        def on_event(self, event: Any) -> None:
            events.append(event.event)

        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            texts.append(delta.value)

        def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
            if delta.type == "function" and delta.function.arguments:
                arguments.append(delta.function.arguments)

    with sdk.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=Handler()
    ) as stream:
        stream.until_done()
        run = stream.current_run
    assert len(texts) > 1 and "".join(texts) == "Let me check the weather."
    assert len(arguments) > 1 and "".join(arguments) == '{"city":"Oslo"}'
    first_delta = events.index("thread.message.delta")
    assert events[:first_delta] == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
    ]
    last_delta = len(events) - 1 - events[::-1].index("thread.message.delta")
    assert events[last_delta + 1 : last_delta + 5] == [
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.step.created",
        "thread.run.step.in_progress",
    ]
    assert events[-1] == "thread.run.requires_action"
    assert run is not None and run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    assert (call.id, call.function.arguments) == ("toolu_01", '{"city":"Oslo"}')
    steps = sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc")
    assert [step.type for step in steps.data] == ["message_creation", "tool_calls"]

    texts.clear()
    with sdk.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": "toolu_01", "output": "3°C"}],
        event_handler=Handler(),
    ) as stream:
        stream.until_done()
        done = stream.current_run
    assert len(texts) > 1 and "".join(texts) == "It is 3°C in Oslo, wear a coat."
    assert done is not None and done.status == "completed"
    assert done.usage is not None and done.usage.prompt_tokens == 24  # both calls' input
    sent = anthropic.bodies[-1]
    assert sent["stream"] is True
    said = {"type": "text", "text": "Let me check the weather."}
    assert sent["messages"][1]["content"][0] == said
    messages = sdk.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assert [(m.role, m.content[0].text.value) for m in messages.data] == [
        ("user", "Weather in Oslo?"),
        ("assistant", "Let me check the weather."),
        ("assistant", "It is 3°C in Oslo, wear a coat."),
    ]


def test_a_streamed_run_cancelled_while_its_text_and_call_stream_keeps_what_it_showed(
    sdk: openai.OpenAI, claude: str, anthropic: AnthropicEmulator
) -> None:
    """A cancel that lands while the model streams text and then a call: the run ends cancelled
    once the model call ends, and the thread keeps what the stream showed, the text completed
    (its stream closed it when the call began) and the call's step cancelled, never run."""
    anthropic.script(
        anthropic_api.Reply(
            content=[{"type": "text", "text": "Let me check the weather."}, *TOOL_USE.content],
            stop_reason="tool_use",
            stream_event_delay_ms=100,  # the cancel lands while the answer still streams
        )
    )
    assistant = sdk.beta.assistants.create(model=claude, tools=[WEATHER])
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Weather in Oslo?"}])
    events: list[str] = []
    cancels: list[str] = []

    class Handler(AssistantEventHandler):
        def on_event(self, event: Any) -> None:
            events.append(event.event)
            if event.event == "thread.message.delta" and not cancels:
                run = self.current_run
                assert run is not None
                cancels.append(sdk.beta.threads.runs.cancel(run.id, thread_id=thread.id).status)

    with sdk.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=Handler()
    ) as stream:
        stream.until_done()
        run = stream.current_run
    assert cancels == ["cancelling"]
    assert run is not None and run.status == "cancelled" and run.required_action is None
    assert events[-2:] == ["thread.run.step.cancelled", "thread.run.cancelled"]
    closed = events.index("thread.message.completed")
    assert events[closed + 1 : closed + 4] == [
        "thread.run.step.completed",
        "thread.run.step.created",
        "thread.run.step.in_progress",
    ]
    messages = sdk.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assert [(m.role, m.status, m.content[0].text.value) for m in messages.data] == [
        ("user", "completed", "Weather in Oslo?"),
        ("assistant", "completed", "Let me check the weather."),
    ]
    steps = sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc")
    assert [(step.type, step.status) for step in steps.data] == [
        ("message_creation", "completed"),
        ("tool_calls", "cancelled"),
    ]
    call = steps.data[1].step_details.tool_calls[0]
    assert (call.id, call.function.arguments, call.function.output) == (
        "toolu_01",
        '{"city":"Oslo"}',
        None,
    )
    assert steps.data[1].cancelled_at is not None
