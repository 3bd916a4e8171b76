from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gateway.config import config_load
from providers.base import Deployment
from tests.emulators.voyage_api import API_KEY, VoyageEmulator, voyage_emulator_get


@pytest.fixture
def voyage_emulator() -> Iterator[VoyageEmulator]:
    emulator = voyage_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def voyage_models(
    voyage_emulator: VoyageEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    install_deployments: Callable[..., None],
) -> tuple[Deployment, ...]:
    """`voyage-embed` and `voyage-rerank`, read from a LiteLLM config.yaml and installed."""
    monkeypatch.setenv("R2E_VOYAGE_KEY", API_KEY)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
model_list:
  - model_name: voyage-embed
    litellm_params:
      model: voyage/voyage-3.5
      api_base: {voyage_emulator.url}
      api_key: os.environ/R2E_VOYAGE_KEY
  - model_name: voyage-rerank
    litellm_params:
      model: voyage/rerank-2.5
      api_base: {voyage_emulator.url}/v1
      api_key: os.environ/R2E_VOYAGE_KEY
"""
    )
    deployments = config_load(str(path)).deployments
    install_deployments(*deployments)
    return deployments
