"""Files in admin: the proxy admin sees every file, an organization's admin only its own (another
tenant's is 404); deleting there removes the contents too; nobody adds or edits files there."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from files.models import File, Upload
from files.services import file_create, upload_create
from gateway.context import Caller
from tenants.models import Role, Team
from tests.factories import MembershipFactory, TeamFactory, UserFactory
from tests.files.conftest import blobs

pytestmark = pytest.mark.django_db


def _file(team: Team, name: str) -> File:
    caller = Caller(organization_id=team.organization_id, team_id=team.pk)
    return file_create(caller=caller, chunks=[b"data"], filename=name, purpose="user_data")


def _client(**user: object) -> Client:
    account = UserFactory(**user)
    account.save(update_fields=["password"])
    client = Client()
    client.force_login(account)
    client.user = account  # type: ignore[attr-defined]
    return client


def test_pages_are_scoped_and_read_only(
    files_dir: Path,
    django_capture_on_commit_callbacks,  # type: ignore[no-untyped-def]
) -> None:
    mine, theirs = TeamFactory(), TeamFactory()
    own, other = _file(mine, "mine.txt"), _file(theirs, "theirs.txt")
    upload_create(
        caller=Caller(organization_id=mine.organization_id, team_id=mine.pk),
        filename="u.txt",
        purpose="user_data",
        size=3,
        mime_type="text/plain",
    )
    root = _client(is_superuser=True, is_staff=True)
    changelist = reverse("admin:files_file_changelist")
    page = root.get(changelist)
    assert page.status_code == 200
    assert {f.file_id for f in page.context["cl"].result_list} == {own.file_id, other.file_id}
    assert root.get(reverse("admin:files_file_add")).status_code == 403
    assert root.get(reverse("admin:files_upload_changelist")).status_code == 200
    assert (
        root.get(reverse("admin:files_upload_change", args=[Upload.objects.get().pk])).status_code
        == 200
    )

    admin_user = _client()
    MembershipFactory(user=admin_user.user, organization=mine.organization, role=Role.ORG_ADMIN)  # type: ignore[attr-defined]
    page = admin_user.get(changelist)
    assert [f.file_id for f in page.context["cl"].result_list] == [own.file_id]
    assert admin_user.get(reverse("admin:files_file_change", args=[other.pk])).status_code == 404
    assert admin_user.get(reverse("admin:files_upload_changelist")).status_code == 403
    delete = reverse("admin:files_file_delete", args=[own.pk])
    with django_capture_on_commit_callbacks(execute=True):
        assert admin_user.post(delete, {"post": "yes"}).status_code == 302
    assert list(File.objects.values_list("file_id", flat=True)) == [other.file_id]
    assert [blob.name for blob in blobs(files_dir)] == [other.file_id]
