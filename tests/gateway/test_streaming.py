"""Streaming: client disconnects cancel the upstream and still settle exactly once."""

from __future__ import annotations

import time

import httpx
import pytest

from gateway import relay
from providers.base import Deployment
from tests.emulators.fixtures import slow_mock


class Settlements(list):
    """The contexts governance_settle was called with, on the server; `ended`: how many of
    those calls have returned."""

    ended = 0


@pytest.fixture
def settlements(monkeypatch) -> Settlements:  # type: ignore[no-untyped-def]
    calls = Settlements()
    original = relay.governance_settle

    async def recording(ctx, admission):  # type: ignore[no-untyped-def]
        calls.append(ctx)
        try:
            await original(ctx, admission)
        finally:
            calls.ended += 1

    monkeypatch.setattr(relay, "governance_settle", recording)
    return calls


def _wait(predicate, timeout: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _events(response: httpx.Response, count: int) -> list[str]:
    """The first `count` SSE lines of a streamed response (then the caller leaves)."""
    events: list[str] = []
    for line in response.iter_lines():
        if line:
            events.append(line)
        if len(events) == count:
            break
    return events


@pytest.fixture
def emulated(emulated_model):  # type: ignore[no-untyped-def]
    """Model `emulated`: one deployment on the OpenAI emulator."""
    return emulated_model()


def _stream(live_ogem, master_key: str, **body):  # type: ignore[no-untyped-def]
    """Open a streamed chat completion of model `emulated` (a context manager)."""
    return httpx.stream(
        "POST",
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={"model": "emulated", "stream": True, **body},
    )


def test_disconnect_cancels_upstream_and_settles_once(
    live_ogem, master_key, emulated, settlements
) -> None:  # type: ignore[no-untyped-def]
    emulated.inject(chunk_delay=0.3)
    long_prompt = " ".join(f"word{i}" for i in range(40))
    with _stream(
        live_ogem, master_key, messages=[{"role": "user", "content": long_prompt}]
    ) as response:
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    # The client is gone: Ogem must close its upstream connection, and settle with cancelled set.
    assert emulated.disconnected.wait(30)
    # The stream's settle is the last thing its relay does (a settle of the request itself
    # would have come before the stream began): once it returned, none can follow.
    assert _wait(lambda: settlements.ended == 1)
    assert len(settlements) == 1
    assert settlements[0].cancelled is True
    assert settlements[0].deployment.id == "test:emulated"
    # The upstream reported no usage before the cut: the prompt is estimated (never zero) and
    # the completion counts the content chunks relayed, here none (only the role chunk).
    usage = settlements[0].usage
    assert usage.prompt_tokens > 40
    assert (usage.completion_tokens, usage.total_tokens) == (0, usage.prompt_tokens)


def test_abandoned_stream_is_recorded_at_the_last_usage_the_upstream_reported(
    live_ogem, master_key, emulated, settlements
) -> None:  # type: ignore[no-untyped-def]
    # vLLM's continuous usage: every chunk carries the usage so far. The emulator holds the stream
    # after its third chunk until the client has gone, so the last report Ogem read is known.
    emulated.stream_hold_after = 3
    long_prompt = " ".join(f"word{i}" for i in range(40))
    with _stream(
        live_ogem,
        master_key,
        stream_options={"continuous_usage_stats": True},
        messages=[{"role": "user", "content": long_prompt}],
    ) as response:
        lines = _events(response, 3)
        assert all(line.startswith("data: {") for line in lines)
    assert emulated.disconnected.wait(30)
    assert _wait(lambda: len(settlements) == 1)
    (reported,) = emulated.ledger
    assert not reported.complete
    usage = settlements[0].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        reported.prompt_tokens,
        reported.completion_tokens,
    )
    assert usage.completion_tokens == 2  # two words in the second and third chunks
    assert settlements[0].cancelled is True


def test_abandoned_stream_without_usage_counts_the_relayed_chunks(
    live_ogem, master_key, emulated, settlements
) -> None:  # type: ignore[no-untyped-def]
    emulated.stream_hold_after = 6
    with _stream(
        live_ogem, master_key, messages=[{"role": "user", "content": " ".join(["word"] * 30)}]
    ) as response:
        assert len(_events(response, 6)) == 6
    assert emulated.disconnected.wait(30)
    assert _wait(lambda: len(settlements) == 1)
    usage = settlements[0].usage
    assert usage.completion_tokens == 5  # six chunks relayed, the first only the role
    assert usage.prompt_tokens > 30


def test_mock_stream_disconnect_settles_once(
    live_ogem, master_key, install_deployments, settlements
) -> None:  # type: ignore[no-untyped-def]
    install_deployments(
        Deployment(
            id="test:slow-stream",
            model_name="slow-stream",
            provider="mock",
            upstream_model="slow-stream",
            params={"chunks": 20, "chunk_delay_ms": 200},
        )
    )
    with httpx.stream(
        "POST",
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={
            "model": "slow-stream",
            "stream": True,
            "messages": [{"role": "user", "content": "a b c"}],
        },
    ) as response:
        next(response.iter_lines())
    assert _wait(lambda: len(settlements) == 1)
    assert settlements[0].cancelled is True


def test_completed_stream_settles_once_with_usage(live_ogem, master_key, settlements) -> None:  # type: ignore[no-untyped-def]
    response = httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={
            "model": "mock-chat",
            "stream": True,
            "messages": [{"role": "user", "content": "Hello, world!"}],
        },
    )
    assert response.text.endswith("data: [DONE]\n\n")
    assert _wait(lambda: len(settlements) == 1)
    ctx = settlements[0]
    assert (ctx.usage.prompt_tokens, ctx.usage.completion_tokens, ctx.cancelled) == (4, 8, False)
    assert ctx.status_code == 200


def test_failed_request_settles_once_with_status(live_ogem, master_key, settlements) -> None:  # type: ignore[no-untyped-def]
    response = httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={
            "model": "mock-chat",
            "messages": [{"role": "user", "content": "x"}],
            "mock_response": {"error": {"status": 429, "message": "slow down"}},
        },
    )
    assert response.status_code == 429
    assert _wait(lambda: len(settlements) == 1)
    assert settlements[0].status_code == 429


def test_disconnect_while_waiting_settles_cancelled(
    live_ogem, master_key, install_deployments, settlements
) -> None:  # type: ignore[no-untyped-def]
    install_deployments(slow_mock("slow", latency_ms=2000))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{live_ogem.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {master_key}"},
            json={"model": "slow", "messages": [{"role": "user", "content": "x"}]},
            timeout=0.3,
        )
    assert _wait(lambda: len(settlements) == 1)
    assert settlements[0].cancelled is True
