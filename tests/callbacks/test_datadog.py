"""The Datadog LLM Observability sink (gateway/callbacks/datadog_llm_obs.py) against an emulator
of Datadog's spans intake."""

from __future__ import annotations

import httpx
import pytest

from gateway.callbacks.datadog_llm_obs import DatadogLLMObsSink
from gateway.callbacks.registry import sink_class
from tests.callbacks.vendor_emulators.datadog import API_KEY, DatadogEmulator
from tests.callbacks.vendor_emulators.ingest import emulator_fixture
from tests.callbacks.vendor_events import (
    SPAN_ID,
    TRACE_ID,
    callback_event,
    check_datadog_agent,
    check_error_paths,
    content_event,
    failure_event,
)

datadog = emulator_fixture(DatadogEmulator)


def settings(emulator: DatadogEmulator, **extra: str) -> dict[str, str]:
    return {"DD_API_KEY": API_KEY, "DD_BASE_URL": emulator.url, "DD_ENV": "test", **extra}


async def test_spans_carry_tokens_cost_and_tenancy(datadog: DatadogEmulator) -> None:
    sink = DatadogLLMObsSink(settings(datadog, DD_LLMOBS_ML_APP="gateway"))
    async with httpx.AsyncClient() as client:
        await sink.send([callback_event(), failure_event()], client=client)
    assert len(datadog.requests) == 1
    ok, failed = datadog.records
    assert ok["ml_app"] == "gateway"
    assert ok["batch_tags"] == ["source:ogem", "service:gateway", "env:test"]
    assert (ok["trace_id"], ok["span_id"], ok["parent_id"]) == (TRACE_ID, SPAN_ID, "undefined")
    assert ok["name"] == "ogem.chat/completions"
    assert (ok["start_ns"], ok["duration"]) == (1765000000250000000, 1250000000)
    assert ok["status"] == "ok"
    assert ok["session_id"] == "sess-1"
    assert ok["meta"]["kind"] == "llm"
    assert ok["meta"]["model_name"] == "gpt-4o-mini-2024-07-18"
    assert ok["meta"]["model_provider"] == "openai"
    assert ok["metrics"] == {
        "input_tokens": 12.0,
        "output_tokens": 5.0,
        "total_tokens": 17.0,
        "cache_read_input_tokens": 4.0,
        "total_cost": 0.000123,
        "time_to_first_token": 0.31,
    }
    assert ok["meta"]["metadata"]["cost_usd"] == "0.000123"
    assert "input" not in ok["meta"] and "output" not in ok["meta"]
    assert set(ok["tags"]) >= {
        "model:gpt-4o-mini",
        "provider:openai",
        "team_id:7",
        "key_name:ci key",
        "user_handle:alice",
        "request_tag:prod",
        "request_tag:team-a",
    }
    assert failed["status"] == "error"
    assert failed["meta"]["error"] == {"message": "Rate limit reached", "type": "rate_limit_error"}
    assert failed["meta"]["model_name"] == "gpt-4o-mini"
    assert failed["metrics"]["total_cost"] == 0.0
    assert len(failed["trace_id"]) == 32 and len(failed["span_id"]) == 16


async def test_content_is_sent_as_messages_when_logged(datadog: DatadogEmulator) -> None:
    async with httpx.AsyncClient() as client:
        await DatadogLLMObsSink(settings(datadog)).send([content_event()], client=client)
    (span,) = datadog.records
    assert span["meta"]["input"] == {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hi"},
        ]
    }
    assert span["meta"]["output"] == {"messages": [{"role": "assistant", "content": "Hi!"}]}


async def test_error_paths(datadog: DatadogEmulator) -> None:
    await check_error_paths(
        datadog,
        DatadogLLMObsSink,
        good=settings(datadog),
        wrong_key={**settings(datadog), "DD_API_KEY": "nope"},
        url_setting="DD_BASE_URL",
    )


def test_registry_and_settings() -> None:
    assert sink_class("datadog_llm_observability") is DatadogLLMObsSink
    sink = DatadogLLMObsSink({"DD_API_KEY": "k", "DD_SITE": "us5.datadoghq.com"})
    assert sink.url == "https://api.us5.datadoghq.com/api/intake/llm-obs/v1/trace/spans"
    assert sink.ml_app == "ogem"
    with pytest.raises(ValueError, match="DD_API_KEY"):
        DatadogLLMObsSink({"DD_SITE": "datadoghq.com"})


async def test_large_batches_are_split_under_the_intakes_size(datadog: DatadogEmulator) -> None:
    """Content is cut to 32,000 characters a side (the latest message kept whole first), and a
    batch over the intake's 5 MB goes in several requests."""
    big = [
        {"role": "user", "content": "a" * 40_000},
        {"role": "user", "content": "b" * 20_000},
    ]
    answer = [{"index": 0, "message": {"role": "assistant", "content": "c" * 50_000}}]
    events = [
        content_event(request_id=f"req-{i}", input=big, output=answer, trace_id="", span_id="")
        for i in range(100)
    ]
    async with httpx.AsyncClient() as client:
        await DatadogLLMObsSink(settings(datadog)).send(events, client=client)
    assert len(datadog.requests) == 2
    assert len(datadog.records) == 100
    first, second = datadog.records[0]["meta"]["input"]["messages"]
    assert (len(first["content"]), len(second["content"])) == (12_000, 20_000)
    assert len(datadog.records[0]["meta"]["output"]["messages"][0]["content"]) == 32_000
    assert len({span["span_id"] for span in datadog.records}) == 100


async def test_the_datadog_agent_by_litellms_names(datadog: DatadogEmulator) -> None:
    await check_datadog_agent(datadog, DatadogLLMObsSink, key=API_KEY)
