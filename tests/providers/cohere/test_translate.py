"""Pure translation: OpenAI ⇄ Cohere v2, with exact dicts."""

from __future__ import annotations

import pytest

from gateway.errors import InvalidRequestError, UpstreamError
from providers.adapter import UpstreamResponse
from providers.base import Deployment
from providers.cohere.adapter import CohereAdapter
from providers.cohere.stream import StreamTranslator
from providers.cohere.translate import chat_request_to_cohere, embed_request_to_cohere

DEPLOYMENT = Deployment(
    id="config:command:0",
    model_name="command",
    provider="cohere",
    upstream_model="command-a-03-2025",
    params={"max_tokens": 99},
)
TOOLS = [
    {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
    {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}},
]


def test_developer_role_named_tool_and_openai_only_fields() -> None:
    body = {
        "messages": [
            {"role": "developer", "content": "Rules."},
            {"role": "user", "content": "Go"},
        ],
        "tools": TOOLS,
        "tool_choice": {"type": "function", "function": {"name": "b"}},
        "parallel_tool_calls": False,
        "user": "u1",
        "response_format": {"type": "json_object"},
    }
    assert chat_request_to_cohere(body=body, deployment=DEPLOYMENT, stream=False) == {
        "model": "command-a-03-2025",
        "messages": [
            {"role": "system", "content": "Rules."},
            {"role": "user", "content": "Go"},
        ],
        "tools": [TOOLS[1]],
        "tool_choice": "REQUIRED",
        "max_tokens": 99,
        "response_format": {"type": "json_object"},
    }


def test_tool_choice_none_and_unknown_named_tool() -> None:
    base = {"messages": [{"role": "user", "content": "x"}], "tools": TOOLS}
    payload = chat_request_to_cohere(
        body={**base, "tool_choice": "none"}, deployment=DEPLOYMENT, stream=True
    )
    assert (payload["tool_choice"], payload["stream"]) == ("NONE", True)
    with pytest.raises(InvalidRequestError) as caught:
        chat_request_to_cohere(
            body={**base, "tool_choice": {"type": "function", "function": {"name": "zz"}}},
            deployment=DEPLOYMENT,
            stream=False,
        )
    assert caught.value.param == "tool_choice"


def test_embed_refuses_an_unknown_input_type() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        embed_request_to_cohere(body={"input": "x", "input_type": "query"}, deployment=DEPLOYMENT)
    assert caught.value.param == "input_type"


def test_error_scrubs_the_deployment_key() -> None:
    error = CohereAdapter().map_error(
        deployment=Deployment(
            id="t", model_name="c", provider="cohere", upstream_model="c", api_key="sk-secret"
        ),
        response=UpstreamResponse(401, {}, b'{"message": "invalid api token sk-secret"}'),
    )
    assert isinstance(error, UpstreamError)
    assert (error.status, error.message) == (
        502,
        "cohere returned 401: invalid api token [redacted]",
    )


def test_stream_error_finish_raises() -> None:
    translator = StreamTranslator(model="m", created=1)
    translator.feed({"type": "message-start", "id": "x", "delta": {"message": {}}})
    with pytest.raises(UpstreamError, match="cohere stream error: overloaded"):
        translator.feed(
            {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "overloaded"}}
        )
