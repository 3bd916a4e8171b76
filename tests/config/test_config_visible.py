"""The configuration file's deployments are shown, read-only and without their secrets, wherever
deployments are listed: GET /api/v1/models and admin's Model deployments page."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.test import APIClient

from gateway import registry as deployment_registry
from gateway.config import watch as config_watch
from gateway.registry import registry_install, registry_load_initial
from tests.factories import ModelDeploymentFactory, UserFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-file-secret-0123456789"
CONFIG = f"""
model_list:
  - model_name: gpt-file
    litellm_params:
      model: openai/gpt-4o-mini
      api_key: {SECRET}
      extra_headers: {{X-Upstream-Token: {SECRET}}}
      rpm: 60
  - model_name: gpt-file
    litellm_params:
      model: mock/backup
      order: 1
"""


@pytest.fixture
def served(settings, tmp_path: Path) -> Iterator[Callable[[str | None], None]]:  # type: ignore[no-untyped-def]
    """Serve a configuration file (or, with None, the embedded default) for one test."""
    previous_registry, previous_config = deployment_registry._current, config_watch._current
    settings.OGEM_CONFIG_WATCH = False

    def serve(text: str | None) -> None:
        settings.OGEM_CONFIG = ""
        if text is not None:
            path = tmp_path / "config.yaml"
            path.write_text(textwrap.dedent(text).lstrip("\n"))
            settings.OGEM_CONFIG = str(path)
        registry_install(registry_load_initial(), source="test")

    yield serve
    deployment_registry._current, config_watch._current = previous_registry, previous_config


def _api(master_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {master_key}")
    return client


def test_api_lists_the_files_deployments_read_only_and_without_secrets(served, master_key) -> None:
    row = ModelDeploymentFactory(model_name="gpt-db", provider="mock", upstream_model="db")
    served(CONFIG)
    response = _api(master_key).get("/api/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    first, second, database = body["results"]
    assert (first["source"], first["id"], first["deployment_id"]) == (
        "config",
        None,
        "config:gpt-file#0",
    )
    assert (first["model_name"], first["provider"], first["upstream_model"]) == (
        "gpt-file",
        "openai",
        "gpt-4o-mini",
    )
    assert first["has_credential"] is True
    assert first["rpm"] == 60
    assert first["params"] == {"extra_headers": "********"}
    assert (second["deployment_id"], second["priority"]) == ("config:gpt-file#1", 1)
    assert (database["source"], database["id"], database["deployment_id"]) == (
        "database",
        row.pk,
        f"db:{row.pk}",
    )
    assert SECRET not in response.content.decode()
    assert "api_key" not in first

    only = _api(master_key).get("/api/v1/models?source=database").json()
    assert [item["id"] for item in only["results"]] == [row.pk]
    files = _api(master_key).get("/api/v1/models?source=config&limit=1").json()
    assert files["count"] == 2
    assert [item["deployment_id"] for item in files["results"]] == ["config:gpt-file#0"]
    searched = _api(master_key).get("/api/v1/models?search=backup").json()
    assert [item["deployment_id"] for item in searched["results"]] == ["config:gpt-file#1"]
    # The page after the file's deployments is the database's.
    page = _api(master_key).get("/api/v1/models?limit=2&offset=2").json()
    assert [item["id"] for item in page["results"]] == [row.pk]
    wrong = _api(master_key).get("/api/v1/models?source=file")
    assert wrong.status_code == 400


def test_api_lists_the_builtin_mock_models_of_the_embedded_default(served, master_key) -> None:
    served(None)
    body = _api(master_key).get("/api/v1/models").json()
    assert body["count"] == 8
    assert {item["source"] for item in body["results"]} == {"builtin"}
    assert {"mock-chat", "local-embed"} <= {item["model_name"] for item in body["results"]}


@pytest.fixture
def admin_client() -> Client:
    user = UserFactory(username="root", is_superuser=True, is_staff=True)
    user.save(update_fields=["password"])
    client = Client()
    client.force_login(user)
    return client


def test_admin_lists_the_files_deployments_as_read_only(served, admin_client, settings) -> None:
    served(CONFIG)
    page = admin_client.get("/admin/gateway/modeldeployment/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"2 model deployments from the configuration file {settings.OGEM_CONFIG}" in html
    assert "(read-only)" in html
    assert "cannot be edited here" in html
    assert "config:gpt-file#0" in html and "config:gpt-file#1" in html
    assert SECRET not in html


def test_admin_names_the_builtin_mock_models(served, admin_client) -> None:
    served(None)
    html = admin_client.get("/admin/gateway/modeldeployment/").content.decode()
    assert "8 model deployments from the built-in offline models" in html
    assert "builtin:mock-chat" in html and "builtin:local-embed" in html
