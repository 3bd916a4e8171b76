from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.realtime_api import RealtimeEmulator


@pytest.fixture
def realtime_model(  # type: ignore[no-untyped-def]
    realtime_emulator, install_deployments
) -> Callable[..., RealtimeEmulator]:
    """Installs model `voice`: one OpenAI deployment on the Realtime emulator (`fields`
    override), plus any `extra` deployments."""

    def install(*extra: Deployment, **fields: Any) -> RealtimeEmulator:
        options: dict[str, Any] = {
            "id": "test:voice",
            "model_name": "voice",
            "provider": "openai",
            "upstream_model": "gpt-realtime",
            "api_base": f"{realtime_emulator.url}/v1",
            "api_key": UPSTREAM_KEY,
            **fields,
        }
        install_deployments(Deployment(**options), *extra)
        return realtime_emulator

    return install
