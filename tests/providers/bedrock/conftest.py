from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest

from providers.base import Deployment
from providers.bedrock.auth import credentials_forget
from tests.emulators.bedrock_api import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    BedrockEmulator,
    bedrock_emulator_get,
)
from tests.live import LiveServer

CLAUDE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"


@pytest.fixture
def bedrock_emulator() -> Iterator[BedrockEmulator]:
    emulator = bedrock_emulator_get()
    emulator.reset()
    credentials_forget()
    yield emulator
    emulator.reset()
    credentials_forget()


def bedrock_deployment(
    emulator: BedrockEmulator,
    *,
    model: str = CLAUDE,
    name: str = "claude-bedrock",
    **params: object,
) -> Deployment:
    return Deployment(
        id=f"test:{name}:0",
        model_name=name,
        provider="bedrock",
        upstream_model=model,
        api_base=emulator.url,
        region=REGION,
        params={"aws_access_key_id": ACCESS_KEY, "aws_secret_access_key": SECRET_KEY, **params},
    )


@pytest.fixture
def claude(bedrock_emulator: BedrockEmulator, install_deployments: Callable[..., None]) -> str:
    install_deployments(bedrock_deployment(bedrock_emulator))
    return "claude-bedrock"


@pytest.fixture
def client(live_ogem: LiveServer, master_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
