"""Upstream credentials end to end (issue 14, findings 1 and 16): what reaches an upstream from a
tenant's deployment is the tenant's own key or one the operator granted, never a server secret,
whatever was written in the database before."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import openai
import pytest

from gateway import registry as deployment_registry
from gateway.models import Credential, ModelDeployment
from gateway.registry import registry_install, registry_load_initial
from gateway.services import credential_save
from keys.services import key_create
from tenants.models import Role
from tests.emulators.openai_api import OpenAIEmulator
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.live import LiveServer

pytestmark = pytest.mark.live

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
def reload_registry() -> Iterator[None]:
    """After the test, the deployments in use before it."""
    previous = deployment_registry._current
    yield
    deployment_registry._current = previous


def _chat(live: LiveServer, key: str, model: str) -> openai.types.chat.ChatCompletion:
    client = openai.OpenAI(base_url=f"{live.url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.create(model=model, messages=HELLO)


def test_tenant_deployments_reach_upstreams_with_tenant_keys_only(
    live_ogem: LiveServer,
    openai_emulator: OpenAIEmulator,
    reload_registry: None,
    settings,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = f"{openai_emulator.url}/v1"
    # The emulator listens on loopback: an operator opens it to both organizations.
    org_a, org_b = (
        OrganizationFactory(slug=slug, upstream_networks=["127.0.0.0/8", "::1/128"])
        for slug in ("org-a", "org-b")
    )
    admin_a = UserFactory(username="admin-a")
    MembershipFactory(user=admin_a, organization=org_a, team=None, role=Role.ORG_ADMIN)
    admin_key = key_create(name="admin", organization=org_a, user=admin_a).secret
    key_a = key_create(name="a", team=TeamFactory(organization=org_a)).secret
    key_b = key_create(name="b", team=TeamFactory(organization=org_b)).secret
    granted = credential_save(
        credential=Credential(name="shared-openai"), value=openai_emulator.api_key
    )
    granted.organizations.add(org_a)

    api = httpx.Client(
        base_url=f"{live_ogem.url}/api/v1", headers={"Authorization": f"Bearer {admin_key}"}
    )
    base = {"provider": "openai", "upstream_model": "gpt-4o-mini", "organization": org_a.pk}
    own = api.post(
        "/models",
        json={
            **base,
            "model_name": "own",
            "api_base": upstream,
            "api_key": openai_emulator.api_key,
        },
    )
    assert own.status_code == 201
    assert openai_emulator.api_key not in own.text
    stored = ModelDeployment.objects.filter(pk=own.json()["id"]).values().get()
    assert openai_emulator.api_key not in str(stored)
    by_grant = api.post(
        "/models",
        json={**base, "model_name": "granted", "api_base": upstream, "credential": "shared-openai"},
    )
    assert by_grant.status_code == 201
    exfil = api.post(
        "/models",
        json={
            **base,
            "model_name": "exfil",
            "api_base": upstream,
            "credential_ref": "os.environ/OGEM_MASTER_KEY",
        },
    )
    assert exfil.status_code == 400
    # Rows written before references became operator-only (or behind the API's back).
    leak = ModelDeployment.objects.create(
        **{**base, "organization": org_a},
        model_name="leak",
        api_base=upstream,
        credential_ref="os.environ/OGEM_MASTER_KEY",
    )
    stolen = ModelDeployment.objects.create(
        **{**base, "organization": org_b},
        model_name="stolen",
        api_base=upstream,
        credential=granted,
    )

    with caplog.at_level(logging.ERROR, logger="ogem"):
        registry_install(registry_load_initial(), source="test")
    refused = [r.getMessage() for r in caplog.records if "ModelDeployment#" in r.getMessage()]
    assert refused == [
        f"configuration database: database:ModelDeployment#{leak.pk}: error: an organization's "
        "deployment cannot use an os.environ/, file:// or secret:// reference (those are for the "
        "operator's shared deployments): give its api_key, or a credential the operator granted "
        "to the organization; skipped",
        f"configuration database: database:ModelDeployment#{stolen.pk}: error: no credential "
        'named "shared-openai" is granted to this organization; skipped',
    ]

    for model in ("own", "granted"):
        answer = _chat(live_ogem, key_a, model)
        assert answer.model == "gpt-4o-mini"
        assert openai_emulator.last.headers["authorization"] == f"Bearer {openai_emulator.api_key}"
    for key, model in ((key_a, "leak"), (key_b, "stolen")):
        with pytest.raises(openai.NotFoundError):
            _chat(live_ogem, key, model)
    assert len(openai_emulator.requests) == 2
    assert all(
        settings.OGEM_MASTER_KEY not in str(recorded.headers)
        for recorded in openai_emulator.requests
    )
