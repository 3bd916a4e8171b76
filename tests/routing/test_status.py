"""/api/v1/routing/status and the admin page: groups, strategies, fallbacks, circuit states."""

from __future__ import annotations

import asyncio

import pytest
from rest_framework.test import APIClient

from gateway.health import HealthPolicy, health_failure
from providers.base import Deployment
from tenants.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory


@pytest.fixture
def routed(install_deployments, router_settings, tag):
    org, other = OrganizationFactory(), OrganizationFactory()
    router_settings(fallbacks={"status-group": ("backup-group",)}, allowed_fails=4)
    shared = Deployment(
        id=f"{tag}:shared", model_name="status-group", provider="openai", upstream_model="a"
    )
    own = Deployment(
        id=f"{tag}:own",
        model_name="status-group",
        provider="openai",
        upstream_model="b",
        organization_id=org.pk,
        region="eu",
    )
    foreign = Deployment(
        id=f"{tag}:foreign",
        model_name="status-group",
        provider="openai",
        upstream_model="c",
        organization_id=other.pk,
    )
    install_deployments(shared, own, foreign)
    asyncio.run(health_failure(shared, policy=HealthPolicy(allowed_fails=1, cooldown=60), forced=0))
    return org, tag


def _group(body: dict) -> dict:
    return next(g for g in body["groups"] if g["model"] == "status-group")


@pytest.mark.django_db
def test_proxy_admin_sees_every_deployment_and_circuit(routed, master_key) -> None:
    _, tag = routed
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {master_key}")
    response = client.get("/api/v1/routing/status")
    assert response.status_code == 200
    body = response.json()
    assert body["router"]["allowed_fails"] == 4
    group = _group(body)
    assert group["strategy"] == "simple-shuffle"
    assert group["fallbacks"] == ["backup-group"]
    states = {d["deployment"]: d["state"] for d in group["deployments"]}
    assert states == {f"{tag}:shared": "open", f"{tag}:own": "closed", f"{tag}:foreign": "closed"}
    shared = next(d for d in group["deployments"] if d["deployment"] == f"{tag}:shared")
    assert 55 <= shared["open_for_seconds"] <= 60


@pytest.mark.django_db
def test_org_admin_sees_shared_and_own_only(routed) -> None:
    org, tag = routed
    admin = UserFactory()
    admin.save(update_fields=["password"])
    MembershipFactory(user=admin, organization=org, role=Role.ORG_ADMIN)
    client = APIClient()
    client.force_login(admin)
    response = client.get("/api/v1/routing/status")
    assert response.status_code == 200
    ids = {d["deployment"] for d in _group(response.json())["deployments"]}
    assert ids == {f"{tag}:shared", f"{tag}:own"}


@pytest.mark.django_db
def test_members_are_refused(routed) -> None:
    org, _ = routed
    member = UserFactory()
    member.save(update_fields=["password"])
    MembershipFactory(user=member, organization=org, role=Role.MEMBER)
    client = APIClient()
    client.force_login(member)
    response = client.get("/api/v1/routing/status")
    assert response.status_code == 403
    assert APIClient().get("/api/v1/routing/status").status_code in (401, 403)


@pytest.mark.django_db
def test_admin_page_shows_circuits(routed, client) -> None:
    _, tag = routed
    admin = UserFactory(is_superuser=True, is_staff=True)
    admin.save(update_fields=["password"])
    client.force_login(admin)
    response = client.get("/admin/gateway/modeldeployment/routing/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f"{tag}:shared" in html
    assert "open" in html
    assert "backup-group" in html
