"""The /v1/messages ingress translations: Messages request → OpenAI, OpenAI answer → Messages."""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import InvalidRequestError, RateLimitError, UpstreamUnavailableError
from providers.anthropic.inbound import (
    ChunkTranslator,
    anthropic_error_body,
    chat_response_to_message,
    chat_strip_anthropic_fields,
    messages_request_to_chat,
    openai_error_to_anthropic,
)


def test_request_translation() -> None:
    body = {
        "model": "any-model",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "Sys", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAA"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/pdf",
                            "data": "JVB",
                        },
                        "title": "spec.pdf",
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "text", "text": "Calling"},
                    {"type": "tool_use", "id": "tu1", "name": "f", "input": {"a": 1}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "tu1",
                        "content": "ok",
                        "is_error": False,
                    },
                    {"type": "text", "text": "Go on"},
                ],
            },
        ],
        "stop_sequences": ["END"],
        "temperature": 0.1,
        "top_k": 5,
        "metadata": {"user_id": "u1"},
        "tools": [
            {
                "name": "f",
                "input_schema": {"type": "object"},
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "stream": True,
    }
    assert messages_request_to_chat(body) == {
        "model": "any-model",
        "messages": [
            {
                "role": "system",
                "content": [
                    {"type": "text", "text": "Sys", "cache_control": {"type": "ephemeral"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                    {
                        "type": "file",
                        "file": {
                            "file_data": "data:application/pdf;base64,JVB",
                            "filename": "spec.pdf",
                        },
                    },
                ],
            },
            {
                "role": "assistant",
                "content": "Calling",
                "tool_calls": [
                    {
                        "id": "tu1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
                "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}],
            },
            {"role": "tool", "tool_call_id": "tu1", "content": "ok"},
            {"role": "user", "content": "Go on"},
        ],
        "max_tokens": 256,
        "stop": ["END"],
        "temperature": 0.1,
        "user": "u1",
        "tools": [
            {
                "type": "function",
                "function": {"name": "f", "parameters": {"type": "object"}},
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "reasoning_effort": "medium",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@pytest.mark.parametrize(
    "body",
    [
        {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "max_tokens": 5, "messages": []},
        {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
        },
    ],
)
def test_invalid_requests(body: dict) -> None:
    with pytest.raises(InvalidRequestError):
        messages_request_to_chat(body)


def test_response_translation() -> None:
    completion = {
        "id": "chatcmpl-1",
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Sure.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"q":"x"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 9,
            "total_tokens": 109,
            "prompt_tokens_details": {"cached_tokens": 60},
        },
    }
    assert chat_response_to_message(completion, model="gpt-4o-2024-08-06", msg_id="msg_x") == {
        "id": "msg_x",
        "type": "message",
        "role": "assistant",
        "model": "gpt-4o-2024-08-06",
        "content": [
            {"type": "text", "text": "Sure."},
            {"type": "tool_use", "id": "call_1", "name": "f", "input": {"q": "x"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 40,
            "output_tokens": 9,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 60,
        },
    }


def _events(raw: list[bytes]) -> list[tuple[str, dict]]:
    out = []
    for item in raw:
        head, data = item.decode().rstrip("\n").split("\n")
        out.append((head.removeprefix("event: "), orjson.loads(data.removeprefix("data: "))))
    return out


def test_stream_translation() -> None:
    translator = ChunkTranslator(model="requested", msg_id="msg_s")

    def chunk(delta: dict, finish: str | None = None) -> dict:
        return {
            "model": "served",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    raw = []
    for item in [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hi"}),
        chunk({"content": " there"}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "f", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "2}"}}]}),
        chunk({}, "tool_calls"),
        {"model": "served", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}},
    ]:
        raw += translator.feed(item)
    raw += translator.finish()
    assert _events(raw) == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_s",
                    "type": "message",
                    "role": "assistant",
                    "model": "served",
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                },
            },
        ),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "Hi"},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": " there"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 1,
                "content_block": {"type": "tool_use", "id": "c1", "name": "f", "input": {}},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": '{"a":'},
            },
        ),
        (
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": "2}"},
            },
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                "usage": {
                    "input_tokens": 7,
                    "output_tokens": 3,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                },
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_error_shapes() -> None:
    assert anthropic_error_body(RateLimitError("slow")) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow"},
    }
    assert anthropic_error_body(UpstreamUnavailableError("busy", provider="x")) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "busy"},
    }
    assert openai_error_to_anthropic(
        {"message": "m", "type": "upstream_error", "param": None, "code": "upstream_timeout"}
    ) == {"type": "error", "error": {"type": "timeout_error", "message": "m"}}
    assert openai_error_to_anthropic({"message": "m", "type": "invalid_request_error"}) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "m"},
    }


def test_anthropic_only_fields_are_stripped_for_other_providers() -> None:
    chat = messages_request_to_chat(
        {
            "model": "gpt",
            "max_tokens": 9,
            "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "Q"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "t", "signature": "s"},
                        {"type": "text", "text": "A"},
                    ],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "More", "cache_control": {"type": "ephemeral"}}
                    ],
                },
            ],
            "tools": [
                {
                    "name": "f",
                    "input_schema": {"type": "object"},
                    "cache_control": {"type": "ephemeral"},
                }
            ],
        }
    )
    assert chat_strip_anthropic_fields(chat) == {
        "model": "gpt",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "S"}]},
            {"role": "user", "content": "Q"},
            {"role": "assistant", "content": "A"},
            {"role": "user", "content": [{"type": "text", "text": "More"}]},
        ],
        "max_tokens": 9,
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
    }
