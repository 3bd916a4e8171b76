"""The Arize sink (gateway/callbacks/arize.py, OTLP encoding in otlp.py) against an emulator of
Arize's OTLP/HTTP traces endpoint, which decodes the protobuf."""

from __future__ import annotations

import httpx
import pytest

from gateway.callbacks.arize import ArizeSink
from gateway.callbacks.registry import sink_class
from tests.callbacks.vendor_emulators.arize import API_KEY, SPACE_ID, ArizeEmulator
from tests.callbacks.vendor_emulators.ingest import emulator_fixture
from tests.callbacks.vendor_events import (
    SPAN_ID,
    TRACE_ID,
    callback_event,
    check_error_paths,
    content_event,
    failure_event,
)

STATUS_OK, STATUS_ERROR, KIND_CLIENT = 1, 2, 3


arize = emulator_fixture(ArizeEmulator)


def settings(emulator: ArizeEmulator, **extra: str) -> dict[str, str]:
    return {
        "ARIZE_SPACE_ID": SPACE_ID,
        "ARIZE_API_KEY": API_KEY,
        "ARIZE_HTTP_ENDPOINT": f"{emulator.url}/v1/traces",
        **extra,
    }


async def test_spans_carry_openinference_tokens_and_cost(arize: ArizeEmulator) -> None:
    sink = ArizeSink(settings(arize, ARIZE_PROJECT_NAME="gateway"))
    async with httpx.AsyncClient() as client:
        await sink.send([callback_event(), failure_event()], client=client)
    assert len(arize.requests) == 1
    ok, failed = arize.records
    assert ok["resource"] == {"service.name": "ogem", "openinference.project.name": "gateway"}
    assert (ok["trace_id"], ok["span_id"]) == (TRACE_ID, SPAN_ID)
    assert (ok["name"], ok["kind"], ok["status"]) == (
        "ogem.chat/completions",
        KIND_CLIENT,
        STATUS_OK,
    )
    assert (ok["start_ns"], ok["end_ns"]) == (1765000000250000000, 1765000001500000000)
    attributes = ok["attributes"]
    assert attributes["openinference.span.kind"] == "LLM"
    assert attributes["llm.model_name"] == "gpt-4o-mini-2024-07-18"
    assert attributes["llm.provider"] == "openai"
    assert attributes["llm.token_count.prompt"] == 12
    assert attributes["llm.token_count.completion"] == 5
    assert attributes["llm.token_count.total"] == 17
    assert attributes["llm.token_count.prompt_details.cache_read"] == 4
    assert attributes["llm.cost.total"] == 0.000123
    assert attributes["session.id"] == "sess-1"
    assert attributes["user.id"] == "alice"
    assert attributes["tag.tags"] == ["prod", "team-a"]
    assert '"team_id":7' in attributes["metadata"]
    assert not any(k.startswith(("input.", "output.", "llm.input_messages")) for k in attributes)
    assert failed["status"] == STATUS_ERROR
    assert failed["status_message"] == "rate_limit_error: Rate limit reached"
    assert failed["events"] == [
        {
            "name": "exception",
            "attributes": {
                "exception.type": "rate_limit_error",
                "exception.message": "Rate limit reached",
            },
        }
    ]
    assert len(failed["trace_id"]) == 32 and failed["trace_id"] != TRACE_ID


async def test_content_becomes_openinference_messages(arize: ArizeEmulator) -> None:
    async with httpx.AsyncClient() as client:
        await ArizeSink(settings(arize)).send([content_event()], client=client)
    (span,) = arize.records
    attributes = span["attributes"]
    assert span["resource"]["openinference.project.name"] == "ogem"
    assert attributes["llm.input_messages.0.message.role"] == "system"
    assert attributes["llm.input_messages.1.message.content"] == "Say hi"
    assert attributes["llm.output_messages.0.message.content"] == "Hi!"
    assert attributes["input.mime_type"] == "application/json"
    assert '"Be brief."' in attributes["input.value"]


async def test_the_same_event_is_the_same_span(arize: ArizeEmulator) -> None:
    """Retried batches send the same ids: ids made for an event without trace context are
    derived from its request id."""
    async with httpx.AsyncClient() as client:
        for _ in range(2):
            await ArizeSink(settings(arize)).send([failure_event()], client=client)
    first, second = arize.records
    assert (first["trace_id"], first["span_id"]) == (second["trace_id"], second["span_id"])


async def test_error_paths(arize: ArizeEmulator) -> None:
    await check_error_paths(
        arize,
        ArizeSink,
        good=settings(arize),
        wrong_key={**settings(arize), "ARIZE_API_KEY": "wrong"},
        url_setting="ARIZE_HTTP_ENDPOINT",
        url_suffix="/v1/traces",
    )


def test_registry_and_settings() -> None:
    assert sink_class("arize") is ArizeSink
    sink = ArizeSink({"ARIZE_SPACE_KEY": "s", "ARIZE_API_KEY": "k"})
    assert sink.url == "https://otlp.arize.com/v1/traces"
    assert sink.headers == {"space_id": "s", "api_key": "k"}
    with pytest.raises(ValueError, match="ARIZE_API_KEY"):
        ArizeSink({"ARIZE_SPACE_ID": "s"})
