from __future__ import annotations

import openai
import pytest


@pytest.fixture
def client(sdk: openai.OpenAI) -> openai.OpenAI:
    return sdk
