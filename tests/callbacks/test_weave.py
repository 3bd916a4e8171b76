"""The Weave sink (gateway/callbacks/weave.py) against an emulator of the Weave trace server's
`/call/upsert_batch`."""

from __future__ import annotations

import httpx
import pytest

from gateway.callbacks.registry import sink_class
from gateway.callbacks.weave import WeaveSink
from tests.callbacks.vendor_emulators.ingest import emulator_fixture
from tests.callbacks.vendor_emulators.weave import API_KEY, WeaveEmulator
from tests.callbacks.vendor_events import (
    CHOICES,
    MESSAGES,
    callback_event,
    check_error_paths,
    content_event,
    failure_event,
)

weave = emulator_fixture(WeaveEmulator)


def settings(emulator: WeaveEmulator, **extra: str) -> dict[str, str]:
    return {
        "WANDB_API_KEY": API_KEY,
        "WANDB_PROJECT_ID": "acme/gateway",
        "WF_TRACE_SERVER_URL": emulator.url,
        **extra,
    }


async def test_calls_carry_usage_cost_and_exceptions(weave: WeaveEmulator) -> None:
    async with httpx.AsyncClient() as client:
        await WeaveSink(settings(weave)).send([callback_event(), failure_event()], client=client)
    assert len(weave.requests) == 1
    ok, failed = weave.records
    start, end = ok["start"], ok["end"]
    assert start["project_id"] == end["project_id"] == "acme/gateway"
    assert start["op_name"] == "ogem.chat.completions"
    assert start["display_name"] == "openai/gpt-4o-mini-2024-07-18"
    assert start["trace_id"] == "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
    assert start["thread_id"] == "sess-1"
    assert start["started_at"] == "2025-12-06T05:46:40.250000Z"
    assert end["ended_at"] == "2025-12-06T05:46:41.500000Z"
    assert start["inputs"] == {"model": "gpt-4o-mini"}
    assert start["attributes"]["ogem"]["team_id"] == 7
    assert end["summary"]["usage"] == {
        "gpt-4o-mini-2024-07-18": {
            "requests": 1,
            "prompt_tokens": 12,
            "completion_tokens": 5,
            "total_tokens": 17,
            "cached_tokens": 4,
        }
    }
    assert end["summary"]["ogem"]["cost_usd"] == 0.000123
    assert end["exception"] is None and end["output"] is None
    assert failed["end"]["exception"] == "rate_limit_error: Rate limit reached"
    assert failed["end"]["summary"]["usage"]["gpt-4o-mini"]["total_tokens"] == 0


async def test_content_becomes_inputs_and_output(weave: WeaveEmulator) -> None:
    async with httpx.AsyncClient() as client:
        await WeaveSink(settings(weave)).send([content_event()], client=client)
    (call,) = weave.records
    assert call["start"]["inputs"] == {"model": "gpt-4o-mini", "messages": MESSAGES}
    assert call["end"]["output"] == CHOICES


async def test_error_paths(weave: WeaveEmulator) -> None:
    await check_error_paths(
        weave,
        WeaveSink,
        good=settings(weave),
        wrong_key={**settings(weave), "WANDB_API_KEY": "wrong"},
        url_setting="WF_TRACE_SERVER_URL",
    )


def test_registry_and_settings() -> None:
    assert sink_class("weave") is WeaveSink
    assert sink_class("weave_otel") is WeaveSink
    sink = WeaveSink({"WANDB_API_KEY": "k", "WANDB_ENTITY": "acme", "WANDB_PROJECT": "bot"})
    assert (sink.project_id, sink.url) == ("acme/bot", "https://trace.wandb.ai/call/upsert_batch")
    with pytest.raises(ValueError, match="entity/project"):
        WeaveSink({"WANDB_API_KEY": "k", "WANDB_PROJECT_ID": "bot"})


async def test_oversized_content_is_sent_cut(weave: WeaveEmulator) -> None:
    event = content_event(input=[{"role": "user", "content": "z" * 50_000}])
    async with httpx.AsyncClient() as client:
        await WeaveSink(settings(weave)).send([event], client=client)
    (call,) = weave.records
    messages = call["start"]["inputs"]["messages"]
    assert isinstance(messages, str) and len(messages) == 32_000
    assert messages.startswith('[{"role":"user","content":"zzz')
    assert call["end"]["output"] == CHOICES
