"""Fixtures for tests that drive Ogem against local upstream emulators."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from gateway import registry as deployment_registry
from gateway.registry import registry_builtin, registry_install
from providers.base import Deployment
from tests.emulators.gemini_live_api import GeminiLiveEmulator
from tests.emulators.openai_api import OpenAIEmulator
from tests.emulators.realtime_api import RealtimeEmulator
from tests.live import LiveServer

UPSTREAM_KEY = "sk-upstream-test"


def slow_mock(name: str, *, latency_ms: int, upstream_model: str | None = None) -> Deployment:
    """A `mock` deployment serving `name` that waits `latency_ms` before it answers."""
    return Deployment(
        id=f"test:{name}",
        model_name=name,
        provider="mock",
        upstream_model=upstream_model or name,
        params={"latency_ms": latency_ms},
    )


@pytest.fixture(scope="session")
def _emulator_server() -> Iterator[OpenAIEmulator]:
    emulator = OpenAIEmulator(api_key=UPSTREAM_KEY).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def openai_emulator(_emulator_server: OpenAIEmulator) -> Iterator[OpenAIEmulator]:
    """The OpenAI/Azure emulator, with its recordings and faults reset for each test."""
    _emulator_server.flavor = "openai"
    _emulator_server.reset()
    yield _emulator_server
    _emulator_server.flavor = "openai"
    _emulator_server.reset()


@pytest.fixture(scope="session")
def _realtime_server() -> Iterator[RealtimeEmulator]:
    emulator = RealtimeEmulator(api_key=UPSTREAM_KEY).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def realtime_emulator(_realtime_server: RealtimeEmulator) -> Iterator[RealtimeEmulator]:
    """The Realtime API emulator (OpenAI's and Azure's URLs), reset for each test."""
    _realtime_server.reset()
    yield _realtime_server
    _realtime_server.reset()


@pytest.fixture(scope="session")
def _gemini_live_server() -> Iterator[GeminiLiveEmulator]:
    emulator = GeminiLiveEmulator(api_key=UPSTREAM_KEY).start()
    yield emulator
    emulator.stop()


@pytest.fixture
def gemini_live_emulator(_gemini_live_server: GeminiLiveEmulator) -> Iterator[GeminiLiveEmulator]:
    """The Gemini Live API emulator (the Gemini API's and Vertex AI's URLs), reset per test."""
    _gemini_live_server.reset()
    yield _gemini_live_server
    _gemini_live_server.reset()


@pytest.fixture
def install_deployments() -> Iterator[Callable[..., None]]:
    """Install deployments (next to the built-in mock ones) for one test, then restore."""
    previous = deployment_registry._current

    def install(*deployments: Deployment) -> None:
        registry_install([*registry_builtin(), *deployments], source="test")

    yield install
    deployment_registry._current = previous


@pytest.fixture
def emulated_model(
    openai_emulator: OpenAIEmulator, install_deployments: Callable[..., None]
) -> Callable[..., OpenAIEmulator]:
    """Installs model `emulated`: one deployment on the OpenAI emulator (`fields` override), with
    `others` next to it."""

    def install(*others: Deployment, **fields: Any) -> OpenAIEmulator:
        install_deployments(
            Deployment(
                id="test:emulated",
                model_name="emulated",
                provider="openai",
                upstream_model="gpt-4o-mini",
                api_base=f"{openai_emulator.url}/v1",
                api_key=UPSTREAM_KEY,
                **fields,
            ),
            *others,
        )
        return openai_emulator

    return install


@pytest.fixture
def sdk(live_ogem: LiveServer, master_key: str) -> openai.OpenAI:
    """The official OpenAI SDK pointed at the live Ogem, with the master key."""
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


@pytest.fixture
def make_key(live_ogem: LiveServer) -> Callable[..., str]:
    """Create a virtual key (in a fresh team unless one is given) and return its secret."""

    def make(**options: Any) -> str:
        from keys.services import key_create
        from tests.factories import TeamFactory

        if "team" not in options and "organization" not in options:
            options["team"] = TeamFactory()
        return key_create(name="test key", **options).secret

    return make
