"""The Helicone sink (gateway/callbacks/helicone.py) against an emulator of Helicone's custom
logging API."""

from __future__ import annotations

import httpx
import pytest

from gateway.callbacks.helicone import HeliconeSink
from gateway.callbacks.registry import sink_class
from tests.callbacks.vendor_emulators.helicone import API_KEY, HeliconeEmulator
from tests.callbacks.vendor_emulators.ingest import emulator_fixture
from tests.callbacks.vendor_events import (
    CHOICES,
    MESSAGES,
    callback_event,
    check_error_paths,
    content_event,
    failure_event,
)

helicone = emulator_fixture(HeliconeEmulator)


def settings(emulator: HeliconeEmulator) -> dict[str, str]:
    return {"HELICONE_API_KEY": API_KEY, "HELICONE_WORKER_URL": emulator.url}


async def test_logs_carry_usage_cost_properties_and_errors(helicone: HeliconeEmulator) -> None:
    async with httpx.AsyncClient() as client:
        await HeliconeSink(settings(helicone)).send(
            [callback_event(), failure_event()], client=client
        )
    assert len(helicone.requests) == 2  # one log a call
    ok, failed = helicone.records
    request, response = ok["providerRequest"], ok["providerResponse"]
    assert request["url"] == "custom-model-nopath"
    assert request["json"] == {"model": "gpt-4o-mini", "stream": True}
    assert request["meta"]["Helicone-User-Id"] == "alice"
    assert request["meta"]["Helicone-Session-Id"] == "sess-1"
    assert request["meta"]["Helicone-Property-Ogem-Cost-Usd"] == "0.000123"
    assert request["meta"]["Helicone-Property-Ogem-Team-Id"] == "7"
    assert request["meta"]["Helicone-Property-Ogem-Tags"] == "prod,team-a"
    assert response["status"] == 200
    assert response["json"]["model"] == "gpt-4o-mini-2024-07-18"
    assert response["json"]["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 4},
        "cost": 0.000123,
    }
    assert "choices" not in response["json"]
    assert ok["timing"] == {
        "startTime": {"seconds": 1765000000, "milliseconds": 250},
        "endTime": {"seconds": 1765000001, "milliseconds": 500},
        "timeToFirstToken": 310,
    }
    assert failed["providerResponse"]["status"] == 429
    assert failed["providerResponse"]["json"]["error"] == {
        "type": "rate_limit_error",
        "message": "Rate limit reached",
    }


async def test_content_is_logged_when_on(helicone: HeliconeEmulator) -> None:
    async with httpx.AsyncClient() as client:
        await HeliconeSink(settings(helicone)).send([content_event()], client=client)
    (log,) = helicone.records
    assert log["providerRequest"]["json"]["messages"] == MESSAGES
    assert log["providerResponse"]["json"]["choices"] == CHOICES


async def test_error_paths(helicone: HeliconeEmulator) -> None:
    await check_error_paths(
        helicone,
        HeliconeSink,
        good=settings(helicone),
        wrong_key={**settings(helicone), "HELICONE_API_KEY": "wrong"},
        url_setting="HELICONE_WORKER_URL",
    )


def test_registry_and_settings() -> None:
    assert sink_class("helicone") is HeliconeSink
    assert HeliconeSink.max_batch == 1
    assert HeliconeSink({"HELICONE_API_KEY": "k"}).url == (
        "https://api.worker.helicone.ai/custom/v1/log"
    )
    with pytest.raises(ValueError, match="HELICONE_API_KEY"):
        HeliconeSink({})
