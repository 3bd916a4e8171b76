"""The Datadog Logs sink (gateway/callbacks/datadog_logs.py, LiteLLM's `datadog` callback)
against an emulator of Datadog's Logs HTTP intake."""

from __future__ import annotations

import httpx
import orjson
import pytest

from gateway.callbacks.datadog_logs import DatadogLogsSink
from gateway.callbacks.registry import sink_class
from tests.callbacks.vendor_emulators.datadog_logs import API_KEY, DatadogLogsEmulator
from tests.callbacks.vendor_emulators.ingest import emulator_fixture
from tests.callbacks.vendor_events import (
    TRACE_ID,
    callback_event,
    check_datadog_agent,
    check_error_paths,
    content_event,
    failure_event,
)

logs = emulator_fixture(DatadogLogsEmulator)


def settings(emulator: DatadogLogsEmulator, **extra: str) -> dict[str, str]:
    return {"DD_API_KEY": API_KEY, "DD_BASE_URL": emulator.url, "DD_ENV": "test", **extra}


async def test_one_entry_per_request_in_litellms_field_names(logs: DatadogLogsEmulator) -> None:
    sink = DatadogLogsSink(settings(logs, DD_SERVICE="gateway", HOSTNAME="web-1"))
    async with httpx.AsyncClient() as client:
        await sink.send([callback_event(), failure_event()], client=client)
    assert len(logs.requests) == 1
    ok, failed = logs.records
    assert ok["ddsource"] == "ogem"
    assert ok["ddtags"] == "service:gateway,env:test"
    assert (ok["hostname"], ok["service"], ok["status"]) == ("web-1", "gateway", "info")
    record = orjson.loads(ok["message"])
    assert record["id"] == "req-7f3a9c"
    assert record["trace_id"] == TRACE_ID
    assert record["status"] == "success"
    assert record["response_cost"] == 0.000123
    assert (record["prompt_tokens"], record["completion_tokens"], record["total_tokens"]) == (
        12,
        5,
        17,
    )
    assert record["model_group"] == "gpt-4o-mini"
    assert record["model"] == "gpt-4o-mini-2024-07-18"
    assert record["custom_llm_provider"] == "openai"
    assert record["completionStartTime"] == pytest.approx(1765000000.56)
    assert record["metadata"]["user_api_key_team_id"] == 7
    assert record["metadata"]["user_api_key_alias"] == "ci key"
    assert record["request_tags"] == ["prod", "team-a"]
    assert "messages" not in record and "response" not in record
    assert failed["status"] == "error"
    failure = orjson.loads(failed["message"])
    assert failure["status"] == "failure"
    assert failure["error_str"] == "rate_limit_error: Rate limit reached"
    assert failure["response_cost"] == 0.0


async def test_content_is_sent_when_logged(logs: DatadogLogsEmulator) -> None:
    async with httpx.AsyncClient() as client:
        await DatadogLogsSink(settings(logs)).send([content_event()], client=client)
    (entry,) = logs.records
    record = orjson.loads(entry["message"])
    assert record["messages"][0] == {"role": "system", "content": "Be brief."}
    assert record["response"][0]["message"]["content"] == "Hi!"


async def test_error_paths(logs: DatadogLogsEmulator) -> None:
    await check_error_paths(
        logs,
        DatadogLogsSink,
        good=settings(logs),
        wrong_key={**settings(logs), "DD_API_KEY": "nope"},
        url_setting="DD_BASE_URL",
    )


async def test_a_large_batch_stays_within_the_intakes_limits(logs: DatadogLogsEmulator) -> None:
    events = [callback_event(request_id=f"req-{i}") for i in range(1_200)]
    async with httpx.AsyncClient() as client:
        await DatadogLogsSink(settings(logs)).send(events, client=client)
    assert len(logs.requests) == 2
    assert len(logs.records) == 1_200


def test_registry_and_settings() -> None:
    assert sink_class("datadog") is DatadogLogsSink
    sink = DatadogLogsSink({"DD_API_KEY": "k", "DD_SITE": "datadoghq.eu"})
    assert sink.url == "https://http-intake.logs.datadoghq.eu/api/v2/logs"
    with pytest.raises(ValueError, match="DD_API_KEY"):
        DatadogLogsSink({"DD_SITE": "datadoghq.com"})
    with pytest.raises(ValueError, match="Datadog site"):
        DatadogLogsSink({"DD_API_KEY": "k", "DD_SITE": "evil.example"})


async def test_the_datadog_agent_by_litellms_names(logs: DatadogLogsEmulator) -> None:
    await check_datadog_agent(logs, DatadogLogsSink, key=API_KEY)
