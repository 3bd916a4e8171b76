"""/api/v1/files: every file for the proxy admin, a tenant's own for its admins and viewers, 404
for the rest; deleting takes an admin and removes the contents too."""

from __future__ import annotations

from pathlib import Path

import pytest

from files.models import File
from files.services import file_create
from gateway.context import Caller
from tenants.models import Team
from tests.api.conftest import World, ids, world  # noqa: F401 - the fixture
from tests.files.conftest import blobs

pytestmark = pytest.mark.django_db


def _file(team: Team, name: str) -> File:
    caller = Caller(organization_id=team.organization_id, team_id=team.pk)
    return file_create(caller=caller, chunks=[b"data"], filename=name, purpose="user_data")


def _listed(response) -> set[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_who_sees_which_files(world: World) -> None:  # noqa: F811
    a_team, a_other, b_team = (
        _file(world.a.team, "a.txt"),
        _file(world.a.other_team, "a-other.txt"),
        _file(world.b.team, "b.txt"),
    )
    every = {a_team.file_id, a_other.file_id, b_team.file_id}
    assert _listed(world.clients["master"].get("/api/v1/files")) == every
    assert _listed(world.clients["org_admin"].get("/api/v1/files")) == every - {b_team.file_id}
    assert _listed(world.clients["viewer"].get("/api/v1/files")) == every - {b_team.file_id}
    assert _listed(world.clients["team_admin"].get("/api/v1/files")) == {a_team.file_id}
    assert _listed(world.clients["member"].get("/api/v1/files")) == set()
    assert _listed(world.clients["master"].get(f"/api/v1/files?team={world.b.team.pk}")) == {
        b_team.file_id
    }
    for role in ("org_admin", "team_admin", "member", "viewer"):
        answer = world.clients[role].get(f"/api/v1/files/{b_team.file_id}")
        assert answer.status_code == 404
    shown = world.clients["org_admin"].get(f"/api/v1/files/{a_team.file_id}").json()
    assert shown == {
        "id": a_team.file_id,
        "organization": world.a.organization.pk,
        "team": world.a.team.pk,
        "key": None,
        "filename": "a.txt",
        "purpose": "user_data",
        "bytes": 4,
        "created_at": shown["created_at"],
        "expires_at": None,
        "batch_summary": None,
    }


def test_deleting_takes_an_admin_and_removes_the_contents(
    world: World,  # noqa: F811
    files_dir: Path,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    file = _file(world.a.team, "a.txt")
    other = _file(world.b.team, "b.txt")
    assert world.clients["viewer"].delete(f"/api/v1/files/{file.file_id}").status_code == 403
    assert world.clients["member"].delete(f"/api/v1/files/{file.file_id}").status_code == 404
    assert world.clients["org_admin"].delete(f"/api/v1/files/{other.file_id}").status_code == 404
    assert len(blobs(files_dir)) == 2
    with django_capture_on_commit_callbacks(execute=True):
        answer = world.clients["team_admin"].delete(f"/api/v1/files/{file.file_id}")
    assert answer.status_code == 204
    assert list(File.objects.values_list("file_id", flat=True)) == [other.file_id]
    (left,) = blobs(files_dir)
    assert left.name == other.file_id


def test_files_are_not_created_nor_changed_here(world: World) -> None:  # noqa: F811
    file = _file(world.a.team, "a.txt")
    master = world.clients["master"]
    assert master.post("/api/v1/files", {}, format="json").status_code == 405
    assert (
        master.patch(f"/api/v1/files/{file.file_id}", {"filename": "b"}, format="json").status_code
        == 405
    )
