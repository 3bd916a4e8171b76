from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator


@pytest.fixture
def client(sdk: openai.OpenAI) -> openai.OpenAI:
    return sdk


@pytest.fixture
def emulated_model(  # type: ignore[no-untyped-def]
    openai_emulator, install_deployments
) -> Callable[..., OpenAIEmulator]:
    """Installs model `emulated`: one deployment on the OpenAI emulator (`fields` override)."""

    def install(**fields: Any) -> OpenAIEmulator:
        install_deployments(
            Deployment(
                id="test:emulated",
                model_name="emulated",
                provider="openai",
                upstream_model="gpt-4o-mini",
                api_base=f"{openai_emulator.url}/v1",
                api_key=UPSTREAM_KEY,
                **fields,
            )
        )
        return openai_emulator

    return install
