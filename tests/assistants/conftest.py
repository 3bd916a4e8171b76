from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.live import LiveServer


@pytest.fixture
def key_sdk(live_ogem: LiveServer, make_key: Callable[..., str]) -> Callable[..., openai.OpenAI]:
    """The SDK with a new virtual key (in a team of its own unless told)."""

    def make(**options: Any) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{live_ogem.url}/v1", api_key=make_key(**options), max_retries=0
        )

    return make
