from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers.base import Deployment
from tests.emulators.anthropic_api import API_KEY, AnthropicEmulator, anthropic_emulator_get


@pytest.fixture
def anthropic_emulator() -> Iterator[AnthropicEmulator]:
    emulator = anthropic_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def claude_deployment(anthropic_emulator: AnthropicEmulator) -> Deployment:
    return Deployment(
        id="test:claude:0",
        model_name="claude",
        provider="anthropic",
        upstream_model="claude-3-5-haiku-20241022",
        api_base=anthropic_emulator.url,
        api_key=API_KEY,
    )
