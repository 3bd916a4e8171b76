"""Each upstream fault, through the live server: what Ogem does with it (docs/routing.md)."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.routing.conftest import FAST_TIMEOUTS, served_by


@pytest.fixture
def pair(openai_emulator, install_deployments, deployment):
    """Group `group`: `primary` (priority 0, tried first) and `backup` (priority 1)."""
    install_deployments(
        deployment("primary", priority=0, timeouts=FAST_TIMEOUTS),
        deployment("backup", priority=1, timeouts=FAST_TIMEOUTS),
    )
    return openai_emulator


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 503},
        {"status": 429, "headers": {"Retry-After": "30"}},
        {"first_byte_delay": 1.0},  # slow first byte: the deployment's 0.5 s first-byte timeout
        {"reset": True},
        {"malformed": True},
    ],
    ids=["500", "503", "429", "slow-first-byte", "reset", "malformed-json"],
)
def test_a_failing_deployment_fails_over_to_the_next(pair, chat, fault) -> None:
    pair.inject(**fault)
    response = chat()
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "Emulated reply to: Hello there"
    assert served_by(pair) == ["primary", "backup"]
    assert response.headers["x-ogem-deployment"].endswith(":backup")
    assert response.headers["x-ogem-attempts"] == "2"


def test_connect_timeout_fails_over(
    openai_emulator, install_deployments, deployment, black_hole, chat
) -> None:
    install_deployments(
        deployment("dead", priority=0, api_base=black_hole, timeouts=FAST_TIMEOUTS),
        deployment("backup", priority=1),
    )
    started = time.monotonic()
    response = chat()
    assert response.status_code == 200, response.text
    assert time.monotonic() - started < 5
    assert served_by(openai_emulator) == ["backup"]
    assert response.headers["x-ogem-attempts"] == "2"


def test_connect_timeout_alone_is_a_clean_504(
    openai_emulator, install_deployments, deployment, black_hole, chat
) -> None:
    install_deployments(deployment("dead", api_base=black_hole, timeouts=FAST_TIMEOUTS))
    response = chat()
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["type"] == "upstream_error"
    assert error["code"] == "upstream_timeout"
    assert set(error) == {"message", "type", "param", "code"}


def test_retries_the_same_deployment_with_backoff(
    openai_emulator, install_deployments, deployment, router_settings, chat
) -> None:
    router_settings(num_retries=2)
    install_deployments(deployment("only"))
    openai_emulator.inject(status=500)
    openai_emulator.inject(status=503)
    started = time.monotonic()
    response = chat()
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert served_by(openai_emulator) == ["only", "only", "only"]
    assert response.headers["x-ogem-attempts"] == "3"
    # Backoff for a 5xx: at least half of 0.25 s, then half of 0.5 s.
    assert elapsed >= 0.125 + 0.25


def test_retries_run_out_into_the_last_error(
    openai_emulator, install_deployments, deployment, router_settings, chat
) -> None:
    router_settings(num_retries=1)
    install_deployments(deployment("only"))
    openai_emulator.inject(status=500)
    openai_emulator.inject(status=503)
    response = chat()
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "upstream_error"
    assert served_by(openai_emulator) == ["only", "only"]


def test_429_retry_after_is_honoured(
    openai_emulator, install_deployments, deployment, router_settings, chat
) -> None:
    router_settings(num_retries=1)
    install_deployments(deployment("only"))
    openai_emulator.inject(status=429, headers={"Retry-After": "1"})
    started = time.monotonic()
    response = chat()
    assert response.status_code == 200, response.text
    assert time.monotonic() - started >= 1.0
    assert served_by(openai_emulator) == ["only", "only"]


def test_429_retry_after_beyond_the_budget_returns_the_429(
    openai_emulator, install_deployments, deployment, router_settings, chat
) -> None:
    router_settings(num_retries=3, timeout=10.0)
    install_deployments(deployment("only"))
    openai_emulator.inject(status=429, headers={"Retry-After": "30"})
    started = time.monotonic()
    response = chat()
    assert time.monotonic() - started < 5.0  # at once, not at the end of the 10 s budget
    assert response.status_code == 429
    assert response.headers["retry-after"] == "30"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert served_by(openai_emulator) == ["only"]


def test_client_errors_are_not_retried(pair, router_settings, chat) -> None:
    router_settings(num_retries=3, fallbacks={"group": ("other",)})
    pair.inject(status=400)
    response = chat()
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert served_by(pair) == ["primary"]


def test_total_time_budget_cuts_a_slow_request(
    openai_emulator, install_deployments, deployment, router_settings, chat
) -> None:
    router_settings(timeout=1.0, num_retries=2)
    install_deployments(deployment("slow"))
    openai_emulator.inject(first_byte_delay=10.0)
    started = time.monotonic()
    response = chat()
    elapsed = time.monotonic() - started
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    # Cut at the 1 s budget: not before it, and not when the upstream answers (10 s).
    assert 0.9 <= elapsed < 10.0
    assert served_by(openai_emulator) == ["slow"]


def test_stream_fails_over_before_the_first_byte(pair, live_ogem, master_key) -> None:
    pair.inject(status=500)
    response = httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={"model": "group", "messages": [{"role": "user", "content": "Hi"}], "stream": True},
        timeout=30,
    )
    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert all('"error"' not in e for e in events)
    assert served_by(pair) == ["primary", "backup"]
    assert response.headers["x-ogem-deployment"].endswith(":backup")


def test_stream_cut_after_chunks_ends_with_an_error_event(pair, live_ogem, master_key) -> None:
    pair.inject(cut_after_chunks=2)
    response = httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={"model": "group", "messages": [{"role": "user", "content": "Hi"}], "stream": True},
        timeout=30,
    )
    assert response.status_code == 200
    events = [e for e in response.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    error = httpx.Response(200, content=events[-2][6:]).json()["error"]
    assert error["type"] == "upstream_error"
    assert len(events) == 4  # two relayed chunks, the error event, [DONE]: no failover mid-stream
    assert served_by(pair) == ["primary"]
