"""Anthropic SSE events → OpenAI chunks, and an `error` event → Ogem's error (the HTTP error
answers of every provider are tested in tests/providers/test_upstream_errors.py)."""

from __future__ import annotations

import pytest

from gateway.errors import UpstreamUnavailableError
from providers.anthropic.stream import StreamTranslator

START = {
    "type": "message_start",
    "message": {
        "id": "msg_s",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1},
    },
}


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {
        "id": "chatcmpl-msg_s",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "claude-x",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def run(events: list[dict]) -> list[dict]:
    translator = StreamTranslator(created=1)
    out: list[dict] = []
    for event in events:
        out += translator.feed(event)
    assert translator.finished
    return out


def test_text_thinking_and_two_tool_calls() -> None:
    events = [
        START,
        {"type": "ping"},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Hmm."},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "SIG"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_a", "name": "f", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": ""},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"x": 1}'},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "content_block_start",
            "index": 3,
            "content_block": {"type": "tool_use", "id": "toolu_b", "name": "g", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 3,
            "delta": {"type": "input_json_delta", "partial_json": "{}"},
        },
        {"type": "content_block_stop", "index": 3},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": 30},
        },
        {"type": "message_stop"},
    ]
    usage_chunk = chunk({})
    usage_chunk["choices"] = []
    usage_chunk["usage"] = {
        "prompt_tokens": 30,
        "completion_tokens": 30,
        "total_tokens": 60,
        "prompt_tokens_details": {"cached_tokens": 5, "cache_creation_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    assert run(events) == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "Hmm."}),
        chunk({"thinking_blocks": [{"type": "thinking", "thinking": "Hmm.", "signature": "SIG"}]}),
        chunk({"content": "Hi"}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "toolu_a",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"x": 1}'}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "toolu_b",
                        "type": "function",
                        "function": {"name": "g", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
        usage_chunk,
    ]


def test_json_mode_tool_streams_as_content() -> None:
    events = [
        START,
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "tool_use", "id": "t", "name": "json_response", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "input_json_delta", "partial_json": "1}"},
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
    ]
    out = run(events)
    assert out[1:4] == [chunk({"content": '{"a":'}), chunk({"content": "1}"}), chunk({}, "stop")]


def test_error_event_raises_the_mapped_error() -> None:
    translator = StreamTranslator(created=1, secrets=("sk-secret",))
    translator.feed(START)
    with pytest.raises(UpstreamUnavailableError) as caught:
        translator.feed(
            {
                "type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded sk-secret"},
            }
        )
    assert caught.value.status == 503
    assert caught.value.message == "anthropic returned 529 overloaded_error: Overloaded [redacted]"
    assert caught.value.provider == "anthropic"
