"""file_search in a run: the assistant's vector store searched through the `vector_stores` app
(`vector_stores.search.vector_stores_search`) when the model calls the tool, the results in a
file_search run step, and the answer after them. Skipped where that app is absent."""

from __future__ import annotations

import importlib.util
import io
import time
from typing import Any

import openai
import pytest
from openai import AssistantEventHandler

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        importlib.util.find_spec("vector_stores") is None
        or importlib.util.find_spec("vector_stores.search") is None,
        reason="the vector_stores app is not installed",
    ),
]

DOCUMENT = b"The lighthouse keeper of Port Ellis is named Marguerite Okafor."


def test_file_search_answers_from_the_assistants_vector_store(sdk: openai.OpenAI) -> None:
    uploaded = sdk.files.create(file=("keeper.txt", io.BytesIO(DOCUMENT)), purpose="assistants")
    store = sdk.vector_stores.create(name="harbour", file_ids=[uploaded.id])
    deadline = time.monotonic() + 60
    while sdk.vector_stores.retrieve(store.id).file_counts.completed < 1:
        assert time.monotonic() < deadline, "the file was not indexed in time"
        time.sleep(0.1)
    assistant = sdk.beta.assistants.create(
        model="mock-chat",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    thread = sdk.beta.threads.create(
        messages=[{"role": "user", "content": "Who keeps the Port Ellis lighthouse?"}]
    )
    # The mock calls the first tool (file_search) once, then answers after its result.
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    steps = sdk.beta.threads.runs.steps.list(
        run_id=run.id,
        thread_id=thread.id,
        order="asc",
        include=["step_details.tool_calls[*].file_search.results[*].content"],
    )
    assert [step.type for step in steps.data] == ["tool_calls", "message_creation"]
    call = steps.data[0].step_details.tool_calls[0]
    assert call.type == "file_search"
    results = call.file_search.results
    assert results[0].file_id == uploaded.id
    assert results[0].file_name == "keeper.txt"
    assert "Marguerite Okafor" in results[0].content[0].text
    bare = sdk.beta.threads.runs.steps.retrieve(
        steps.data[0].id, thread_id=thread.id, run_id=run.id
    )
    assert bare.step_details.tool_calls[0].file_search.results[0].content is None
    answer = sdk.beta.threads.messages.list(thread_id=thread.id, run_id=run.id).data[0]
    assert answer.content[0].text.value == "Mock reply to: Who keeps the Port Ellis lighthouse?"


def test_a_streamed_run_shows_its_search_then_streams_the_answer(sdk: openai.OpenAI) -> None:
    uploaded = sdk.files.create(file=("keeper.txt", io.BytesIO(DOCUMENT)), purpose="assistants")
    store = sdk.vector_stores.create(name="harbour", file_ids=[uploaded.id])
    deadline = time.monotonic() + 60
    while sdk.vector_stores.retrieve(store.id).file_counts.completed < 1:
        assert time.monotonic() < deadline, "the file was not indexed in time"
        time.sleep(0.1)
    assistant = sdk.beta.assistants.create(
        model="mock-chat",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    thread = sdk.beta.threads.create(
        messages=[{"role": "user", "content": "Who keeps the Port Ellis lighthouse?"}]
    )
    texts: list[str] = []
    calls: list[str] = []

    class Handler(AssistantEventHandler):
        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            texts.append(delta.value)

        def on_tool_call_created(self, tool_call: Any) -> None:
            calls.append(tool_call.type)

    with sdk.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=Handler()
    ) as stream:
        events = [event.event for event in stream]
        run = stream.current_run
    assert calls == ["file_search"]
    tool_step_done = events.index("thread.run.step.completed")
    assert events[3:tool_step_done] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.run.step.delta",
    ]
    assert events[tool_step_done + 1 : tool_step_done + 5] == [
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
    ]
    assert len(texts) > 1
    assert "".join(texts) == "Mock reply to: Who keeps the Port Ellis lighthouse?"
    assert run is not None and run.status == "completed"
    steps = sdk.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id, order="asc")
    assert [step.type for step in steps.data] == ["tool_calls", "message_creation"]
    assert steps.data[0].step_details.tool_calls[0].file_search.results[0].file_id == uploaded.id
