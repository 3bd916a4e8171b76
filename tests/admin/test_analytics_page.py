"""Admin's Analytics page: charts of performance, usage and the cache, and the insight tables,
scoped to the admin's organizations (the API's figures: tests/api/test_analytics.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from tenants.models import Role, User
from tests.factories import (
    MembershipFactory,
    OrganizationFactory,
    RequestLogFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

URL = "/admin/analytics/"


def _client(user: User) -> Client:
    client = Client()
    client.force_login(User.objects.get(pk=user.pk))
    return client


def _payload(response: Any) -> dict[str, Any]:
    match = re.search(
        rb'<script id="analytics-data" type="application/json">(.*?)</script>',
        response.content,
        re.S,
    )
    assert match is not None, "no chart data on the page"
    return json.loads(match.group(1))


@pytest.fixture
def world() -> dict[str, Any]:
    acme, globex = OrganizationFactory(name="Acme"), OrganizationFactory(name="Globex")
    search = TeamFactory(organization=acme, name="Search")
    secret = TeamFactory(organization=globex, name="Secret")
    midnight = datetime.combine(timezone.now().astimezone(UTC).date(), time(0), tzinfo=UTC)
    for latency in (100, 300):
        RequestLogFactory(
            created_at=midnight - timedelta(days=1),
            organization_id=acme.pk,
            team_id=search.pk,
            model="acme-model",
            latency_ms=latency,
            cost=Decimal("0.5"),
        )
    RequestLogFactory(
        created_at=midnight - timedelta(days=1),
        organization_id=globex.pk,
        team_id=secret.pk,
        model="globex-only-model",
        latency_ms=900,
        status_code=503,
        cost=Decimal("7"),
    )
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    admin = UserFactory(username="acme-admin")
    MembershipFactory(user=admin, organization=acme, role=Role.ORG_ADMIN)
    return {"acme": acme, "globex": globex, "secret": secret, "root": root, "admin": admin}


def test_the_superuser_sees_every_organization(world: dict[str, Any]) -> None:
    page = _client(world["root"]).get(URL)
    assert page.status_code == 200
    assert b"billing/analytics.js" in page.content and b"vendor/chart.umd.min.js" in page.content
    data = _payload(page)
    assert len(data["performance"]["buckets"]) == 7
    totals = {row["model"]: row["total"] for row in data["performance"]["results"]}
    assert totals["acme-model"]["latency_p50_ms"] == 200.0
    assert totals["globex-only-model"]["error_rate"] == 1.0
    assert data["teams"]["total"]["spend"] == "8.00000000"


def test_an_org_admin_sees_only_their_organization(world: dict[str, Any]) -> None:
    page = _client(world["admin"]).get(URL)
    assert page.status_code == 200
    data = _payload(page)
    assert [row["model"] for row in data["performance"]["results"]] == ["acme-model"]
    assert [row["team_name"] for row in data["teams"]["results"]] == ["Search"]
    assert b"globex-only-model" not in page.content and b"Secret" not in page.content
    # Another organization's team is not a choice: no charts.
    refused = _client(world["admin"]).get(URL, {"team": world["secret"].pk})
    assert refused.status_code == 200 and b"analytics-data" not in refused.content


def test_a_range_too_long_for_hours_is_refused_on_the_form(world: dict[str, Any]) -> None:
    page = _client(world["root"]).get(
        URL, {"start": "2026-01-01", "end": "2026-03-01", "bucket": "hour"}
    )
    assert page.status_code == 200
    assert b"analytics-data" not in page.content
    assert b"at most 31 days" in page.content
