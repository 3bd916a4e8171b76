"""Pure translation: OpenAI ⇄ Gemini, with exact dicts."""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import InvalidRequestError, RateLimitError
from providers.base import Deployment
from providers.errors import UpstreamFailure, upstream_error
from providers.gemini.errors import RETRY_INFO, google_error_parse
from providers.gemini.stream import StreamTranslator
from providers.gemini.translate import (
    chat_request_to_gemini,
    gemini_response_to_chat,
    messages_to_contents,
    schema_to_gemini,
    usage_to_openai,
)

DEPLOYMENT = Deployment(
    id="t:g:0", model_name="g", provider="gemini", upstream_model="gemini-2.0-flash"
)


def test_schema_conversion_resolves_refs_and_drops_unsupported_keywords() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "title": "Order",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/definitions/item"}, "minItems": 1},
            "status": {"const": "open"},
            "priority": {"type": "integer", "enum": [1, 2, 3]},
            "note": {"anyOf": [{"type": "string", "format": "email"}, {"type": "null"}]},
            "when": {"type": "string", "format": "date-time", "examples": ["2024-01-01"]},
            "amount": {"oneOf": [{"type": "number"}, {"type": "string"}]},
        },
        "required": ["items"],
        "additionalProperties": False,
        "definitions": {
            "item": {
                "type": "object",
                "properties": {"sku": {"type": "string", "maxLength": 12}},
                "additionalProperties": False,
                "strict": True,
            }
        },
    }
    assert schema_to_gemini(schema) == {
        "type": "object",
        "title": "Order",
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"sku": {"type": "string", "maxLength": 12}},
                },
                "minItems": 1,
            },
            "status": {"type": "string", "enum": ["open"]},
            "priority": {"type": "string", "enum": ["1", "2", "3"]},
            "note": {"nullable": True, "type": "string"},
            "when": {"type": "string", "format": "date-time"},
            "amount": {"anyOf": [{"type": "number"}, {"type": "string"}]},
        },
        "required": ["items"],
    }


def test_recursive_refs_are_refused() -> None:
    schema = {
        "type": "object",
        "properties": {"child": {"$ref": "#/$defs/node"}},
        "$defs": {"node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/node"}}}},
    }
    with pytest.raises(InvalidRequestError, match="nests too deeply"):
        schema_to_gemini(schema)


def test_consecutive_roles_merge_and_tool_results_answer_by_name() -> None:
    system, contents = messages_to_contents(
        [
            {"role": "system", "content": "A."},
            {"role": "developer", "content": [{"type": "text", "text": "B."}]},
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "[1, 2]"},
            {"role": "user", "content": "thanks"},
        ]
    )
    assert system == {"parts": [{"text": "A."}, {"text": "B."}]}
    assert contents == [
        {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": "x"}}}]},
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "lookup", "response": {"content": "[1, 2]"}}},
                {"text": "thanks"},
            ],
        },
    ]


def test_a_tool_result_without_its_call_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="answers no earlier tool call"):
        messages_to_contents(
            [
                {"role": "user", "content": "x"},
                {"role": "tool", "tool_call_id": "call_unknown", "content": "y"},
            ]
        )


def test_generation_config_and_a_function_without_parameters() -> None:
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "tools": [
            {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
        ],
        "tool_choice": "none",
        "n": 2,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "top_k": 5,
        "logprobs": True,
        "user": "u-1",
        "reasoning_effort": "none",
        "cached_content": "cachedContents/abc123",
    }
    assert chat_request_to_gemini(body=body, deployment=DEPLOYMENT) == {
        "contents": [{"role": "user", "parts": [{"text": "x"}]}],
        "tools": [{"functionDeclarations": [{"name": "now"}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
        "generationConfig": {
            "topK": 5,
            "presencePenalty": 0.5,
            "frequencyPenalty": 0.25,
            "candidateCount": 2,
            "thinkingConfig": {"thinkingBudget": 0, "includeThoughts": False},
        },
        "cachedContent": "cachedContents/abc123",
    }


def test_usage_counts_thoughts_as_completion_and_tool_prompts_as_prompt() -> None:
    assert usage_to_openai(
        {
            "promptTokenCount": 100,
            "toolUsePromptTokenCount": 20,
            "cachedContentTokenCount": 64,
            "candidatesTokenCount": 30,
            "thoughtsTokenCount": 12,
            "totalTokenCount": 162,
        }
    ) == {
        "prompt_tokens": 120,
        "completion_tokens": 42,
        "total_tokens": 162,
        "prompt_tokens_details": {"cached_tokens": 64},
        "completion_tokens_details": {"reasoning_tokens": 12},
    }


def test_several_candidates_and_a_blocked_prompt() -> None:
    response = {
        "candidates": [
            {"content": {"parts": [{"text": "A"}], "role": "model"}, "finishReason": "STOP"},
            {
                "content": {"parts": [{"text": "B"}], "role": "model"},
                "finishReason": "RECITATION",
                "index": 1,
            },
        ],
        "responseId": "r1",
    }
    completion = gemini_response_to_chat(response, model="m", created=1)
    assert [
        (c["index"], c["message"]["content"], c["finish_reason"]) for c in completion["choices"]
    ] == [
        (0, "A", "stop"),
        (1, "B", "content_filter"),
    ]
    assert completion["id"] == "chatcmpl-r1"
    assert completion["model"] == "m"
    blocked = gemini_response_to_chat(
        {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}},
        model="m",
        created=1,
    )
    assert blocked["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": None, "refusal": None, "annotations": []},
            "logprobs": None,
            "finish_reason": "content_filter",
        }
    ]


def test_stream_translator_sequence() -> None:
    translator = StreamTranslator(provider="gemini", model="m", created=5)
    first = translator.feed(
        {
            "candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}],
            "usageMetadata": {"promptTokenCount": 3},
            "responseId": "abc",
            "modelVersion": "gemini-2.0-flash-001",
        }
    )
    last = translator.feed(
        {
            "candidates": [
                {"content": {"parts": [{"text": "!"}], "role": "model"}, "finishReason": "STOP"}
            ],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2},
            "responseId": "abc",
        }
    )
    base = {"id": "chatcmpl-abc", "object": "chat.completion.chunk", "created": 5}
    model = {"model": "gemini-2.0-flash-001"}

    def choice(delta: dict, reason: str | None = None) -> list[dict]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]

    assert first == [base | model | {"choices": choice({"role": "assistant", "content": "Hi"})}]
    assert last == [
        base | model | {"choices": choice({"content": "!"})},
        base | model | {"choices": choice({}, "stop")},
    ]
    assert translator.finished
    assert translator.usage_chunk()["usage"]["total_tokens"] == 5


def test_google_errors_say_their_status_name_and_retry_delay() -> None:
    body = {
        "error": {
            "code": 429,
            "message": "Quota exceeded.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": RETRY_INFO, "retryDelay": "1.5s"}],
        }
    }
    failure = google_error_parse(orjson.dumps(body), {"Retry-After": "9"})
    assert failure == UpstreamFailure(
        message="Quota exceeded.", label="RESOURCE_EXHAUSTED", retry_after="2"
    )
    limited = upstream_error(provider="gemini", status=429, failure=failure)
    assert isinstance(limited, RateLimitError)
    assert limited.headers == {"Retry-After": "2"}
    # Without RetryInfo the header says when; a list-wrapped error is read the same.
    assert google_error_parse(
        orjson.dumps([{"error": {"message": "m"}}]), {"Retry-After": "9"}
    ) == (UpstreamFailure(message="m", retry_after="9"))
    assert google_error_parse(b"not json") == UpstreamFailure(message="not json")


def test_the_deployment_key_is_scrubbed_from_upstream_messages() -> None:
    body = b'{"error": {"code": 400, "message": "key AIza-secret is bad", "status": "X"}}'
    error = upstream_error(
        provider="gemini", status=400, failure=google_error_parse(body), secrets=("AIza-secret",)
    )
    assert error.message == "gemini returned 400 X: key [redacted] is bad"


def test_files_audio_and_files_api_uris() -> None:
    files_uri = "https://generativelanguage.googleapis.com/v1beta/files/abc123"
    _, contents = messages_to_contents(
        [
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"file_id": files_uri, "format": "video/mp4"}},
                    {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                ],
            }
        ]
    )
    assert contents[0]["parts"] == [
        {"fileData": {"mimeType": "video/mp4", "fileUri": files_uri}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
    ]


async def test_media_the_upstream_fetches_itself_is_not_downloaded() -> None:
    from providers.gemini.adapter import FILES_API_PREFIX
    from providers.gemini.media import media_inline

    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": f"{FILES_API_PREFIX}v1beta/files/x"},
                    },
                    {"type": "image_url", "image_url": {"url": "gs://bucket/a.png"}},
                    {"type": "text", "text": "hi"},
                ],
            }
        ]
    }
    kept = await media_inline(body, deployment=DEPLOYMENT, kept_prefixes=(FILES_API_PREFIX,))
    assert kept is body
