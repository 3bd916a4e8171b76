"""The New Relic sink (gateway/callbacks/newrelic.py) against an emulator of New Relic's Event
API."""

from __future__ import annotations

import httpx
import pytest

from gateway.callbacks.newrelic import NewRelicSink
from gateway.callbacks.registry import sink_class
from tests.callbacks.vendor_emulators.ingest import emulator_fixture
from tests.callbacks.vendor_emulators.newrelic import (
    ACCOUNT_ID,
    INSERT_KEY,
    LICENSE_KEY,
    NewRelicEmulator,
)
from tests.callbacks.vendor_events import (
    SPAN_ID,
    TRACE_ID,
    callback_event,
    check_error_paths,
    content_event,
    failure_event,
)

newrelic = emulator_fixture(NewRelicEmulator)


def settings(emulator: NewRelicEmulator, **extra: str) -> dict[str, str]:
    return {
        "NEW_RELIC_LICENSE_KEY": LICENSE_KEY,
        "NEW_RELIC_ACCOUNT_ID": ACCOUNT_ID,
        "NEW_RELIC_EVENT_API_URL": emulator.url,
        **extra,
    }


async def test_summary_events_carry_tokens_cost_and_errors(newrelic: NewRelicEmulator) -> None:
    sink = NewRelicSink(settings(newrelic, NEW_RELIC_APP_NAME="gateway-prod"))
    async with httpx.AsyncClient() as client:
        await sink.send([callback_event(), failure_event()], client=client)
    assert len(newrelic.requests) == 1
    ok, failed = newrelic.records  # no content: no message events
    assert ok["account"] == ACCOUNT_ID
    assert ok["eventType"] == "LlmChatCompletionSummary"
    assert ok["appName"] == "gateway-prod"
    assert (ok["trace_id"], ok["span_id"]) == (TRACE_ID, SPAN_ID)
    assert (ok["request.model"], ok["response.model"]) == (
        "gpt-4o-mini",
        "gpt-4o-mini-2024-07-18",
    )
    assert ok["vendor"] == "openai"
    assert ok["response.usage.prompt_tokens"] == 12
    assert ok["response.usage.completion_tokens"] == 5
    assert ok["response.usage.total_tokens"] == 17
    assert ok["response.usage.cached_tokens"] == 4
    assert ok["ogem.cost_usd"] == 0.000123
    assert ok["duration"] == 1250
    assert ok["ogem.ttft_ms"] == 310
    assert ok["ogem.team_id"] == 7 and ok["ogem.key_name"] == "ci key"
    assert "ogem.user_id" not in ok
    assert ok["error"] is False
    assert ok["timestamp"] == 1765000001500
    assert "content" not in ok
    assert failed["error"] is True
    assert failed["error.message"] == "rate_limit_error: Rate limit reached"
    assert failed["http.statusCode"] == 429
    assert failed["response.model"] == "gpt-4o-mini"


async def test_messages_are_sent_only_with_content(newrelic: NewRelicEmulator) -> None:
    async with httpx.AsyncClient() as client:
        await NewRelicSink(settings(newrelic)).send([content_event()], client=client)
    summary, *messages = newrelic.records
    assert summary["response.number_of_messages"] == 3
    assert [(m["eventType"], m["sequence"], m["role"], m["content"]) for m in messages] == [
        ("LlmChatCompletionMessage", 0, "system", "Be brief."),
        ("LlmChatCompletionMessage", 1, "user", "Say hi"),
        ("LlmChatCompletionMessage", 2, "assistant", "Hi!"),
    ]
    assert [m.get("is_response", False) for m in messages] == [False, False, True]
    assert {m["completion_id"] for m in messages} == {"req-7f3a9c"}


async def test_long_content_is_cut_to_new_relics_limit(newrelic: NewRelicEmulator) -> None:
    event = content_event(input=[{"role": "user", "content": "x" * 10_000}])
    async with httpx.AsyncClient() as client:
        await NewRelicSink(settings(newrelic)).send([event], client=client)
    assert len(newrelic.records[1]["content"]) == 4096


async def test_an_insert_key_works_too(newrelic: NewRelicEmulator) -> None:
    sink = NewRelicSink(
        {
            "NEW_RELIC_INSERT_KEY": INSERT_KEY,
            "NEW_RELIC_ACCOUNT_ID": ACCOUNT_ID,
            "NEW_RELIC_EVENT_API_URL": newrelic.url,
        }
    )
    async with httpx.AsyncClient() as client:
        await sink.send([callback_event()], client=client)
    assert newrelic.requests[0].headers["x-insert-key"] == INSERT_KEY
    assert len(newrelic.records) == 1


async def test_error_paths(newrelic: NewRelicEmulator) -> None:
    await check_error_paths(
        newrelic,
        NewRelicSink,
        good=settings(newrelic),
        wrong_key={**settings(newrelic), "NEW_RELIC_LICENSE_KEY": "wrong"},
        url_setting="NEW_RELIC_EVENT_API_URL",
    )


def test_registry_and_regions() -> None:
    assert sink_class("newrelic") is NewRelicSink
    us = NewRelicSink({"NEW_RELIC_LICENSE_KEY": "abc", "NEW_RELIC_ACCOUNT_ID": "1"})
    assert us.url == "https://insights-collector.newrelic.com/v1/accounts/1/events"
    eu = NewRelicSink({"NEW_RELIC_LICENSE_KEY": "eu01xx", "NEW_RELIC_ACCOUNT_ID": "1"})
    assert eu.url == "https://insights-collector.eu01.nr-data.net/v1/accounts/1/events"
    with pytest.raises(ValueError, match="NEW_RELIC_ACCOUNT_ID"):
        NewRelicSink({"NEW_RELIC_LICENSE_KEY": "abc"})


async def test_large_batches_are_split_under_the_event_apis_size(
    newrelic: NewRelicEmulator,
) -> None:
    messages = [{"role": "user", "content": "m" * 4000} for _ in range(8)]
    events = [content_event(request_id=f"req-{i}", input=messages) for i in range(100)]
    async with httpx.AsyncClient() as client:
        await NewRelicSink(settings(newrelic)).send(events, client=client)
    assert len(newrelic.requests) > 1
    assert all(len(request.raw) <= 1_000_000 for request in newrelic.requests)
    summaries = [r for r in newrelic.records if r["eventType"] == "LlmChatCompletionSummary"]
    assert len(summaries) == 100
    assert len(newrelic.records) == 100 * (1 + 8 + 1)
