"""Fixtures for routing tests: router settings for one test, fresh circuits, two-deployment
groups on the OpenAI emulator and an upstream that never accepts connections."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from gateway.config import RouterSettings
from gateway.config import watch as config_watch
from gateway.health import local_health
from ogem_site.metrics import ROUTING_QUEUE_DEPTH
from providers.base import Deployment, Timeouts
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator
from tests.live import LiveServer

HELLO = [{"role": "user", "content": "Hello there"}]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "window(seconds): the deployments' limit window in tests/routing/test_capacity"
    )


@pytest.fixture
def router_settings() -> Iterator[Callable[..., None]]:
    """Set router_settings (as a configuration file would) for one test."""
    previous = config_watch._current

    def apply(**settings: Any) -> None:
        config_watch._current = replace(previous, router=RouterSettings(**settings))

    yield apply
    config_watch._current = previous


@pytest.fixture(autouse=True)
def _fresh_circuits() -> Iterator[None]:
    local_health.clear()
    yield
    local_health.clear()


@pytest.fixture
def tag() -> str:
    """A unique prefix for deployment ids, so circuits in a shared Redis never leak across tests."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def deployment(openai_emulator: OpenAIEmulator, tag: str) -> Callable[..., Deployment]:
    """A Deployment on the emulator whose upstream model name tells which one served."""

    def make(name: str, *, model: str = "group", **options: Any) -> Deployment:
        options.setdefault("api_base", f"{openai_emulator.url}/v1")
        return Deployment(
            id=f"{tag}:{name}",
            model_name=model,
            provider="openai",
            upstream_model=name,
            api_key=UPSTREAM_KEY,
            **options,
        )

    return make


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An api_base whose port listens but never accepts: its backlog is full, so a connect
    times out (like a firewalled or dead host)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    yield f"http://127.0.0.1:{port}/v1"
    for filler in fillers:
        filler.close()
    server.close()


@pytest.fixture
def chat(live_ogem: LiveServer, master_key: str) -> Callable[..., httpx.Response]:
    """POST /v1/chat/completions through the live Ogem with the master key."""

    def post(model: str = "group", **body: Any) -> httpx.Response:
        return httpx.post(
            f"{live_ogem.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {master_key}"},
            json={"model": model, "messages": HELLO, **body},
            timeout=30,
        )

    return post


def served_by(emulator: OpenAIEmulator) -> list[str]:
    """The upstream model of every request the emulator received, in order."""
    return [r.json["model"] for r in emulator.requests if isinstance(r.json, dict)]


def queued(model: str, depth: int, *, timeout: float = 30.0) -> None:
    """Wait until `depth` requests wait in `model`'s queue: a test that needs a request queued
    before the next one polls for it rather than sleeping, however slow the machine."""
    deadline = time.monotonic() + timeout
    while ROUTING_QUEUE_DEPTH.labels(model=model)._value.get() < depth:
        assert time.monotonic() < deadline, f"{depth} requests never waited for {model}"
        time.sleep(0.01)


FAST_TIMEOUTS = Timeouts(connect=0.5, first_byte=0.5, total=5)
