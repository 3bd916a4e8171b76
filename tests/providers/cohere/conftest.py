from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from providers.base import Deployment
from tests.emulators.cohere_api import API_KEY, CohereEmulator, cohere_emulator_get
from tests.live import LiveServer


@pytest.fixture
def cohere_emulator() -> Iterator[CohereEmulator]:
    emulator = cohere_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


def cohere_deployment(
    emulator: CohereEmulator, *, model: str = "command-a-03-2025", name: str = "command"
) -> Deployment:
    return Deployment(
        id=f"test:{name}:0",
        model_name=name,
        provider="cohere",
        upstream_model=model,
        api_base=emulator.url,
        api_key=API_KEY,
    )


@pytest.fixture
def command(cohere_emulator: CohereEmulator, install_deployments: Callable[..., None]) -> str:
    install_deployments(
        cohere_deployment(cohere_emulator),
        cohere_deployment(cohere_emulator, model="embed-v4.0", name="cohere-embed"),
        cohere_deployment(cohere_emulator, model="rerank-v3.5", name="cohere-rerank"),
    )
    return "command"


@pytest.fixture
def client(live_ogem: LiveServer, master_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
