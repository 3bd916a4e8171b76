"""Naming the `local` provider's model: LiteLLM's config.yaml, Ogem's format, /api/v1/models."""

from __future__ import annotations

import textwrap
from pathlib import Path

import openai
import pytest
from rest_framework.test import APIClient

from gateway.config import config_check, config_load
from gateway.models import ModelDeployment
from providers.base import Deployment

pytestmark = pytest.mark.django_db


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def test_a_litellm_model_list_entry_names_the_local_model(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        model_list:
          - model_name: my-embed
            litellm_params:
              model: local/wordllama-l2-supercat
          - model_name: typo
            litellm_params:
              model: local/wordllama-l3-supercat
        """,
    )
    config, problems = config_check(path)
    assert [str(p) for p in problems] == [
        f"{path}:5:5: warning: model_list[1]: the local provider has no model "
        '"wordllama-l3-supercat"; it serves "local/wordllama-l2-supercat"; deployment skipped'
    ]
    assert config is not None
    assert config.deployments == (
        Deployment(
            id="config:my-embed#0",
            model_name="my-embed",
            provider="local",
            upstream_model="wordllama-l2-supercat",
        ),
    )


def test_ogems_own_format_names_it_by_provider_or_prefix(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        version: 1
        models:
          - name: by-provider
            provider: local
            model: wordllama-l2-supercat
          - name: by-prefix
            model: local/wordllama-l2-supercat
        """,
    )
    config = config_load(path)
    assert [(d.model_name, d.provider, d.upstream_model) for d in config.deployments] == [
        ("by-provider", "local", "wordllama-l2-supercat"),
        ("by-prefix", "local", "wordllama-l2-supercat"),
    ]


def test_a_configured_local_model_group_answers_the_sdk(
    tmp_path: Path, install_deployments, sdk: openai.OpenAI
) -> None:
    path = _write(
        tmp_path,
        """
        model_list:
          - model_name: my-embed
            litellm_params:
              model: local/wordllama-l2-supercat
        """,
    )
    install_deployments(*config_load(path).deployments)
    raw = sdk.embeddings.with_raw_response.create(model="my-embed", input="hello", dimensions=64)
    assert raw.headers["x-ogem-deployment"] == "config:my-embed#0"
    assert len(raw.parse().data[0].embedding) == 64


def test_the_management_api_refuses_a_model_the_local_provider_lacks(settings) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {settings.OGEM_MASTER_KEY}")
    body = {"model_name": "db-embed", "provider": "local", "upstream_model": "nope"}
    refused = client.post("/api/v1/models", body, format="json")
    assert refused.status_code == 400
    assert refused.json() == {
        "upstream_model": [
            'The local provider has no model "nope"; it serves "local/wordllama-l2-supercat".'
        ]
    }
    assert not ModelDeployment.objects.filter(model_name="db-embed").exists()
    body["upstream_model"] = "wordllama-l2-supercat"
    assert client.post("/api/v1/models", body, format="json").status_code == 201
