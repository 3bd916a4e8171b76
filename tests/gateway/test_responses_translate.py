"""The Responses API's translation to and from chat completions (gateway/responses_api/), on the
shapes the live tests do not reach: parallel tool calls in a stream, an assistant's text and
calls merged into one chat message, usage details."""

from __future__ import annotations

from typing import Any

from gateway.responses_api.stream import EventTranslator
from gateway.responses_api.translate import (
    chat_body_build,
    request_check,
    response_shell,
    usage_from_chat,
)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _call(index: int, *, call_id: str = "", name: str = "", arguments: str = "") -> dict:
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        call["id"], call["type"] = call_id, "function"
        call["function"]["name"] = name
    return call


def test_parallel_tool_calls_stream_as_two_function_call_items() -> None:
    request = request_check({"model": "m", "input": "Weather in Oslo and Rome?"})
    translator = EventTranslator(
        response_shell(request, response_id="resp_1", created_at=1, status="in_progress")
    )
    events = translator.start()
    events += translator.feed(_chunk({"role": "assistant", "content": "Checking."}))
    events += translator.feed(
        _chunk({"tool_calls": [_call(0, call_id="call_a", name="weather", arguments='{"c":')]})
    )
    events += translator.feed(
        _chunk({"tool_calls": [_call(1, call_id="call_b", name="weather", arguments='{"c":')]})
    )
    events += translator.feed(_chunk({"tool_calls": [_call(0, arguments='"Oslo"}')]}))
    events += translator.feed(_chunk({"tool_calls": [_call(1, arguments='"Rome"}')]}, "tool_calls"))
    events += translator.feed(
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}}
    )
    events += translator.finish()
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    final = translator.final
    assert final is not None and final["status"] == "completed"
    assert [item["type"] for item in final["output"]] == [
        "message",
        "function_call",
        "function_call",
    ]
    calls = final["output"][1:]
    assert [(c["call_id"], c["arguments"]) for c in calls] == [
        ("call_a", '{"c":"Oslo"}'),
        ("call_b", '{"c":"Rome"}'),
    ]
    added = [e for e in events if e["type"] == "response.output_item.added"]
    done = [e for e in events if e["type"] == "response.output_item.done"]
    assert [e["output_index"] for e in added] == [0, 1, 2]
    assert sorted(e["output_index"] for e in done) == [0, 1, 2]
    # The message was closed before the first call began, as OpenAI orders them.
    kinds = [e["type"] for e in events]
    assert kinds.index("response.output_text.done") < kinds.index(
        "response.function_call_arguments.delta"
    )
    assert final["usage"]["input_tokens"] == 9


def test_an_assistant_turn_and_its_calls_are_one_chat_message() -> None:
    request = request_check(
        {
            "model": "m",
            "instructions": "Be brief.",
            "input": [
                {"role": "developer", "content": "Use tools."},
                {"role": "user", "content": "Weather?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"role": "assistant", "content": "Checking."},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                {
                    "type": "function_call_output",
                    "call_id": "c2",
                    "output": [{"type": "input_text", "text": "rain"}],
                },
            ],
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "w"},
            "text": {"format": {"type": "json_object"}},
            "max_output_tokens": 50,
        }
    )
    body = chat_body_build(request, history=[], stream=False)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Use tools."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]
    assert body["tools"] == [
        {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "w"}}
    assert body["response_format"] == {"type": "json_object"}
    assert body["max_completion_tokens"] == 50
    assert "stream" not in body


def test_usage_details_in_the_responses_terms() -> None:
    usage = usage_from_chat(
        {
            "prompt_tokens": 100,
            "completion_tokens": 40,
            "total_tokens": 140,
            "prompt_tokens_details": {"cached_tokens": 64, "cache_creation_tokens": 12},
            "completion_tokens_details": {"reasoning_tokens": 30},
        }
    )
    assert usage == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 12},
        "output_tokens": 40,
        "output_tokens_details": {"reasoning_tokens": 30},
        "total_tokens": 140,
    }
