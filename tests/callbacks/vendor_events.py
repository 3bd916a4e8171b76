"""CallbackEvents for the vendor sinks' tests, and the error paths every sink shares: a wrong
key is `SinkRejected`, a 5xx or 429 answer and a closed port are `SinkRetryable`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.callbacks.base import CallbackEvent, Sink, SinkRejected, SinkRetryable
from tests.callbacks.vendor_emulators.ingest import IngestEmulator
from tests.emulators.scripted import Fault
from tests.live import free_port

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": [{"type": "text", "text": "Say hi"}]},
]
CHOICES = [
    {"index": 0, "message": {"role": "assistant", "content": "Hi!"}, "finish_reason": "stop"}
]


def callback_event(**overrides: Any) -> CallbackEvent:
    """A streamed chat completion's success event, content logging off."""
    event = CallbackEvent(
        kind="success",
        request_id="req-7f3a9c",
        trace_id=TRACE_ID,
        span_id=SPAN_ID,
        started_at=1765000000.25,
        ended_at=1765000001.5,
        endpoint="chat/completions",
        model="gpt-4o-mini",
        response_model="gpt-4o-mini-2024-07-18",
        provider="openai",
        deployment="openai-east",
        status_code=200,
        stream=True,
        prompt_tokens=12,
        completion_tokens=5,
        total_tokens=17,
        cached_tokens=4,
        cost="0.000123",
        latency_ms=1250,
        ttft_ms=310,
        cache_hit=False,
        organization_id=3,
        team_id=7,
        key_id=11,
        key_name="ci key",
        user_id=None,
        end_user="alice",
        tags=["prod", "team-a"],
        metadata={"session_id": "sess-1", "generation_name": "greet"},
        error=None,
    )
    event.update(overrides)  # type: ignore[typeddict-item]
    return event


def content_event(**overrides: Any) -> CallbackEvent:
    """The same with content logging on."""
    return callback_event(**{"input": MESSAGES, "output": CHOICES, **overrides})


def failure_event(**overrides: Any) -> CallbackEvent:
    """A request the upstream refused with 429, without trace context."""
    values: dict[str, Any] = {
        "kind": "failure",
        "request_id": "req-failed-1",
        "trace_id": "",
        "span_id": "",
        "response_model": "",
        "status_code": 429,
        "stream": False,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cached_tokens": 0,
        "cost": "0",
        "ttft_ms": None,
        "error": {"type": "rate_limit_error", "message": "Rate limit reached", "status": 429},
    }
    values.update(overrides)
    return callback_event(**values)


async def check_error_paths(
    emulator: IngestEmulator,
    make_sink: Callable[[Mapping[str, str]], Sink],
    *,
    good: Mapping[str, str],
    wrong_key: Mapping[str, str],
    url_setting: str,
    url_suffix: str = "",
) -> None:
    """Wrong key: rejected, nothing recorded. 503 and 429: retryable, and the same sink then
    succeeds. A closed port: retryable."""
    emulator.reset()
    async with httpx.AsyncClient(timeout=5) as client:
        with pytest.raises(SinkRejected):
            await make_sink(wrong_key).send([callback_event()], client=client)
        assert emulator.records == []
        assert len(emulator.requests) == 1

        sink = make_sink(good)
        for status in (503, 429):
            emulator.script(Fault(status, {"error": "try later"}))
            with pytest.raises(SinkRetryable):
                await sink.send([callback_event()], client=client)
        assert emulator.records == []
        await sink.send([callback_event()], client=client)
        assert len(emulator.records) >= 1

        closed = {**good, url_setting: f"http://127.0.0.1:{free_port()}{url_suffix}"}
        with pytest.raises(SinkRetryable):
            await make_sink(closed).send([callback_event()], client=client)


# LiteLLM's Datadog Agent port settings, one per intake, and their defaults.
DATADOG_AGENT_PORTS = {"LITELLM_DD_AGENT_PORT": 10518, "LITELLM_DD_LLM_OBS_PORT": 8126}


async def check_datadog_agent(emulator: IngestEmulator, make_sink: Any, *, key: str) -> None:
    """LiteLLM's Datadog Agent settings: LITELLM_DD_AGENT_HOST with the port setting of this
    sink's intake (the other intake's is not read); DD_BASE_URL wins; a port is a number."""
    (port,) = set(DATADOG_AGENT_PORTS) & set(make_sink.environment)
    (other,) = set(DATADOG_AGENT_PORTS) - {port}
    emulator.reset()
    agent = {
        "DD_API_KEY": key,
        "LITELLM_DD_AGENT_HOST": "127.0.0.1",
        port: str(urlsplit(emulator.url).port),
        other: "1",
    }
    async with httpx.AsyncClient(timeout=5) as client:
        await make_sink(agent).send([callback_event()], client=client)
    assert len(emulator.records) == 1
    default = make_sink({"DD_API_KEY": "k", "LITELLM_DD_AGENT_HOST": "dd-agent"})
    assert default.url == f"http://dd-agent:{DATADOG_AGENT_PORTS[port]}{emulator.path}"
    proxied = make_sink({**agent, "DD_BASE_URL": "https://proxy.example"})
    assert proxied.url == f"https://proxy.example{emulator.path}"
    with pytest.raises(ValueError, match=port):
        make_sink({**agent, port: "http"})
    # Through the Agent the key is optional (it signs with its own): none is sent.
    keyless = {k: v for k, v in agent.items() if k != "DD_API_KEY"}
    emulator.reset()
    emulator.agent = True
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            await make_sink(keyless).send([callback_event()], client=client)
    finally:
        emulator.agent = False
    assert len(emulator.records) == 1
    assert "dd-api-key" not in emulator.requests[-1].headers
    with pytest.raises(ValueError, match="DD_API_KEY"):
        make_sink({k: v for k, v in keyless.items() if k != "LITELLM_DD_AGENT_HOST"})
