"""A configuration entry naming an organization that no longer exists is skipped, never the file:
renaming or deleting one organization must not take the other tenants' models away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway import registry as deployment_registry
from gateway.config import config_check, config_watch_stop
from gateway.registry import registry_install, registry_load_initial
from keys.services import key_create
from tenants.services import organization_update
from tests.factories import OrganizationFactory

TWO_ORGANIZATIONS = """
models:
  - name: model-a
    provider: mock
    model: model-a
    organization: org-a
  - name: model-b
    provider: mock
    model: model-b
    organization: org-b
  - name: shared
    provider: mock
    model: shared
"""


@pytest.mark.django_db
def test_an_unknown_slug_skips_its_entry_with_a_warning(write_config) -> None:
    org_a = OrganizationFactory(slug="org-a")
    path = write_config(TWO_ORGANIZATIONS)
    config, problems = config_check(path)
    assert config is not None
    assert [(d.id, d.organization_id) for d in config.deployments] == [
        ("config:model-a#0", org_a.pk),
        ("config:shared#0", None),
    ]
    assert [str(p) for p in problems] == [
        f'{path}:9:19: warning: models[1].organization: no organization with slug "org-b"; '
        "deployment skipped"
    ]


@pytest.fixture
def restarted_with(settings, tmp_path: Path) -> Iterator[Path]:
    """OGEM_CONFIG at a file; the test calls `restart()` to load it as a fresh process does."""
    path = tmp_path / "ogem.yaml"
    path.write_text(TWO_ORGANIZATIONS)
    settings.OGEM_CONFIG = str(path)
    settings.OGEM_CONFIG_WATCH = False
    previous = deployment_registry._current
    yield path
    config_watch_stop()
    deployment_registry._current = previous


@pytest.mark.live
def test_renamed_organization_leaves_the_others_served(live_ogem, restarted_with) -> None:
    org_a = OrganizationFactory(slug="org-a")
    org_b = OrganizationFactory(slug="org-b")
    key_a = key_create(name="a", organization=org_a).secret
    key_b = key_create(name="b", organization=org_b).secret
    # An operator renames B; the file still names the old slug. Then the process restarts.
    organization_update(organization=org_b, slug="org-b-renamed")
    registry_install(registry_load_initial(), source="test")

    client_a = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=key_a, max_retries=0)
    assert {model.id for model in client_a.models.list()} == {"model-a", "shared"}
    reply = client_a.chat.completions.create(
        model="model-a", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Mock reply to: hi"
    client_b = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=key_b, max_retries=0)
    shared = client_b.chat.completions.create(
        model="shared", messages=[{"role": "user", "content": "hi"}]
    )
    assert shared.choices[0].message.content == "Mock reply to: hi"
    with pytest.raises(openai.NotFoundError):
        client_b.chat.completions.create(
            model="model-b", messages=[{"role": "user", "content": "hi"}]
        )
