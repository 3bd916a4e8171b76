"""The mock adapter on its own: deterministic, offline, documented token counting."""

from __future__ import annotations

import asyncio
import socket

import pytest

from gateway.errors import RateLimitError, UpstreamUnavailableError
from providers.base import Deployment, Endpoint
from providers.mock.adapter import MockAdapter, mock_token_count

DEPLOYMENT = Deployment(
    id="d", model_name="m", provider="mock", upstream_model="m", params={"chunks": 3}
)


def test_token_approximation() -> None:
    assert mock_token_count("Hello, world!") == 4
    assert mock_token_count("") == 0
    assert mock_token_count("don't stop") == 4


@pytest.fixture
def no_sockets(monkeypatch):  # type: ignore[no-untyped-def]
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("the mock provider opened a socket")

    monkeypatch.setattr(asyncio.BaseEventLoop, "create_connection", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


async def test_call_is_deterministic_without_sockets(no_sockets) -> None:  # type: ignore[no-untyped-def]
    body = {"messages": [{"role": "user", "content": "Ping"}]}
    first = await MockAdapter().call(endpoint=Endpoint.CHAT, deployment=DEPLOYMENT, body=body)
    second = await MockAdapter().call(endpoint=Endpoint.CHAT, deployment=DEPLOYMENT, body=body)
    assert first["choices"] == second["choices"]
    assert first["choices"][0]["message"]["content"] == "Mock reply to: Ping"
    assert first["usage"] == {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6}


async def test_stream_in_configured_chunks(no_sockets) -> None:  # type: ignore[no-untyped-def]
    body = {"messages": [{"role": "user", "content": "one two three four"}]}
    chunks = [
        c
        async for c in MockAdapter().stream(
            endpoint=Endpoint.CHAT, deployment=DEPLOYMENT, body=body
        )
    ]
    contents = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    # role chunk, 3 content chunks, the finish chunk
    assert contents == ["", "Mock reply to: ", "one two ", "three four", None]
    assert chunks[-1]["usage"]["completion_tokens"] == 8


async def test_simulated_errors() -> None:
    with pytest.raises(RateLimitError):
        await MockAdapter().call(
            endpoint=Endpoint.CHAT,
            deployment=DEPLOYMENT,
            body={"messages": [], "mock_response": {"error": {"status": 429}}},
        )
    stream = MockAdapter().stream(
        endpoint=Endpoint.CHAT,
        deployment=DEPLOYMENT,
        body={"messages": [], "mock_response": {"error": {"status": 503, "after_chunks": 1}}},
    )
    received = []
    with pytest.raises(UpstreamUnavailableError):
        async for chunk in stream:
            received.append(chunk)
    assert len(received) == 2  # the role chunk and one content chunk
