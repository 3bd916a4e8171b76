"""GET /api/v1/models/health: one small real request to every deployment, concurrently, each
within a timeout; and the admin page that shows it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from rest_framework.test import APIClient

from providers.base import Deployment
from providers.local.models import local_model_get
from tenants.models import Role
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator, Recorded
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.live import free_port

MOCK_ENDPOINTS = {
    "mock-chat": "chat/completions",
    "mock-embed": "embeddings",
    "mock-image": "images/generations",
    "mock-tts": "audio/speech",
    "mock-whisper": "audio/transcriptions",
    "mock-moderation": "moderations",
    "mock-rerank": "rerank",
}
# The embedded default's other built-in model, served in-process by the `local` provider.
BUILTIN_ENDPOINTS = {**MOCK_ENDPOINTS, "local-embed": "embeddings"}


def _check(url: str, key: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{url}/api/v1/models/health",
        params=params,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def test_every_model_is_called_through_its_own_endpoint(
    live_ogem, master_key, install_deployments, deployment, black_hole, tag
) -> None:
    # Loaded before the clock starts: a first load can take longer than the 1 s this check
    # allows on a busy machine (the live server runs in this process).
    local_model_get("wordllama-l2-supercat")
    refused = f"http://127.0.0.1:{free_port()}/v1"
    install_deployments(
        deployment("up", model="health-up"),
        deployment("refused", model="health-down", api_base=refused),
        deployment("hole", model="health-hole", api_base=black_hole),
        deployment("hole2", model="health-hole", api_base=black_hole),
    )
    response = _check(live_ogem.url, master_key, timeout="1")
    assert response.status_code == 200, response.text
    body = response.json()
    healthy = {r["model"]: r for r in body["healthy_endpoints"]}
    unhealthy = {r["deployment"]: r for r in body["unhealthy_endpoints"]}
    assert {name: healthy[name]["endpoint"] for name in BUILTIN_ENDPOINTS} == BUILTIN_ENDPOINTS
    assert healthy["health-up"]["deployment"] == f"{tag}:up"
    assert healthy["health-up"]["latency_ms"] >= 0
    assert set(unhealthy) == {f"{tag}:refused", f"{tag}:hole", f"{tag}:hole2"}
    assert unhealthy[f"{tag}:refused"]["error"].startswith("50")
    assert unhealthy[f"{tag}:hole"]["error"] in ("no answer within 1 s",) or unhealthy[
        f"{tag}:hole"
    ]["error"].startswith("504")
    assert body["healthy_count"] == len(BUILTIN_ENDPOINTS) + 1
    assert body["unhealthy_count"] == 3
    one = _check(live_ogem.url, master_key, model="health-up").json()
    assert [r["deployment"] for r in one["healthy_endpoints"]] == [f"{tag}:up"]
    assert one["unhealthy_count"] == 0


class _Rendezvous(OpenAIEmulator):
    """An upstream that answers a chat request only once `expected` of them are in flight
    together; a request left alone gives up after `patience` s with a 500."""

    def __init__(self, *, expected: int, patience: float) -> None:
        super().__init__(api_key=UPSTREAM_KEY)
        self.expected, self.patience = expected, patience
        self.arrived = 0
        self.together = asyncio.Event()  # bound to the emulator's loop when first awaited

    async def _chat_completions(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        self.arrived += 1
        if self.arrived >= self.expected:
            self.together.set()
        try:
            await asyncio.wait_for(self.together.wait(), self.patience)
        except TimeoutError:
            raise web.HTTPInternalServerError(text="no other request came") from None
        return await super()._chat_completions(body, recorded)


@pytest.fixture
def rendezvous() -> Iterator[_Rendezvous]:
    upstream = _Rendezvous(expected=2, patience=10).start()
    yield upstream
    upstream.stop()


def test_deployments_are_checked_concurrently(
    live_ogem, master_key, install_deployments, deployment, rendezvous
) -> None:
    """Both checks are in flight at once: each is answered only when the other has arrived
    (checked one after the other, the first would wait alone until it gave up)."""
    api_base = f"{rendezvous.url}/v1"
    install_deployments(
        deployment("meet-1", model="health-meet", api_base=api_base),
        deployment("meet-2", model="health-meet", api_base=api_base),
    )
    body = _check(live_ogem.url, master_key, model="health-meet", timeout="30").json()
    assert body["unhealthy_endpoints"] == []
    assert body["healthy_count"] == 2
    assert rendezvous.arrived == 2


def test_bad_timeout_is_a_400(live_ogem, master_key) -> None:
    for value in ("soon", "0", "61"):
        response = _check(live_ogem.url, master_key, timeout=value)
        assert response.status_code == 400
        assert "timeout" in response.json()


@pytest.mark.django_db
def test_org_admins_check_shared_and_own_members_are_refused(install_deployments, tag) -> None:
    org, other = OrganizationFactory(), OrganizationFactory()
    install_deployments(
        Deployment(
            id=f"{tag}:own", model_name="own", provider="mock", upstream_model="own",
            organization_id=org.pk,
        ),
        Deployment(
            id=f"{tag}:foreign", model_name="foreign", provider="mock", upstream_model="f",
            organization_id=other.pk,
        ),
    )  # fmt: skip
    admin, member = UserFactory(), UserFactory()
    for user in (admin, member):
        user.save(update_fields=["password"])  # force_login needs the saved password hash
    MembershipFactory(user=admin, organization=org, role=Role.ORG_ADMIN)
    MembershipFactory(user=member, organization=org, role=Role.MEMBER)
    client = APIClient()
    client.force_login(admin)
    response = client.get("/api/v1/models/health")
    assert response.status_code == 200
    checked = {r["deployment"] for r in response.json()["healthy_endpoints"]}
    assert f"{tag}:own" in checked and f"{tag}:foreign" not in checked
    assert "builtin:mock-chat" in checked  # shared deployments are every admin's to check
    client.force_login(member)
    assert client.get("/api/v1/models/health").status_code == 403


@pytest.mark.django_db
def test_admin_page_checks_on_demand(install_deployments, tag, client) -> None:
    install_deployments(
        Deployment(
            id=f"{tag}:dead", model_name="dead", provider="openai", upstream_model="x",
            api_base=f"http://127.0.0.1:{free_port()}/v1", api_key="sk-test",
        )
    )  # fmt: skip
    admin = UserFactory(is_superuser=True, is_staff=True)
    admin.save(update_fields=["password"])
    client.force_login(admin)
    page = client.get("/admin/gateway/modeldeployment/routing/").content.decode()
    assert "Check every model now" in page
    checked = client.get("/admin/gateway/modeldeployment/routing/?check=1").content.decode()
    assert "builtin:mock-embed" in checked and "embeddings" in checked
    assert f"{tag}:dead" in checked and "unhealthy" in checked
