"""/v1/messages (the Anthropic ingress) routes like /v1/chat/completions: retries, failover,
circuits, deployment limits and streaming failover, with errors in Anthropic's shape."""

from __future__ import annotations

import asyncio
import time

import anthropic
import httpx
import pytest

from gateway.capacity import capacity_reset
from gateway.health import HealthPolicy, health_failure
from providers.base import Deployment
from providers.mock.adapter import mock_token_count
from tests.emulators.anthropic_api import API_KEY, anthropic_emulator_get
from tests.live import LiveServer
from tests.routing.conftest import FAST_TIMEOUTS, served_by

HELLO = [{"role": "user", "content": "Hello there"}]
REPLY = "Emulated reply to: Hello there"


@pytest.fixture
def messages(live_ogem: LiveServer, master_key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live_ogem.url, api_key=master_key, max_retries=0)


@pytest.fixture
def pair(openai_emulator, install_deployments, deployment):
    """Group `group`: `primary` (priority 0, tried first) and `backup` (priority 1)."""
    install_deployments(deployment("primary", priority=0), deployment("backup", priority=1))
    return openai_emulator


def test_a_500_fails_over_to_the_next_deployment(pair, messages, tag) -> None:
    pair.inject(status=500)
    raw = messages.messages.with_raw_response.create(model="group", max_tokens=50, messages=HELLO)
    message = raw.parse()
    assert message.content[0].text == REPLY  # type: ignore[union-attr]
    assert served_by(pair) == ["primary", "backup"]
    assert raw.headers["x-ogem-deployment"] == f"{tag}:backup"
    assert raw.headers["x-ogem-attempts"] == "2"
    assert raw.headers["x-ogem-model-group"] == "group"


def test_retries_the_same_deployment(
    openai_emulator, install_deployments, deployment, router_settings, messages
) -> None:
    router_settings(num_retries=1)
    install_deployments(deployment("only"))
    openai_emulator.inject(status=503)
    message = messages.messages.create(model="group", max_tokens=50, messages=HELLO)
    assert message.content[0].text == REPLY  # type: ignore[union-attr]
    assert served_by(openai_emulator) == ["only", "only"]


def test_an_open_circuit_is_skipped(pair, router_settings, messages, tag) -> None:
    router_settings(allowed_fails=1, cooldown_time=30.0)
    pair.inject(status=500)
    messages.messages.create(model="group", max_tokens=50, messages=HELLO)  # opens primary
    pair.requests.clear()
    for _ in range(3):
        raw = messages.messages.with_raw_response.create(
            model="group", max_tokens=50, messages=HELLO
        )
        assert raw.headers["x-ogem-deployment"] == f"{tag}:backup"
        assert raw.headers["x-ogem-attempts"] == "1"
    assert served_by(pair) == ["backup"] * 3


def test_errors_come_back_in_anthropics_shape(pair, router_settings, messages) -> None:
    router_settings(allowed_fails=1, cooldown_time=30.0)
    pair.inject(status=500)
    pair.inject(status=500)
    with pytest.raises(anthropic.APIStatusError) as failed:
        messages.messages.create(model="group", max_tokens=50, messages=HELLO)
    assert failed.value.status_code == 502
    assert failed.value.body["type"] == "error"  # type: ignore[index]
    assert failed.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert set(failed.value.body["error"]) == {"type", "message"}  # type: ignore[index]
    # Both circuits are open now: 503 overloaded, with the seconds until one reopens.
    with pytest.raises(anthropic.APIStatusError) as cooling:
        messages.messages.create(model="group", max_tokens=50, messages=HELLO)
    assert cooling.value.status_code == 503
    assert cooling.value.body == {
        "type": "error",
        "error": {
            "type": "overloaded_error",
            "message": "Every deployment of `group` is cooling down.",
        },
    }
    assert 28 <= int(cooling.value.response.headers["retry-after"]) <= 30
    assert served_by(pair) == ["primary", "backup"]


def test_deployment_limits_answer_an_anthropic_429(
    openai_emulator, install_deployments, deployment, messages, settings
) -> None:
    settings.OGEM_DEPLOYMENT_LIMIT_WINDOW = 2
    capacity_reset()
    install_deployments(deployment("only", rpm=1))
    messages.messages.create(model="group", max_tokens=50, messages=HELLO)
    with pytest.raises(anthropic.RateLimitError) as limited:
        messages.messages.create(model="group", max_tokens=50, messages=HELLO)
    assert limited.value.body == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "Every deployment of `group` is at its rate limit.",
        },
    }
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 2
    assert served_by(openai_emulator) == ["only"]
    capacity_reset()


def test_a_stream_fails_over_before_its_first_byte(pair, messages) -> None:
    pair.inject(status=500)
    with messages.messages.stream(model="group", max_tokens=50, messages=HELLO) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert final.content[0].text == REPLY  # type: ignore[union-attr]
    assert served_by(pair) == ["primary", "backup"]


def test_a_stream_cut_after_its_first_byte_ends_with_an_anthropic_error_event(
    pair, live_ogem, master_key, messages
) -> None:
    pair.inject(cut_after_chunks=2)
    with pytest.raises(anthropic.APIStatusError) as failed:
        with messages.messages.stream(model="group", max_tokens=50, messages=HELLO) as stream:
            for _ in stream:
                pass
    assert failed.value.body["type"] == "error"  # type: ignore[index]
    assert failed.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    assert served_by(pair) == ["primary"]  # no failover once bytes reached the client
    # On the wire: Anthropic events, then one `error` event, nothing after it.
    pair.requests.clear()
    pair.inject(cut_after_chunks=2)
    response = httpx.post(
        f"{live_ogem.url}/v1/messages",
        headers={"x-api-key": master_key, "anthropic-version": "2023-06-01"},
        json={"model": "group", "max_tokens": 50, "messages": HELLO, "stream": True},
        timeout=30,
    )
    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e.startswith("event: ")]
    assert events[0].startswith("event: message_start")
    assert events[-1].startswith("event: error\n")
    assert all(not e.startswith("event: message_stop") for e in events)
    assert served_by(pair) == ["primary"]


def test_a_slow_first_byte_fails_over(
    openai_emulator, install_deployments, deployment, messages
) -> None:
    install_deployments(
        deployment("slow", priority=0, timeouts=FAST_TIMEOUTS),
        deployment("backup", priority=1, timeouts=FAST_TIMEOUTS),
    )
    openai_emulator.inject(first_byte_delay=1.0)
    started = time.monotonic()
    message = messages.messages.create(model="group", max_tokens=50, messages=HELLO)
    assert time.monotonic() - started < 3.0
    assert message.content[0].text == REPLY  # type: ignore[union-attr]
    assert served_by(openai_emulator) == ["slow", "backup"]


def test_count_tokens_skips_a_deployment_whose_circuit_is_open(
    install_deployments, messages, tag
) -> None:
    emulator = anthropic_emulator_get()
    emulator.reset()
    claude = Deployment(
        id=f"{tag}:claude",
        model_name="counted",
        provider="anthropic",
        upstream_model="claude-3-5-haiku-20241022",
        api_base=emulator.url,
        api_key=API_KEY,
        priority=0,
    )
    mock = Deployment(
        id=f"{tag}:mock", model_name="counted", provider="mock", upstream_model="m", priority=1
    )
    install_deployments(claude, mock)
    messages.messages.count_tokens(model="counted", messages=HELLO)  # type: ignore[arg-type]
    assert [r.path for r in emulator.requests] == ["/v1/messages/count_tokens"]
    asyncio.run(health_failure(claude, policy=HealthPolicy(allowed_fails=1, cooldown=30), forced=0))
    emulator.reset()
    counted = messages.messages.count_tokens(model="counted", messages=HELLO)  # type: ignore[arg-type]
    assert counted.input_tokens == mock_token_count("Hello there")
    assert emulator.requests == []
