"""OpenAI chat requests and Anthropic Messages responses, translated both ways (exact dicts)."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidRequestError
from providers.anthropic.translate import (
    chat_request_to_messages,
    messages_response_to_chat,
    usage_to_openai,
)
from providers.base import Deployment

DEPLOYMENT = Deployment(
    id="config:claude:0",
    model_name="claude",
    provider="anthropic",
    upstream_model="claude-3-5-haiku-20241022",
)


def translate(body: dict, *, deployment: Deployment = DEPLOYMENT, stream: bool = False) -> dict:
    return chat_request_to_messages(body=body, deployment=deployment, stream=stream)


def test_plain_request_gets_model_and_default_max_tokens() -> None:
    assert translate({"model": "claude", "messages": [{"role": "user", "content": "Hi"}]}) == {
        "model": "claude-3-5-haiku-20241022",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hi"}],
    }


def test_max_tokens_from_request_then_deployment_params() -> None:
    messages = [{"role": "user", "content": "Hi"}]
    assert translate({"messages": messages, "max_completion_tokens": 77})["max_tokens"] == 77
    assert translate({"messages": messages, "max_tokens": 55})["max_tokens"] == 55
    with_default = Deployment(
        id="d", model_name="c", provider="anthropic", upstream_model="m", params={"max_tokens": 999}
    )
    assert translate({"messages": messages}, deployment=with_default)["max_tokens"] == 999


def test_system_lifted_and_same_roles_merged() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "One"},
            {"role": "user", "content": [{"type": "text", "text": "Two"}]},
            {"role": "developer", "content": "Answer in French."},
            {"role": "assistant", "content": "Un"},
            {"role": "assistant", "content": "Deux"},
            {"role": "user", "content": "Trois?"},
        ],
        "stop": "END",
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "customer-42",
        "frequency_penalty": 0.5,
        "seed": 7,
        "logprobs": False,
        "metadata": {"tags": ["a"]},
    }
    assert translate(body, stream=True) == {
        "model": "claude-3-5-haiku-20241022",
        "max_tokens": 4096,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "One"}, {"type": "text", "text": "Two"}],
            },
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Un"}, {"type": "text", "text": "Deux"}],
            },
            {"role": "user", "content": "Trois?"},
        ],
        "system": [
            {"type": "text", "text": "Be brief."},
            {"type": "text", "text": "Answer in French."},
        ],
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "metadata": {"user_id": "customer-42"},
        "stream": True,
    }


def test_single_system_message_is_a_string_and_leading_assistant_gets_a_user_turn() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "S"},
            {"role": "assistant", "content": "Hello, how can I help?"},
            {"role": "user", "content": "Tell me a joke"},
        ],
        "stop": ["a", "b"],
    }
    result = translate(body)
    assert result["system"] == "S"
    assert result["stop_sequences"] == ["a", "b"]
    assert result["messages"] == [
        {"role": "user", "content": "."},
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "Tell me a joke"},
    ]


def test_tools_tool_calls_and_parallel_tool_results() -> None:
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        "cache_control": {"type": "ephemeral"},
    }
    body = {
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "toolu_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {
                "role": "tool",
                "tool_call_id": "toolu_2",
                "content": [{"type": "text", "text": "21C"}],
            },
            {"role": "user", "content": "Thanks, and which is warmer?"},
        ],
        "tools": [tool, {"type": "function", "function": {"name": "noop"}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    result = translate(body)
    assert result["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"},
        },
        {"name": "noop", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert result["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert result["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "21C"}],
                },
                {"type": "text", "text": "Thanks, and which is warmer?"},
            ],
        },
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        ("required", {"type": "any"}),
        ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
    ],
)
def test_tool_choice_mapping(choice: object, expected: dict) -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": choice,
    }
    assert translate(body)["tool_choice"] == expected


def test_images_pdfs_and_cache_control_on_parts() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Compare", "cache_control": {"type": "ephemeral"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    {
                        "type": "file",
                        "file": {
                            "file_data": "data:application/pdf;base64,JVBERi0",
                            "filename": "a.pdf",
                        },
                    },
                ],
            }
        ]
    }
    assert translate(body)["messages"][0]["content"] == [
        {"type": "text", "text": "Compare", "cache_control": {"type": "ephemeral"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0"},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0"},
            "title": "a.pdf",
        },
    ]


def test_json_schema_becomes_a_forced_tool() -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}}
    body = {
        "messages": [{"role": "user", "content": "2+2?"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "sum", "schema": schema},
        },
    }
    result = translate(body)
    assert result["tools"] == [
        {"name": "json_response", "description": "Respond with sum JSON.", "input_schema": schema}
    ]
    assert result["tool_choice"] == {"type": "tool", "name": "json_response"}
    json_object = translate({**body, "response_format": {"type": "json_object"}})
    assert json_object["tools"] == [
        {
            "name": "json_response",
            "description": "Respond with a JSON object.",
            "input_schema": {"type": "object"},
        }
    ]


def test_reasoning_effort_and_thinking_blocks() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "Think"},
            {
                "role": "assistant",
                "content": "",
                "thinking_blocks": [{"type": "thinking", "thinking": "hmm", "signature": "sig"}],
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "done"},
        ],
        "reasoning_effort": "medium",
    }
    result = translate(body)
    assert result["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert result["max_tokens"] == 4096
    assert result["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
        ],
    }
    small_default = Deployment(
        id="d",
        model_name="c",
        provider="anthropic",
        upstream_model="m",
        params={"max_tokens": 1000},
    )
    high = translate({**body, "reasoning_effort": "high"}, deployment=small_default)
    assert (high["thinking"]["budget_tokens"], high["max_tokens"]) == (4096, 4096 + 4096)
    passthrough = translate({**body, "thinking": {"type": "enabled", "budget_tokens": 3000}})
    assert passthrough["thinking"] == {"type": "enabled", "budget_tokens": 3000}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "system", "content": "only system"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"messages": [{"role": "function", "content": "x", "name": "f"}]}, "messages"),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}
                ]
            },
            "messages",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "function", "function": {"name": "json_response"}}],
            },
            "tools",
        ),
        (
            {"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"},
            "reasoning_effort",
        ),
    ],
)
def test_untranslatable_requests_are_400(body: dict, param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        translate(body)
    assert caught.value.status == 400
    assert caught.value.param == param


def test_usage_mapping_counts_cache_reads_and_writes() -> None:
    usage = {
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 50,
    }
    assert usage_to_openai(usage) == {
        "prompt_tokens": 160,
        "completion_tokens": 20,
        "total_tokens": 180,
        "prompt_tokens_details": {"cached_tokens": 100, "cache_creation_tokens": 50},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def test_response_with_text_thinking_and_tool_calls() -> None:
    response = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [
            {"type": "thinking", "thinking": "Let me check.", "signature": "sig=="},
            {"type": "text", "text": "Checking both."},
            {
                "type": "tool_use",
                "id": "toolu_a",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
            {"type": "tool_use", "id": "toolu_b", "name": "get_weather", "input": {"city": "Rome"}},
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 30, "output_tokens": 40},
    }
    assert messages_response_to_chat(response, created=1700000000) == {
        "id": "chatcmpl-msg_01",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "claude-3-5-haiku-20241022",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking both.",
                    "refusal": None,
                    "annotations": [],
                    "tool_calls": [
                        {
                            "id": "toolu_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "toolu_b",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                        },
                    ],
                    "reasoning_content": "Let me check.",
                    "thinking_blocks": [
                        {"type": "thinking", "thinking": "Let me check.", "signature": "sig=="}
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 40,
            "total_tokens": 70,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_stop_reason_mapping(stop_reason: str, finish: str) -> None:
    response = {
        "id": "m",
        "model": "x",
        "content": [{"type": "text", "text": "a"}],
        "stop_reason": stop_reason,
        "usage": {},
    }
    assert messages_response_to_chat(response)["choices"][0]["finish_reason"] == finish


def test_json_tool_use_comes_back_as_content() -> None:
    response = {
        "id": "msg_j",
        "model": "m",
        "content": [
            {"type": "tool_use", "id": "t", "name": "json_response", "input": {"answer": 4}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    choice = messages_response_to_chat(response)["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == '{"answer":4}'
    assert "tool_calls" not in choice["message"]


def test_json_mode_is_not_forced_while_thinking() -> None:
    body = {
        "messages": [{"role": "user", "content": "2+2 as JSON"}],
        "response_format": {"type": "json_object"},
        "reasoning_effort": "low",
    }
    result = translate(body)
    assert [t["name"] for t in result["tools"]] == ["json_response"]
    assert "tool_choice" not in result
