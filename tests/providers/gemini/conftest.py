from __future__ import annotations

from collections.abc import Iterator

import pytest

from providers.base import Deployment
from tests.emulators.gemini_api import API_KEY, GeminiEmulator, gemini_emulator_get


@pytest.fixture
def gemini_emulator() -> Iterator[GeminiEmulator]:
    emulator = gemini_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def gemini_deployment(gemini_emulator: GeminiEmulator) -> Deployment:
    return Deployment(
        id="test:gemini:0",
        model_name="gemini",
        provider="gemini",
        upstream_model="gemini-2.0-flash",
        api_base=gemini_emulator.url,
        api_key=API_KEY,
    )
