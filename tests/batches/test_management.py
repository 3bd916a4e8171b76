"""Batches on the management side: /api/v1/batches with their cost, the portal's batches page
with progress, the admin page; each caller sees its own tenant's only."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from batches.models import Batch
from billing.models import RequestLog
from tenants.models import User
from tests.api.conftest import Tenant, World, world  # noqa: F401 (the fixture)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _batch(tenant: Tenant, name: str, *, status: str = "in_progress", done: int = 0) -> Batch:
    now = timezone.now()
    return Batch.objects.create(
        batch_id=f"batch_{name}",
        organization=tenant.organization,
        team=tenant.team,
        key=tenant.team_key,
        endpoint="/v1/chat/completions",
        input_file_id=f"file-{name}",
        status=status,
        model="mock-chat",
        request_total=10,
        request_completed=done,
        created_at=now,
        expires_at=now + timedelta(hours=24),
    )


def _log(batch: Batch, n: int, cost: str) -> None:
    RequestLog.objects.create(
        request_id=f"{batch.batch_id}-{n}",
        created_at=timezone.now(),
        organization_id=batch.organization_id,
        team_id=batch.team_id,
        key_id=batch.key_id,
        endpoint="chat/completions",
        model="mock-chat",
        status_code=200,
        cost=Decimal(cost),
        batch_id=batch.batch_id,
    )


@pytest.fixture
def batches(world: World) -> World:  # noqa: F811
    mine = _batch(world.a, "aaa1", done=4)
    _log(mine, 1, "0.25")
    _log(mine, 2, "0.5")
    theirs = _batch(world.b, "bbb1", status="completed", done=10)
    _log(theirs, 1, "9")
    return world


def test_org_admin_lists_their_batches_with_cost(batches: World) -> None:
    response = batches.clients["org_admin"].get("/api/v1/batches")
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert row["id"] == "batch_aaa1"
    assert row["cost"] == "0.75000000"
    assert row["request_counts"] == {"total": 10, "completed": 4, "failed": 0}
    assert row["status"] == "in_progress"
    one = batches.clients["org_admin"].get("/api/v1/batches/batch_aaa1")
    assert one.status_code == 200 and one.json()["cost"] == "0.75000000"
    assert batches.clients["org_admin"].get("/api/v1/batches/batch_bbb1").status_code == 404


def test_team_admin_sees_their_team_and_master_sees_all(batches: World) -> None:
    team = batches.clients["team_admin"].get("/api/v1/batches").json()["results"]
    assert [row["id"] for row in team] == ["batch_aaa1"]
    everything = batches.clients["master"].get("/api/v1/batches").json()["results"]
    assert sorted(row["id"] for row in everything) == ["batch_aaa1", "batch_bbb1"]
    done = batches.clients["master"].get("/api/v1/batches", {"status": "completed"}).json()
    assert [row["cost"] for row in done["results"]] == ["9.00000000"]


def test_the_portal_page_shows_progress_of_the_callers_batches(batches: World) -> None:
    client = Client()
    client.force_login(User.objects.get(pk=batches.users["org_admin"].pk))
    page = client.get("/batches/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "batch_aaa1" in html and "batch_bbb1" not in html
    assert 'value="40"' in html  # 4 of 10
    assert "$0.75" in html
    assert 'http-equiv="refresh"' in html  # one still runs: the page polls


def test_the_admin_page_lists_batches_with_progress_and_cost(batches: World) -> None:
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    root.save(update_fields=["password"])  # as tests/admin/test_admin.py signs in
    client = Client()
    client.force_login(root)
    page = client.get("/admin/batches/batch/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "batch_aaa1" in html and "batch_bbb1" in html
    assert '<progress value="40"' in html
    assert "0.75" in html
    detail = client.get(
        f"/admin/batches/batch/{Batch.objects.get(batch_id='batch_aaa1').pk}/change/"
    )
    assert detail.status_code == 200
