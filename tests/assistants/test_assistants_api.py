"""The Assistants API v2 served by Ogem over chat completions, through the live server and the
official `openai` SDK (`client.beta.*` and its polling and streaming helpers) on the offline mock
provider: assistants, threads, messages, runs with function tools, submit_tool_outputs, cancel,
run steps, limits, bad input, accounting and tenant isolation."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from openai import AssistantEventHandler

from assistants.models import Run
from billing.models import RequestLog
from billing.services import usage_drain
from providers.base import Deployment
from tests.emulators.openai_api import OpenAIEmulator
from tests.live import LiveServer
from tests.schemas import schema_validate

pytestmark = pytest.mark.live

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
BETA = {"OpenAI-Beta": "assistants=v2"}


def _error(raised: pytest.ExceptionInfo[openai.APIStatusError]) -> dict[str, Any]:
    return raised.value.response.json()["error"]


def _collapsed(events: list[str]) -> list[str]:
    """The events with each run of the same delta event shown once (a stream sends several)."""
    return [e for i, e in enumerate(events) if not (e.endswith(".delta") and events[i - 1] == e)]


def _texts(messages: Any) -> list[tuple[str, str]]:
    return [(m.role, m.content[0].text.value) for m in messages]


def test_assistant_crud_in_openais_shapes(sdk: openai.OpenAI) -> None:
    raw = sdk.beta.assistants.with_raw_response.create(
        model="mock-chat",
        name="Weather bot",
        instructions="Answer about the weather.",
        tools=[WEATHER],
        metadata={"team": "a"},
        temperature=0.2,
    )
    schema_validate("AssistantObject", raw.http_response.json())
    assistant = raw.parse()
    assert assistant.id.startswith("asst_")
    assert assistant.tools[0].function.name == "get_weather"
    assert assistant.temperature == 0.2
    assert assistant.response_format == "auto"

    changed = sdk.beta.assistants.update(assistant.id, name="Renamed", metadata={"v": "2"})
    assert (changed.name, changed.metadata, changed.instructions) == (
        "Renamed",
        {"v": "2"},
        "Answer about the weather.",
    )
    assert sdk.beta.assistants.retrieve(assistant.id).name == "Renamed"
    second = sdk.beta.assistants.create(model="mock-chat", name="Second")
    listed = sdk.beta.assistants.list(order="asc")
    assert [a.id for a in listed.data] == [assistant.id, second.id]
    page = sdk.beta.assistants.list(order="desc", limit=1)
    assert [a.id for a in page.data] == [second.id] and page.has_more is True
    after = sdk.beta.assistants.list(order="desc", limit=1, after=second.id)
    assert [a.id for a in after.data] == [assistant.id] and after.has_more is False
    before = sdk.beta.assistants.list(order="desc", before=assistant.id)
    assert [a.id for a in before.data] == [second.id]

    deleted = sdk.beta.assistants.delete(assistant.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (
        assistant.id,
        "assistant.deleted",
        True,
    )
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.beta.assistants.retrieve(assistant.id)
    assert _error(raised)["message"] == f"No assistant found with id '{assistant.id}'."


def test_polling_run_with_a_function_call_and_tool_outputs(sdk: openai.OpenAI) -> None:
    assistant = sdk.beta.assistants.create(
        model="mock-chat", instructions="Use tools.", tools=[WEATHER]
    )
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
    schema_validate(
        "ThreadObject", sdk.beta.threads.with_raw_response.retrieve(thread.id).http_response.json()
    )

    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(c.type, c.function.name) for c in calls] == [("function", "get_weather")]
    assert '"city"' in calls[0].function.arguments
    assert run.instructions == "Use tools."
    assert run.usage is not None and run.usage.total_tokens > 0
    schema_validate(
        "RunObject",
        sdk.beta.threads.runs.with_raw_response.retrieve(
            run.id, thread_id=thread.id
        ).http_response.json(),
    )

    done = sdk.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": calls[0].id, "output": "22C and sunny"}],
    )
    assert done.status == "completed"
    assert done.required_action is None
    assert done.completed_at is not None and done.expires_at is None
    assert done.usage.total_tokens > run.usage.total_tokens

    messages = sdk.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assert _texts(messages.data) == [
        ("user", "Weather in Paris?"),
        ("assistant", "Mock reply to: Weather in Paris?"),
    ]
    answer = messages.data[1]
    assert (answer.run_id, answer.assistant_id, answer.status) == (
        done.id,
        assistant.id,
        "completed",
    )
    raw = sdk.beta.threads.messages.with_raw_response.list(thread_id=thread.id, run_id=done.id)
    schema_validate("MessageObject", raw.http_response.json()["data"][0])
    assert [m.id for m in raw.parse().data] == [answer.id]

    steps = sdk.beta.threads.runs.steps.list(run_id=done.id, thread_id=thread.id, order="asc")
    assert [(s.type, s.status) for s in steps.data] == [
        ("tool_calls", "completed"),
        ("message_creation", "completed"),
    ]
    call = steps.data[0].step_details.tool_calls[0]
    assert (call.id, call.function.name, call.function.output) == (
        calls[0].id,
        "get_weather",
        "22C and sunny",
    )
    assert steps.data[1].step_details.message_creation.message_id == answer.id
    one = sdk.beta.threads.runs.steps.with_raw_response.retrieve(
        steps.data[1].id, thread_id=thread.id, run_id=done.id
    )
    schema_validate("RunStepObject", one.http_response.json())


def test_streamed_run_sends_openais_events_and_the_sdk_helpers_follow(
    sdk: openai.OpenAI,
) -> None:
    assistant = sdk.beta.assistants.create(model="mock-chat", tools=[WEATHER])
    thread = sdk.beta.threads.create()
    sdk.beta.threads.messages.create(thread_id=thread.id, role="user", content="Rome?")

    events: list[str] = []
    with sdk.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        for event in stream:
            events.append(event.event)
        run = stream.current_run
    # The call's name and its arguments arrive as the model streams them.
    assert events.count("thread.run.step.delta") >= 2
    assert _collapsed(events) == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
        "thread.run.requires_action",
    ]
    assert run is not None and run.status == "requires_action"
    call = run.required_action.submit_tool_outputs.tool_calls[0]

    texts: list[str] = []

    class Handler(AssistantEventHandler):
        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            texts.append(delta.value)

    events = []
    with sdk.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "18C"}],
        event_handler=Handler(),
    ) as stream:
        for event in stream:
            events.append(event.event)
        final_messages = stream.get_final_messages()
        final_run = stream.current_run
    # The reply's tokens arrive as the model streams them, each its own delta.
    assert events.count("thread.message.delta") == len(texts) >= 3
    assert _collapsed(events) == [
        "thread.run.step.completed",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
    ]
    assert "".join(texts) == "Mock reply to: Rome?"
    assert [m.content[0].text.value for m in final_messages] == ["Mock reply to: Rome?"]
    assert final_run is not None and final_run.status == "completed"
    assert sdk.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "completed"


def test_streamed_create_and_run_without_tools(sdk: openai.OpenAI, live_ogem: LiveServer) -> None:
    assistant = sdk.beta.assistants.create(model="mock-chat", instructions="Be brief.")
    with sdk.beta.threads.create_and_run_stream(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "Hello there"}]},
    ) as stream:
        kinds = [event.event for event in stream]
        text = "".join(part.text.value for m in stream.get_final_messages() for part in m.content)
    assert kinds[0] == "thread.created" and kinds[-1] == "thread.run.completed"
    assert text == "Mock reply to: Hello there"
    # The wire ends with OpenAI's `done` event.
    with httpx.stream(
        "POST",
        f"{live_ogem.url}/v1/threads/runs",
        headers={"Authorization": f"Bearer {sdk.api_key}", **BETA},
        json={"assistant_id": assistant.id, "stream": True, "thread": {}},
    ) as answer:
        body = answer.read().decode()
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert body.endswith("event: done\ndata: [DONE]\n\n")


def test_create_and_run_poll_with_run_settings(sdk: openai.OpenAI) -> None:
    assistant = sdk.beta.assistants.create(model="mock-chat", instructions="Base.")
    run = sdk.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "first"}]},
        instructions="Override.",
        metadata={"k": "v"},
        truncation_strategy={"type": "last_messages", "last_messages": 1},
    )
    assert run.status == "completed"
    assert run.instructions == "Override."
    assert run.metadata == {"k": "v"}
    assert run.truncation_strategy.type == "last_messages"
    assert run.truncation_strategy.last_messages == 1
    run2 = sdk.beta.threads.runs.create_and_poll(
        thread_id=run.thread_id,
        assistant_id=assistant.id,
        reasoning_effort="low",
        additional_instructions="Extra.",
        additional_messages=[{"role": "user", "content": "second"}],
    )
    assert run2.instructions == "Base.\n\nExtra."
    assert run2.status == "completed"
    assert run2.model_extra is not None and run2.model_extra["reasoning_effort"] == "low"
    messages = sdk.beta.threads.messages.list(thread_id=run.thread_id, order="asc")
    assert _texts(messages.data) == [
        ("user", "first"),
        ("assistant", "Mock reply to: first"),
        ("user", "second"),
        ("assistant", "Mock reply to: second"),
    ]
    listed = sdk.beta.threads.runs.list(thread_id=run.thread_id)
    assert [r.id for r in listed.data] == [run2.id, run.id]
    updated = sdk.beta.threads.runs.update(run.id, thread_id=run.thread_id, metadata={"x": "y"})
    assert updated.metadata == {"x": "y"}


def test_max_completion_tokens_ends_the_run_incomplete(sdk: openai.OpenAI) -> None:
    assistant = sdk.beta.assistants.create(model="mock-chat")
    thread = sdk.beta.threads.create(
        messages=[{"role": "user", "content": " ".join(f"word{i}" for i in range(600))}]
    )
    run = sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256
    )
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens == 256
    message = sdk.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data[0]
    assert message.status == "incomplete"
    assert message.incomplete_details.reason == "max_tokens"

    run = sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256
    )
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_prompt_tokens"


class _Texts(AssistantEventHandler):
    """The SDK's handler, keeping each text delta; `on_first(the run)` after the first."""

    def __init__(self, into: list[str], on_first: Callable[[Any], None] | None = None) -> None:
        super().__init__()
        self.into = into
        self.on_first = on_first

    def on_text_delta(self, delta: Any, snapshot: Any) -> None:
        self.into.append(delta.value)
        if self.on_first is not None and len(self.into) == 1:
            self.on_first(self.current_run)


_ENDED = {
    "thread.message.completed",
    "thread.message.incomplete",
    "thread.run.step.completed",
    *(f"thread.run.{status}" for status in ("completed", "incomplete", "cancelled", "failed")),
}


def _streamed_run_closes_its_message(
    sdk: openai.OpenAI,
    *,
    model: str,
    content: str,
    ends: tuple[str, str],
    on_first_text: Callable[[Any], None] | None = None,
    **settings: Any,
) -> Any:
    """Stream a run of `model` on a thread of `content` through the SDK; as OpenAI streams it,
    the message it showed ends with `thread.message.incomplete` (its step completed), then the
    run's last event; the SDK's helpers follow and the thread keeps the message as shown.
    `ends`: the run's status and the message's incomplete reason. Returns the run."""
    run_status, message_reason = ends
    assistant_id = sdk.beta.assistants.create(model=model).id
    thread_id = sdk.beta.threads.create(messages=[{"role": "user", "content": content}]).id
    texts: list[str] = []
    with sdk.beta.threads.runs.stream(
        thread_id=thread_id,
        assistant_id=assistant_id,
        event_handler=_Texts(texts, on_first_text),
        **settings,
    ) as stream:
        events = list(stream)
        final_messages = stream.get_final_messages()
        final_run = stream.current_run
    kinds = [event.event for event in events]
    assert [kind for kind in kinds if kind in _ENDED] == [
        "thread.message.incomplete",
        "thread.run.step.completed",
        f"thread.run.{run_status}",
    ]
    closing = next(e.data for e in events if e.event == "thread.message.incomplete")
    assert closing.status == "incomplete"
    assert closing.incomplete_details is not None
    assert closing.incomplete_details.reason == message_reason
    assert closing.incomplete_at is not None and closing.completed_at is None
    assert closing.content[0].text.value == "".join(texts) != ""
    assert [m.id for m in final_messages] == [closing.id]
    assert final_run is not None and final_run.status == run_status
    # What the stream showed is the thread's message.
    kept = sdk.beta.threads.messages.retrieve(closing.id, thread_id=thread_id)
    assert (kept.status, kept.content[0].text.value) == ("incomplete", "".join(texts))
    assert kept.incomplete_details is not None and kept.run_id == final_run.id
    assert kept.incomplete_details.reason == message_reason
    return final_run


def test_a_streamed_run_that_ends_incomplete_closes_its_message(sdk: openai.OpenAI) -> None:
    long = " ".join(f"word{i}" for i in range(600))
    for limit, reason in (
        ({"max_completion_tokens": 256}, "max_completion_tokens"),
        ({"max_prompt_tokens": 256}, "max_prompt_tokens"),
    ):
        run = _streamed_run_closes_its_message(
            sdk, model="mock-chat", content=long, ends=("incomplete", "max_tokens"), **limit
        )
        assert run.incomplete_details.reason == reason


def test_a_streamed_run_cancelled_mid_message_closes_it(
    sdk: openai.OpenAI, install_deployments: Callable[..., None]
) -> None:
    """A cancel that arrives while the text streams: the run ends cancelled once the model call
    ends, the message shown closed with OpenAI's `run_cancelled`."""
    install_deployments(
        Deployment(
            id="test:paced-chat",
            model_name="paced-chat",
            provider="mock",
            upstream_model="mock-chat",
            params={"chunk_delay_ms": 300},  # the cancel lands while the text still streams
        )
    )
    cancels: list[str] = []

    def cancel(run: Any) -> None:
        cancels.append(sdk.beta.threads.runs.cancel(run.id, thread_id=run.thread_id).status)

    run = _streamed_run_closes_its_message(
        sdk,
        model="paced-chat",
        content="one two three four five six seven",
        ends=("cancelled", "run_cancelled"),
        on_first_text=cancel,
    )
    assert cancels == ["cancelling"]
    assert run.cancelled_at is not None


def test_a_streamed_run_whose_model_call_fails_mid_message_closes_it(
    sdk: openai.OpenAI, emulated_model: Callable[..., OpenAIEmulator]
) -> None:
    # Its role, two words of text, then the connection cut.
    emulated_model().inject(cut_after_chunks=3)
    run = _streamed_run_closes_its_message(
        sdk, model="emulated", content="hi", ends=("failed", "run_failed")
    )
    assert run.last_error is not None and run.last_error.code == "server_error"


def test_cancel_and_wrong_state_answers(sdk: openai.OpenAI) -> None:
    assistant = sdk.beta.assistants.create(model="mock-chat", tools=[WEATHER])
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Oslo?"}])
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action"

    with pytest.raises(openai.BadRequestError) as raised:
        sdk.beta.threads.messages.create(thread_id=thread.id, role="user", content="more")
    assert _error(raised)["message"] == (
        f"Can't add messages to {thread.id} while a run {run.id} is active."
    )
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert _error(raised)["message"] == f"Thread {thread.id} already has an active run {run.id}."
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.beta.threads.runs.submit_tool_outputs(
            run_id=run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": "call_unknown", "output": "x"}],
        )
    assert _error(raised)["param"] == "tool_outputs[0].tool_call_id"

    cancelled = sdk.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert cancelled.status == "cancelled" and cancelled.cancelled_at is not None
    steps = sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id)
    assert [s.status for s in steps.data] == ["cancelled"]
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert _error(raised)["message"] == "Cannot cancel run with status 'cancelled'."
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "x", "output": ""}]
        )
    error = _error(raised)
    assert error["message"] == 'Runs in status "cancelled" do not accept tool outputs.'
    assert error["type"] == "invalid_request_error"
    # The thread is free again.
    sdk.beta.threads.messages.create(thread_id=thread.id, role="user", content="again")


def test_a_run_waiting_for_outputs_expires(sdk: openai.OpenAI, settings: Any) -> None:
    settings.OGEM_ASSISTANTS_RUN_EXPIRY_SECONDS = 1
    assistant = sdk.beta.assistants.create(model="mock-chat", tools=[WEATHER])
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Lima?"}])
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    time.sleep(1.1)
    expired = sdk.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert expired.status == "expired" and expired.required_action is None
    with pytest.raises(openai.BadRequestError):
        sdk.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "x", "output": ""}]
        )


def test_a_failed_model_call_fails_the_run_with_last_error(sdk: openai.OpenAI) -> None:
    assistant = sdk.beta.assistants.create(model="mock-chat")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    # The model is no longer served when the run calls it: the pipeline's 404 fails the run.
    Run_model = "mock-does-not-exist"
    from assistants.models import Assistant

    Assistant.objects.filter(assistant_id=assistant.id).update(model=Run_model)
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "failed"
    assert run.failed_at is not None
    assert run.last_error.code == "server_error"
    assert "mock-does-not-exist" in run.last_error.message


def test_bad_input_answers_openais_errors(sdk: openai.OpenAI, live_ogem: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {sdk.api_key}"}
    answer = httpx.post(
        f"{live_ogem.url}/v1/assistants", headers=headers, json={"model": "mock-chat"}
    )
    assert answer.status_code == 400
    assert "OpenAI-Beta" in answer.json()["error"]["message"]
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.beta.assistants.create(model="mock-chat", tools=[{"type": "code_interpreter"}])
    assert _error(raised)["param"] == "tools[0].type"
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.beta.assistants.create(model="no-such-model")
    assert _error(raised)["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.beta.assistants.create(model="mock-chat", extra_body={"colour": "red"})
    assert _error(raised)["param"] == "colour"
    thread = sdk.beta.threads.create()
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_missing")
    assert _error(raised)["param"] == "assistant_id"
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.beta.threads.messages.list(thread_id=thread.id, limit=500)
    assert _error(raised)["param"] == "limit"
    with pytest.raises(openai.BadRequestError) as raised:
        sdk.beta.threads.messages.create(thread_id=thread.id, role="system", content="x")
    assert _error(raised)["param"] == "role"
    with pytest.raises(openai.NotFoundError):
        sdk.beta.threads.messages.retrieve("msg_nope", thread_id=thread.id)
    answer = httpx.post(
        f"{live_ogem.url}/v1/threads/{thread.id}/runs",
        headers={**headers, **BETA},
        content=b"{not json",
    )
    assert answer.status_code == 400
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_objects_are_scoped_to_the_tenant(key_sdk: Callable[..., openai.OpenAI]) -> None:
    alice, bob = key_sdk(), key_sdk()
    assistant = alice.beta.assistants.create(model="mock-chat", tools=[WEATHER])
    thread = alice.beta.threads.create(messages=[{"role": "user", "content": "Nice?"}])
    message = alice.beta.threads.messages.list(thread_id=thread.id).data[0]
    run = alice.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    step = alice.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data[0]

    attempts: list[Callable[[], Any]] = [
        lambda: bob.beta.assistants.retrieve(assistant.id),
        lambda: bob.beta.assistants.update(assistant.id, name="x"),
        lambda: bob.beta.assistants.delete(assistant.id),
        lambda: bob.beta.threads.retrieve(thread.id),
        lambda: bob.beta.threads.update(thread.id, metadata={}),
        lambda: bob.beta.threads.delete(thread.id),
        lambda: bob.beta.threads.messages.list(thread_id=thread.id),
        lambda: bob.beta.threads.messages.retrieve(message.id, thread_id=thread.id),
        lambda: bob.beta.threads.messages.create(thread_id=thread.id, role="user", content="x"),
        lambda: bob.beta.threads.runs.retrieve(run.id, thread_id=thread.id),
        lambda: bob.beta.threads.runs.list(thread_id=thread.id),
        lambda: bob.beta.threads.runs.cancel(run.id, thread_id=thread.id),
        lambda: bob.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[]
        ),
        lambda: bob.beta.threads.runs.steps.retrieve(step.id, thread_id=thread.id, run_id=run.id),
        lambda: bob.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id),
    ]
    for attempt in attempts:
        with pytest.raises(openai.NotFoundError):
            attempt()
    # Bob's own thread cannot run Alice's assistant.
    own = bob.beta.threads.create()
    with pytest.raises(openai.NotFoundError) as raised:
        bob.beta.threads.runs.create(thread_id=own.id, assistant_id=assistant.id)
    assert _error(raised)["param"] == "assistant_id"
    assert bob.beta.assistants.list().data == []
    assert alice.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status == "requires_action"


def test_runs_are_accounted_to_the_key(key_sdk: Callable[..., openai.OpenAI]) -> None:
    client = key_sdk()
    assistant = client.beta.assistants.create(model="mock-chat", tools=[WEATHER])
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Kyiv?"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "5C"}]
    )
    usage_drain()
    row = Run.objects.get(run_id=done.id)
    logs = RequestLog.objects.filter(key_id=row.key_id, model="mock-chat")
    assert logs.count() == 2
    assert sum(log.prompt_tokens + log.completion_tokens for log in logs) == done.usage.total_tokens


def test_threads_and_messages_read_change_and_delete(sdk: openai.OpenAI) -> None:
    thread = sdk.beta.threads.create(
        messages=[
            {"role": "user", "content": "one", "metadata": {"n": "1"}},
            {"role": "assistant", "content": "two"},
        ],
        metadata={"topic": "t"},
    )
    assert thread.metadata == {"topic": "t"}
    assert thread.tool_resources is not None
    changed = sdk.beta.threads.update(
        thread.id,
        metadata={"topic": "u"},
        tool_resources={"file_search": {"vector_store_ids": ["vs_1"]}},
    )
    assert changed.metadata == {"topic": "u"}
    assert changed.tool_resources.file_search.vector_store_ids == ["vs_1"]

    raw = sdk.beta.threads.messages.with_raw_response.create(
        thread_id=thread.id,
        role="user",
        content=[
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        ],
        attachments=[{"file_id": "file-abc", "tools": [{"type": "file_search"}]}],
    )
    body = raw.http_response.json()
    schema_validate("MessageObject", body)
    assert body["content"] == [
        {"type": "text", "text": {"value": "look", "annotations": []}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "auto"}},
    ]
    assert body["attachments"] == [{"file_id": "file-abc", "tools": [{"type": "file_search"}]}]
    message = raw.parse()
    listed = sdk.beta.threads.messages.list(thread_id=thread.id)
    assert [m.content[0].text.value for m in listed.data] == ["look", "two", "one"]
    page = sdk.beta.threads.messages.list(thread_id=thread.id, order="asc", limit=2)
    assert [m.content[0].text.value for m in page.data] == ["one", "two"] and page.has_more
    rest = sdk.beta.threads.messages.list(thread_id=thread.id, order="asc", after=page.last_id)
    assert [m.id for m in rest.data] == [message.id] and not rest.has_more

    updated = sdk.beta.threads.messages.update(message.id, thread_id=thread.id, metadata={"a": "b"})
    assert updated.metadata == {"a": "b"}
    assert sdk.beta.threads.messages.retrieve(message.id, thread_id=thread.id).metadata == {
        "a": "b"
    }
    gone = sdk.beta.threads.messages.delete(message.id, thread_id=thread.id)
    assert (gone.id, gone.object, gone.deleted) == (message.id, "thread.message.deleted", True)
    assert len(sdk.beta.threads.messages.list(thread_id=thread.id).data) == 2

    deleted = sdk.beta.threads.delete(thread.id)
    assert (deleted.object, deleted.deleted) == ("thread.deleted", True)
    with pytest.raises(openai.NotFoundError):
        sdk.beta.threads.retrieve(thread.id)
    with pytest.raises(openai.NotFoundError):
        sdk.beta.threads.messages.list(thread_id=thread.id)


@pytest.mark.skipif(
    importlib.util.find_spec("vector_stores") is not None,
    reason="the vector_stores app is installed: tests/assistants/test_file_search.py covers it",
)
def test_file_search_without_vector_stores_fails_the_run_clearly(sdk: openai.OpenAI) -> None:
    assistant = sdk.beta.assistants.create(
        model="mock-chat",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": ["vs_abc"]}},
    )
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "find it"}])
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "failed"
    assert (
        run.last_error.message == "file_search is not available on this server (no vector stores)."
    )


def test_a_streamed_run_whose_model_call_fails_ends_failed(
    sdk: openai.OpenAI, live_ogem: LiveServer
) -> None:
    from assistants.models import Assistant

    assistant = sdk.beta.assistants.create(model="mock-chat")
    Assistant.objects.filter(assistant_id=assistant.id).update(model="mock-gone")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    with httpx.stream(
        "POST",
        f"{live_ogem.url}/v1/threads/{thread.id}/runs",
        headers={"Authorization": f"Bearer {sdk.api_key}", **BETA},
        json={"assistant_id": assistant.id, "stream": True},
    ) as answer:
        body = answer.read().decode()
    names = [line[len("event: ") :] for line in body.splitlines() if line.startswith("event: ")]
    assert names == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.failed",
        "done",
    ]
    run = sdk.beta.threads.runs.list(thread_id=thread.id).data[0]
    assert run.status == "failed" and "mock-gone" in run.last_error.message


def test_a_run_cancelled_while_its_model_call_is_in_flight_ends_cancelled(
    sdk: openai.OpenAI, install_deployments: Callable[..., None]
) -> None:
    import threading

    from tests.emulators.fixtures import slow_mock

    install_deployments(slow_mock("slow-chat", latency_ms=1500, upstream_model="mock-chat"))
    assistant = sdk.beta.assistants.create(model="slow-chat")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "slowly"}])
    events: list[str] = []

    def consume() -> None:
        with sdk.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            events.extend(event.event for event in stream)

    streaming = threading.Thread(target=consume)
    streaming.start()
    deadline = time.monotonic() + 10
    while not Run.objects.filter(thread__thread_id=thread.id, status="in_progress").exists():
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.02)
    run_id = Run.objects.get(thread__thread_id=thread.id).run_id
    asked = sdk.beta.threads.runs.cancel(run_id, thread_id=thread.id)
    assert asked.status == "cancelling"
    streaming.join(timeout=30)
    assert events[-3:] == [
        "thread.message.incomplete",
        "thread.run.step.completed",
        "thread.run.cancelled",
    ]
    run = sdk.beta.threads.runs.retrieve(run_id, thread_id=thread.id)
    assert run.status == "cancelled" and run.cancelled_at is not None
    # The answer that arrived after the cancel was streamed: kept as shown, incomplete; its
    # tokens are counted.
    kept = sdk.beta.threads.messages.list(thread_id=thread.id, run_id=run_id).data
    assert [(m.status, m.content[0].text.value) for m in kept] == [
        ("incomplete", "Mock reply to: slowly")
    ]
    assert kept[0].incomplete_details is not None
    assert kept[0].incomplete_details.reason == "run_cancelled"
    assert run.usage is not None and run.usage.completion_tokens > 0


def test_a_tenant_past_its_storage_bound_is_refused_with_openais_quota_error(
    key_sdk: Callable[..., openai.OpenAI], settings: Any
) -> None:
    """OGEM_ASSISTANTS_MAX_OBJECTS bounds a tenant's assistants, threads and messages together;
    past it, a create is OpenAI's 429 `insufficient_quota` and nothing is written. Another
    tenant's bound is its own; deleting makes room again."""
    settings.OGEM_ASSISTANTS_MAX_OBJECTS = 4
    sdk = key_sdk()
    assistant = sdk.beta.assistants.create(model="mock-chat")  # 1
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "hi"}])  # 3
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.beta.threads.create(messages=[{"role": "user", "content": "one too many"}])
    error = _error(raised)
    assert raised.value.status_code == 429
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "4" in error["message"]
    sdk.beta.threads.messages.create(thread_id=thread.id, role="user", content="fourth")  # 4
    for refused in (
        lambda: sdk.beta.threads.messages.create(thread_id=thread.id, role="user", content="x"),
        lambda: sdk.beta.assistants.create(model="mock-chat"),
        lambda: sdk.beta.threads.runs.create(
            thread_id=thread.id,
            assistant_id=assistant.id,
            additional_messages=[{"role": "user", "content": "x"}],
        ),
    ):
        with pytest.raises(openai.RateLimitError):
            refused()
    assert len(sdk.beta.threads.messages.list(thread_id=thread.id).data) == 2
    assert not sdk.beta.threads.runs.list(thread_id=thread.id).data
    # A run without new messages still runs, and its answer is written past the bound.
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    assert len(sdk.beta.threads.messages.list(thread_id=thread.id).data) == 3
    # Another tenant (a key in a team of its own) stores on.
    assert key_sdk().beta.assistants.create(model="mock-chat").id
    sdk.beta.threads.delete(thread.id)
    assert sdk.beta.assistants.create(model="mock-chat").id
