"""Assistants, threads and runs on the management side: /api/v1/assistants, /api/v1/threads and
/api/v1/assistant-runs, and the admin pages; each caller sees its own tenant's only."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from assistants.models import Assistant, Run, Thread
from tests.api.conftest import Tenant, World, world  # noqa: F401 (the fixture)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _objects(tenant: Tenant, name: str, *, status: str) -> None:
    now = timezone.now()
    owner = {
        "organization": tenant.organization,
        "team": tenant.team,
        "key": tenant.team_key,
        "created_at": now,
    }
    Assistant.objects.create(assistant_id=f"asst_{name}", model="mock-chat", name=name, **owner)
    thread = Thread.objects.create(thread_id=f"thread_{name}", **owner)
    Run.objects.create(
        run_id=f"run_{name}",
        thread=thread,
        assistant_id=f"asst_{name}",
        model="mock-chat",
        status=status,
        usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        expires_at=now + timedelta(minutes=10),
        **owner,
    )


@pytest.fixture
def assistants(world: World) -> World:  # noqa: F811
    _objects(world.a, "aaa1", status="requires_action")
    _objects(world.b, "bbb1", status="completed")
    return world


def test_org_admin_lists_their_tenants_objects(assistants: World) -> None:
    client = assistants.clients["org_admin"]
    rows = client.get("/api/v1/assistants").json()["results"]
    assert [(row["id"], row["name"], row["model"]) for row in rows] == [
        ("asst_aaa1", "aaa1", "mock-chat")
    ]
    assert [row["id"] for row in client.get("/api/v1/threads").json()["results"]] == ["thread_aaa1"]
    (run,) = client.get("/api/v1/assistant-runs").json()["results"]
    assert (run["id"], run["thread_id"], run["status"]) == (
        "run_aaa1",
        "thread_aaa1",
        "requires_action",
    )
    assert run["usage"]["total_tokens"] == 5
    assert client.get("/api/v1/assistants/asst_aaa1").status_code == 200
    assert client.get("/api/v1/assistants/asst_bbb1").status_code == 404
    assert client.get("/api/v1/assistant-runs/run_bbb1").status_code == 404


def test_team_admin_sees_their_team_and_master_sees_all(assistants: World) -> None:
    team = assistants.clients["team_admin"].get("/api/v1/assistant-runs").json()["results"]
    assert [row["id"] for row in team] == ["run_aaa1"]
    master = assistants.clients["master"]
    everything = master.get("/api/v1/assistants").json()["results"]
    assert sorted(row["id"] for row in everything) == ["asst_aaa1", "asst_bbb1"]
    done = master.get("/api/v1/assistant-runs", {"status": "completed"}).json()["results"]
    assert [row["id"] for row in done] == ["run_bbb1"]


def test_the_admin_pages_list_and_cancel_runs(assistants: World) -> None:
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    root.save(update_fields=["password"])
    client = Client()
    client.force_login(root)
    for page in ("assistant", "thread", "run"):
        html = client.get(f"/admin/assistants/{page}/").content.decode()
        assert "aaa1" in html and "bbb1" in html
    run = Run.objects.get(run_id="run_aaa1")
    assert client.get(f"/admin/assistants/run/{run.pk}/change/").status_code == 200
    answer = client.post(
        "/admin/assistants/run/",
        {"action": "cancel_runs", "_selected_action": [run.pk]},
    )
    assert answer.status_code == 302
    run.refresh_from_db()
    assert run.status == "cancelled"


def test_an_org_admin_sees_their_runs_in_admin_and_cancels_them(assistants: World) -> None:
    client = Client()
    client.force_login(assistants.users["org_admin"])
    html = client.get("/admin/assistants/run/").content.decode()
    assert "run_aaa1" in html and "run_bbb1" not in html
    theirs = Run.objects.get(run_id="run_bbb1")
    # Not in their queryset: admin answers as for a missing object.
    assert client.get(f"/admin/assistants/run/{theirs.pk}/change/").status_code == 404
    mine = Run.objects.get(run_id="run_aaa1")
    client.post("/admin/assistants/run/", {"action": "cancel_runs", "_selected_action": [mine.pk]})
    mine.refresh_from_db()
    assert mine.status == "cancelled"


def test_admin_shows_each_tenants_stored_objects_against_the_bound(
    assistants: World, settings: object
) -> None:
    settings.OGEM_ASSISTANTS_MAX_OBJECTS = 40  # type: ignore[attr-defined]
    thread = Thread.objects.get(thread_id="thread_aaa1")
    for number in range(3):
        thread.messages.create(
            message_id=f"msg_aaa{number}", created_at=timezone.now(), role="user", content=[]
        )
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    root.save(update_fields=["password"])
    client = Client()
    client.force_login(root)
    html = client.get("/admin/assistants/thread/").content.decode()
    # Tenant a: an assistant, a thread, 3 messages; tenant b: an assistant and a thread.
    assert "5 / 40 (12.5%)" in html and "2 / 40 (5.0%)" in html
    assistant = Assistant.objects.get(assistant_id="asst_aaa1")
    page = client.get(f"/admin/assistants/assistant/{assistant.pk}/change/").content.decode()
    assert "5 / 40 (12.5%)" in page
