"""A LiteLLM config.yaml's Vertex AI deployments, as LiteLLM users write them (`vertex_ai/` and its
`vertex_ai_beta/` alias, `vertex_project`, `vertex_location`, `vertex_credentials` as a file
path), load and reach the Vertex emulator through a live Ogem."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.config import config_check
from tests.emulators.vertex_api import PROJECT, VertexEmulator
from tests.live import LiveServer

pytestmark = pytest.mark.live


@pytest.mark.parametrize("prefix", ["vertex_ai", "vertex_ai_beta"])
def test_litellm_vertex_deployment_reaches_vertex(
    prefix: str,
    tmp_path: Path,
    service_account: dict[str, Any],
    vertex_emulator: VertexEmulator,
    install_deployments: Callable[..., None],
    live_ogem: LiveServer,
    master_key: str,
) -> None:
    credentials = tmp_path / "service-account.json"
    credentials.write_text(json.dumps(service_account))
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""model_list:
  - model_name: vx
    litellm_params:
      model: {prefix}/gemini-2.0-flash
      vertex_project: {PROJECT}
      vertex_location: europe-west4
      vertex_credentials: {credentials}
      api_base: {vertex_emulator.url}
"""
    )
    loaded, problems = config_check(str(config))
    assert [str(p) for p in problems] == []
    assert loaded is not None
    (deployment,) = loaded.deployments
    assert deployment.provider == "vertex_ai"
    install_deployments(deployment)

    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="vx", messages=[{"role": "user", "content": "Hello there"}]
    )
    assert raw.headers["x-ogem-provider"] == "vertex_ai"
    assert raw.parse().choices[0].message.content
    (sent,) = vertex_emulator.model_requests
    assert sent.path == (
        f"/v1/projects/{PROJECT}/locations/europe-west4/publishers/google/models/"
        "gemini-2.0-flash:generateContent"
    )
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Hello there"}]}]
