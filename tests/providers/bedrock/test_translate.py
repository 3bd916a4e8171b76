"""Pure translation: OpenAI ⇄ Converse, with exact dicts."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidRequestError, RateLimitError
from providers.base import Deployment
from providers.bedrock.eventstream import EventMessage, EventStreamDecoder
from providers.bedrock.stream import StreamTranslator
from providers.bedrock.translate import (
    chat_request_to_converse,
    converse_response_to_chat,
    embedding_family,
    model_id,
    thinking_supported,
)
from tests.emulators.bedrock_api import frame_encode

DEPLOYMENT = Deployment(
    id="config:nova:0",
    model_name="nova",
    provider="bedrock",
    upstream_model="converse/amazon.nova-lite-v1:0",
)


def test_history_is_merged_into_alternating_turns() -> None:
    body = {
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "assistant", "content": "Hi, ask me."},
            {"role": "user", "content": "One"},
            {"role": "user", "content": [{"type": "text", "text": "Two"}]},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a": 1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "done"},
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": "required",
        "stop": "END",
    }
    assert chat_request_to_converse(body=body, deployment=DEPLOYMENT) == {
        "messages": [
            {"role": "user", "content": [{"text": "."}]},
            {"role": "assistant", "content": [{"text": "Hi, ask me."}]},
            {"role": "user", "content": [{"text": "One"}, {"text": "Two"}]},
            {
                "role": "assistant",
                "content": [{"toolUse": {"toolUseId": "t1", "name": "f", "input": {"a": 1}}}],
            },
            {
                "role": "user",
                "content": [
                    {"toolResult": {"toolUseId": "t1", "content": [{"text": "done"}]}},
                    {"text": "Thanks"},
                ],
            },
        ],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"stopSequences": ["END"]},
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "f",
                        "inputSchema": {"json": {"type": "object", "properties": {}}},
                    }
                }
            ],
            "toolChoice": {"any": {}},
        },
    }


def test_named_tool_choice_and_none() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    named = {"type": "function", "function": {"name": "f"}}
    base = {"messages": [{"role": "user", "content": "x"}], "tools": tools}
    forced = chat_request_to_converse(body={**base, "tool_choice": named}, deployment=DEPLOYMENT)
    assert forced["toolConfig"]["toolChoice"] == {"tool": {"name": "f"}}
    # Converse has no "none": declaring no tool is what guarantees no call.
    unforced = chat_request_to_converse(body={**base, "tool_choice": "none"}, deployment=DEPLOYMENT)
    assert "toolConfig" not in unforced


def test_pdf_file_becomes_a_document_block() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "file",
                        "file": {
                            "filename": "q3.report.pdf",
                            "file_data": "data:application/pdf;base64,JVBERg==",
                        },
                    }
                ],
            }
        ]
    }
    converted = chat_request_to_converse(body=body, deployment=DEPLOYMENT)
    assert converted["messages"][0]["content"] == [
        {"document": {"format": "pdf", "name": "q3 report", "source": {"bytes": "JVBERg=="}}}
    ]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
        ({"messages": []}, "messages"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/bmp;base64,AA=="},
                            }
                        ],
                    }
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
    ],
)
def test_refusals(body: dict, param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        chat_request_to_converse(body=body, deployment=DEPLOYMENT)
    assert caught.value.param == param


def test_model_id_strips_the_route_prefix() -> None:
    assert model_id(DEPLOYMENT) == "amazon.nova-lite-v1:0"
    assert embedding_family("us.cohere.embed-multilingual-v3") == "cohere"
    assert embedding_family("amazon.titan-embed-text-v1") == "titan"
    with pytest.raises(InvalidRequestError):
        embedding_family("amazon.nova-lite-v1:0")


def test_response_with_reasoning_and_a_tool_call() -> None:
    response = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "Think.", "signature": "s"}}},
                    {"toolUse": {"toolUseId": "t9", "name": "f", "input": {"b": [1]}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
    }
    assert converse_response_to_chat(
        response, model="m", request_id="req-1", created=1700000000
    ) == {
        "id": "chatcmpl-req-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "annotations": [],
                    "tool_calls": [
                        {
                            "id": "t9",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"b":[1]}'},
                        }
                    ],
                    "reasoning_content": "Think.",
                    "thinking_blocks": [
                        {"type": "thinking", "thinking": "Think.", "signature": "s"}
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 4,
            "total_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_tokens": 0},
        },
    }


def _message(headers: dict[str, str], payload: bytes) -> EventMessage:
    [message] = EventStreamDecoder().feed(frame_encode(headers, payload))
    return message


def _event(name: str, payload: bytes) -> EventMessage:
    return _message({":message-type": "event", ":event-type": name}, payload)


def test_stream_translator_json_tool_streams_as_content() -> None:
    translator = StreamTranslator(model="m", request_id="r", created=1)
    chunks = []
    for name, payload in [
        ("messageStart", b'{"role":"assistant"}'),
        (
            "contentBlockStart",
            b'{"contentBlockIndex":0,"start":{"toolUse":{"toolUseId":"j","name":"json_response"}}}',
        ),
        ("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"toolUse":{"input":"{\\"a\\":"}}}'),
        ("contentBlockDelta", b'{"contentBlockIndex":0,"delta":{"toolUse":{"input":"1}"}}}'),
        ("contentBlockStop", b'{"contentBlockIndex":0}'),
        ("messageStop", b'{"stopReason":"tool_use"}'),
        ("metadata", b'{"usage":{"inputTokens":1,"outputTokens":2,"totalTokens":3}}'),
    ]:
        chunks += translator.feed(_event(name, payload))
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": '{"a":'},
        {"content": "1}"},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 3
    assert translator.finished


def test_stream_exception_keeps_its_status_and_message() -> None:
    translator = StreamTranslator(model="m", request_id="r", created=1)
    message = _message(
        {":message-type": "exception", ":exception-type": "throttlingException"},
        b'{"message":"Too many tokens"}',
    )
    with pytest.raises(RateLimitError) as caught:
        translator.feed(message)
    assert caught.value.message == "bedrock returned 429 ThrottlingException: Too many tokens"


SONNET_4 = Deployment(
    id="t4",
    model_name="s",
    provider="bedrock",
    upstream_model="us.anthropic.claude-sonnet-4-20250514-v1:0",
    params={"max_tokens": 1000, "additional_model_request_fields": {"top_k": 5}},
)


def test_thinking_models_are_recognised() -> None:
    assert thinking_supported("anthropic.claude-3-7-sonnet-20250219-v1:0")
    assert thinking_supported("us.anthropic.claude-opus-4-1-20250805-v1:0")
    assert thinking_supported("global.anthropic.claude-haiku-4-5-20251001-v1:0")
    assert not thinking_supported("anthropic.claude-3-5-sonnet-20241022-v2:0")
    assert not thinking_supported("amazon.nova-pro-v1:0")


def test_reasoning_effort_merges_with_the_deployments_fields_and_raises_max_tokens() -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "reasoning_effort": "high",
        "response_format": {"type": "json_object"},
    }
    payload = chat_request_to_converse(body=body, deployment=SONNET_4)
    assert payload["additionalModelRequestFields"] == {
        "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 4096},
    }
    # The deployment's 1000 is below the budget: raised above it, as for Anthropic direct.
    assert payload["inferenceConfig"] == {"maxTokens": 4096 + 4096}
    # A forced tool is refused while thinking: the JSON tool is offered, not forced.
    assert "toolChoice" not in payload["toolConfig"]
    with pytest.raises(InvalidRequestError):
        chat_request_to_converse(body={**body, "reasoning_effort": "max"}, deployment=SONNET_4)


def test_thinking_blocks_go_back_as_reasoning_content() -> None:
    body = {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": "ok",
                "thinking_blocks": [
                    {"type": "thinking", "thinking": "T", "signature": "S"},
                    {"type": "redacted_thinking", "data": "R"},
                ],
            },
            {"role": "user", "content": "y"},
        ]
    }
    payload = chat_request_to_converse(body=body, deployment=SONNET_4)
    assert payload["messages"][1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "T", "signature": "S"}}},
        {"reasoningContent": {"redactedContent": "R"}},
        {"text": "ok"},
    ]
