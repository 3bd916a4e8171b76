"""The Phoenix sink (gateway/callbacks/phoenix.py) against an emulator of Phoenix's OTLP/HTTP
collector."""

from __future__ import annotations

import httpx

from gateway.callbacks.phoenix import PhoenixSink, traces_url
from gateway.callbacks.registry import sink_class
from tests.callbacks.vendor_emulators.ingest import emulator_fixture
from tests.callbacks.vendor_emulators.phoenix import API_KEY, PhoenixEmulator
from tests.callbacks.vendor_events import (
    callback_event,
    check_error_paths,
    content_event,
    failure_event,
)

phoenix = emulator_fixture(PhoenixEmulator)


def settings(emulator: PhoenixEmulator, **extra: str) -> dict[str, str]:
    return {"PHOENIX_COLLECTOR_ENDPOINT": emulator.url, "PHOENIX_API_KEY": API_KEY, **extra}


async def test_spans_reach_the_project_with_tokens_and_cost(phoenix: PhoenixEmulator) -> None:
    sink = PhoenixSink(settings(phoenix, PHOENIX_PROJECT_NAME="support-bot"))
    async with httpx.AsyncClient() as client:
        await sink.send([callback_event(), failure_event()], client=client)
    assert phoenix.requests[0].path == "/v1/traces"
    ok, failed = phoenix.records
    assert ok["resource"]["openinference.project.name"] == "support-bot"
    assert ok["attributes"]["llm.token_count.total"] == 17
    assert ok["attributes"]["llm.cost.total"] == 0.000123
    assert ok["attributes"]["llm.model_name"] == "gpt-4o-mini-2024-07-18"
    assert "output.value" not in ok["attributes"]
    assert failed["status_message"] == "rate_limit_error: Rate limit reached"
    assert failed["attributes"]["http.response.status_code"] == 429


async def test_content_is_sent_when_logged(phoenix: PhoenixEmulator) -> None:
    async with httpx.AsyncClient() as client:
        await PhoenixSink(settings(phoenix)).send([content_event()], client=client)
    (span,) = phoenix.records
    assert span["resource"]["openinference.project.name"] == "default"
    assert span["attributes"]["llm.output_messages.0.message.role"] == "assistant"
    assert '"Hi!"' in span["attributes"]["output.value"]


async def test_error_paths(phoenix: PhoenixEmulator) -> None:
    await check_error_paths(
        phoenix,
        PhoenixSink,
        good=settings(phoenix),
        wrong_key={**settings(phoenix), "PHOENIX_API_KEY": "wrong"},
        url_setting="PHOENIX_COLLECTOR_ENDPOINT",
    )


def test_registry_and_endpoints() -> None:
    assert sink_class("arize_phoenix") is PhoenixSink
    assert PhoenixSink({}).url == "http://localhost:6006/v1/traces"
    assert PhoenixSink({}).headers == {}
    assert traces_url("https://app.phoenix.arize.com/s/me/v1/traces") == (
        "https://app.phoenix.arize.com/s/me/v1/traces"
    )
    assert traces_url("http://phoenix:6006/v1") == "http://phoenix:6006/v1/traces"
