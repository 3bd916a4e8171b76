"""Fine-tuning jobs on the management side: /api/v1/fine_tuning/jobs with their cost, and the
admin page; each caller sees its own tenant's only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from fine_tuning.models import FineTuningEvent, FineTuningJob
from tenants.models import User
from tests.api.conftest import Tenant, World, world  # noqa: F401 (the fixture)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _job(tenant: Tenant, name: str, *, status: str = "running", cost: str | None = None) -> None:
    job = FineTuningJob.objects.create(
        job_id=f"ftjob-{name}",
        organization=tenant.organization,
        team=tenant.team,
        key=tenant.team_key,
        deployment_id="db:1",
        provider="openai",
        model="gpt-4o-mini",
        base_model="gpt-4o-mini-2024-07-18",
        upstream_job_id=f"ftjob-up{name}",
        training_file="file-a",
        status=status,
        trained_tokens=1000 if cost else None,
        cost=Decimal(cost) if cost else None,
        created_at=timezone.now(),
    )
    FineTuningEvent.objects.create(
        job=job, event_id=f"ftevent-{name}", created_at=timezone.now(), message="Job started"
    )


@pytest.fixture
def jobs(world: World) -> World:  # noqa: F811
    _job(world.a, "aaa1", status="succeeded", cost="0.003")
    _job(world.b, "bbb1", cost=None)
    return world


def test_org_admin_lists_their_jobs_with_cost(jobs: World) -> None:
    response = jobs.clients["org_admin"].get("/api/v1/fine_tuning/jobs")
    assert response.status_code == 200
    (row,) = response.json()["results"]
    assert (row["id"], row["status"], row["cost"], row["trained_tokens"]) == (
        "ftjob-aaa1",
        "succeeded",
        "0.00300000",
        1000,
    )
    one = jobs.clients["org_admin"].get("/api/v1/fine_tuning/jobs/ftjob-aaa1")
    assert one.status_code == 200 and one.json()["model"] == "gpt-4o-mini"
    assert jobs.clients["org_admin"].get("/api/v1/fine_tuning/jobs/ftjob-bbb1").status_code == 404


def test_team_admin_sees_their_team_and_master_sees_all(jobs: World) -> None:
    team = jobs.clients["team_admin"].get("/api/v1/fine_tuning/jobs").json()["results"]
    assert [row["id"] for row in team] == ["ftjob-aaa1"]
    everything = jobs.clients["master"].get("/api/v1/fine_tuning/jobs").json()["results"]
    assert sorted(row["id"] for row in everything) == ["ftjob-aaa1", "ftjob-bbb1"]
    running = jobs.clients["master"].get("/api/v1/fine_tuning/jobs", {"status": "running"})
    assert [row["id"] for row in running.json()["results"]] == ["ftjob-bbb1"]


def test_the_admin_page_lists_jobs_and_org_admins_see_theirs(jobs: World) -> None:
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    root.save(update_fields=["password"])
    client = Client()
    client.force_login(root)
    page = client.get("/admin/fine_tuning/finetuningjob/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "ftjob-aaa1" in html and "ftjob-bbb1" in html
    detail = client.get(
        f"/admin/fine_tuning/finetuningjob/{FineTuningJob.objects.get(job_id='ftjob-aaa1').pk}/"
        "change/"
    )
    assert detail.status_code == 200 and "Job started" in detail.content.decode()

    admin = Client()
    admin.force_login(User.objects.get(pk=jobs.users["org_admin"].pk))
    theirs = admin.get("/admin/fine_tuning/finetuningjob/").content.decode()
    assert "ftjob-aaa1" in theirs and "ftjob-bbb1" not in theirs


def test_the_portal_page_shows_the_callers_jobs(jobs: World) -> None:
    client = Client()
    client.force_login(User.objects.get(pk=jobs.users["org_admin"].pk))
    page = client.get("/fine-tuning/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "ftjob-aaa1" in html and "ftjob-bbb1" not in html
    assert "$0.003" in html
    assert 'http-equiv="refresh"' not in html  # its one job ended: nothing to follow
