"""The adapter over real sockets against the emulator: what went upstream and what came back."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.errors import InvalidRequestError, RateLimitError, UpstreamError
from providers.anthropic.adapter import AnthropicAdapter, messages_url
from providers.base import Deployment, Endpoint
from tests.emulators.anthropic_api import AnthropicEmulator, Reply, reply_error, reply_text

ADAPTER = AnthropicAdapter()


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("", "https://api.anthropic.com/v1/messages"),
        ("https://proxy.example/", "https://proxy.example/v1/messages"),
        ("https://proxy.example/v1", "https://proxy.example/v1/messages"),
        ("https://proxy.example/v1/messages", "https://proxy.example/v1/messages"),
    ],
)
def test_messages_url(base: str, url: str) -> None:
    assert messages_url(base) == url


async def test_call_sends_headers_and_translates_the_reply(
    anthropic_emulator: AnthropicEmulator, claude_deployment: Deployment
) -> None:
    deployment = dataclasses.replace(
        claude_deployment,
        params={"anthropic_beta": ["prompt-caching-2024-07-31", "pdfs-2024-09-25"]},
    )
    anthropic_emulator.script(
        reply_text(
            "Bonjour",
            usage={"input_tokens": 9, "output_tokens": 3, "cache_read_input_tokens": 4},
        )
    )
    result = await ADAPTER.call(
        endpoint=Endpoint.CHAT,
        deployment=deployment,
        body={"model": "claude", "messages": [{"role": "user", "content": "Salut"}]},
    )
    received = anthropic_emulator.requests[-1]
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == "sk-ant-emulator-key"
    assert received.headers["anthropic-version"] == "2023-06-01"
    assert received.headers["anthropic-beta"] == "prompt-caching-2024-07-31,pdfs-2024-09-25"
    assert "authorization" not in received.headers
    assert received.body == {
        "model": "claude-3-5-haiku-20241022",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Salut"}],
    }
    assert result["choices"][0]["message"]["content"] == "Bonjour"
    assert result["usage"]["prompt_tokens"] == 13
    assert result["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 4,
        "cache_creation_tokens": 0,
    }


async def test_stream_yields_openai_chunks(
    anthropic_emulator: AnthropicEmulator, claude_deployment: Deployment
) -> None:
    anthropic_emulator.script(
        Reply(
            content=[
                {"type": "text", "text": "Let me look."},
                {
                    "type": "tool_use",
                    "id": "toolu_9",
                    "name": "lookup",
                    "input": {"q": "ogem gateway"},
                },
            ],
            stop_reason="tool_use",
        )
    )
    body = {
        "model": "claude",
        "messages": [{"role": "user", "content": "Find ogem"}],
        "tools": [
            {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
        ],
        "stream": True,
    }
    chunks = [
        c
        async for c in ADAPTER.stream(
            endpoint=Endpoint.CHAT, deployment=claude_deployment, body=body
        )
    ]
    assert anthropic_emulator.bodies[-1]["stream"] is True
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Let me look."
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "lookup", "arguments": ""},
    }
    assert "".join(c["function"]["arguments"] for c in calls) == '{"q":"ogem gateway"}'
    assert {c.get("index") for c in calls} == {0}
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 19


async def test_upstream_errors_are_mapped(
    anthropic_emulator: AnthropicEmulator, claude_deployment: Deployment
) -> None:
    anthropic_emulator.script(
        reply_error(429, "rate_limit_error", "Slow down", headers={"retry-after": "30"}),
        reply_error(529, "overloaded_error", "Overloaded"),
    )
    body = {"model": "claude", "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(RateLimitError) as limited:
        await ADAPTER.call(endpoint=Endpoint.CHAT, deployment=claude_deployment, body=body)
    assert limited.value.headers == {"Retry-After": "30"}
    assert limited.value.message == "anthropic returned 429 rate_limit_error: Slow down"
    with pytest.raises(UpstreamError) as overloaded:
        await ADAPTER.call(endpoint=Endpoint.CHAT, deployment=claude_deployment, body=body)
    assert overloaded.value.status == 503


async def test_bad_key_is_an_upstream_error_without_the_key(
    anthropic_emulator: AnthropicEmulator, claude_deployment: Deployment
) -> None:
    deployment = dataclasses.replace(claude_deployment, api_key="sk-ant-wrong")
    body = {"model": "claude", "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(UpstreamError) as caught:
        await ADAPTER.call(endpoint=Endpoint.CHAT, deployment=deployment, body=body)
    assert caught.value.status == 502
    assert "sk-ant-wrong" not in caught.value.message


async def test_mid_stream_error_event_raises(
    anthropic_emulator: AnthropicEmulator, claude_deployment: Deployment
) -> None:
    anthropic_emulator.script(
        Reply(content=[{"type": "text", "text": "Hello there"}], stream_error_after=4)
    )
    body = {"model": "claude", "messages": [{"role": "user", "content": "x"}], "stream": True}
    received: list[dict] = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in ADAPTER.stream(
            endpoint=Endpoint.CHAT, deployment=claude_deployment, body=body
        ):
            received.append(chunk)
    assert caught.value.status == 503
    assert [c["choices"][0]["delta"] for c in received] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
    ]


def test_other_endpoints_are_refused(claude_deployment: Deployment) -> None:
    with pytest.raises(InvalidRequestError):
        ADAPTER.build_request(
            endpoint=Endpoint.EMBEDDINGS, deployment=claude_deployment, body={}, stream=False
        )


async def test_stream_cut_before_message_stop_raises(
    anthropic_emulator: AnthropicEmulator, claude_deployment: Deployment
) -> None:
    anthropic_emulator.script(
        Reply(content=[{"type": "text", "text": "Hello"}], stream_cut_after=4)
    )
    body = {"model": "claude", "messages": [{"role": "user", "content": "x"}], "stream": True}
    received: list[dict] = []
    with pytest.raises(UpstreamError) as caught:
        async for chunk in ADAPTER.stream(
            endpoint=Endpoint.CHAT, deployment=claude_deployment, body=body
        ):
            received.append(chunk)
    assert caught.value.status == 502
    assert caught.value.message == "anthropic stream ended before message_stop"
    assert [c["choices"][0]["delta"] for c in received] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
    ]
