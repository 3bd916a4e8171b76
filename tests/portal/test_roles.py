"""Each role in the portal can do what it may on /api/v1 and nothing more."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from keys.models import VirtualKey
from keys.services import key_create
from ogem_site.hashing import secret_prefix
from tenants.models import AuditEvent, Organization, Role, Team, User
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


@dataclass
class World:
    org: Organization
    team_a: Team
    team_b: Team
    viewer: User
    member: User
    other_member: User
    team_admin: User
    org_admin: User
    outsider: User
    member_key: VirtualKey
    other_key: VirtualKey


@pytest.fixture
def world() -> World:
    org = OrganizationFactory()
    team_a = TeamFactory(organization=org)
    team_b = TeamFactory(organization=org)

    def person(role: str, team: Team | None = None, organization: Organization = org) -> User:
        return MembershipFactory(organization=organization, team=team, role=role).user

    member = person(Role.MEMBER, team_a)
    other_member = person(Role.MEMBER, team_b)
    return World(
        org=org,
        team_a=team_a,
        team_b=team_b,
        viewer=person(Role.VIEWER),
        member=member,
        other_member=other_member,
        team_admin=person(Role.TEAM_ADMIN, team_a),
        org_admin=person(Role.ORG_ADMIN),
        outsider=person(Role.ORG_ADMIN, organization=OrganizationFactory()),
        member_key=key_create(name="mine", team=team_a, user=member).key,
        other_key=key_create(name="theirs", team=team_b, user=other_member).key,
    )


def _client(user: User) -> Client:
    client = Client()
    # Re-read: the factory's in-memory password differs from the row the session is checked on.
    client.force_login(User.objects.get(pk=user.pk))
    return client


def _form_token(client: Client) -> str:
    return client.get("/keys/").context["form_token"]


def _post(client: Client, url: str, data: dict[str, object] | None = None) -> object:
    return client.post(url, {"form_token": _form_token(client), **(data or {})})


def _listed(client: Client) -> set[str]:
    return {row["key"].name for row in client.get("/keys/").context["rows"]}


def _revoked(key: VirtualKey) -> bool:
    key.refresh_from_db()
    return key.revoked_at is not None


def test_viewer_reads_the_organization_but_changes_nothing(world: World) -> None:
    client = _client(world.viewer)
    page = client.get("/keys/")
    assert page.status_code == 200
    assert _listed(client) == {"mine", "theirs"}
    assert page.context["can_create"] is False
    assert b"Create a key" not in page.content
    assert b"/revoke/" not in page.content
    assert _post(client, "/keys/", {"name": "x", "team": world.team_a.pk}).status_code == 403
    assert _post(client, f"/keys/{world.member_key.pk}/revoke/").status_code == 403
    assert _post(client, f"/keys/{world.member_key.pk}/rotate/").status_code == 403
    assert not _revoked(world.member_key)
    assert VirtualKey.objects.count() == 2


def test_member_manages_only_their_own_keys(world: World) -> None:
    client = _client(world.member)
    assert _listed(client) == {"mine"}
    created = _post(client, "/keys/", {"name": "laptop", "team": world.team_a.pk})
    assert created.status_code == 201
    secret = created.context["issued"].secret
    key = VirtualKey.objects.get(prefix=secret_prefix(secret))
    assert (key.user_id, key.team_id, key.organization_id) == (
        world.member.pk,
        world.team_a.pk,
        world.org.pk,
    )
    assert secret.encode() in created.content
    assert created["Cache-Control"] == "no-store"

    # Another team's key: not offered, not visible.
    refused = _post(client, "/keys/", {"name": "x", "team": world.team_b.pk})
    assert refused.status_code == 400
    assert _post(client, f"/keys/{world.other_key.pk}/revoke/").status_code == 404
    assert not _revoked(world.other_key)

    assert _post(client, f"/keys/{world.member_key.pk}/revoke/").status_code == 302
    assert _revoked(world.member_key)
    event = AuditEvent.objects.get(action="key.revoke", target_id=str(world.member_key.pk))
    assert (event.surface, event.actor, event.organization_id) == (
        "portal",
        f"user:{world.member.pk}",
        world.org.pk,
    )
    assert event.before["revoked_at"] is None
    assert event.after["revoked_at"] is not None


def test_member_rotates_their_key_and_sees_the_new_secret_once(world: World) -> None:
    client = _client(world.member)
    old_prefix = world.member_key.prefix
    rotated = _post(client, f"/keys/{world.member_key.pk}/rotate/")
    assert rotated.status_code == 200
    secret = rotated.context["issued"].secret
    world.member_key.refresh_from_db()
    assert world.member_key.prefix == secret_prefix(secret) != old_prefix
    assert AuditEvent.objects.filter(action="key.rotate", surface="portal").count() == 1


def test_team_admin_manages_their_team_only(world: World) -> None:
    client = _client(world.team_admin)
    assert _listed(client) == {"mine"}
    assert _post(client, f"/keys/{world.other_key.pk}/revoke/").status_code == 404
    assert _post(client, f"/keys/{world.member_key.pk}/revoke/").status_code == 302
    assert _revoked(world.member_key)
    assert not _revoked(world.other_key)


def test_org_admin_manages_every_key_of_the_organization(world: World) -> None:
    client = _client(world.org_admin)
    assert _listed(client) == {"mine", "theirs"}
    assert _post(client, f"/keys/{world.other_key.pk}/revoke/").status_code == 302
    assert _revoked(world.other_key)


def test_another_organization_sees_nothing(world: World) -> None:
    client = _client(world.outsider)
    assert _listed(client) == set()
    assert _post(client, f"/keys/{world.member_key.pk}/revoke/").status_code == 404
    assert client.get("/teams/").context["teams"] == []
    assert not _revoked(world.member_key)


def test_a_resubmitted_form_changes_nothing_twice(world: World) -> None:
    client = _client(world.member)
    token = _form_token(client)
    data = {"form_token": token, "name": "once", "team": world.team_a.pk}
    assert client.post("/keys/", data).status_code == 201
    again = client.post("/keys/", data)
    assert again.status_code == 302
    assert VirtualKey.objects.filter(name="once").count() == 1
    assert client.post("/keys/", {"name": "x", "team": world.team_a.pk}).status_code == 302
    assert not VirtualKey.objects.filter(name="x").exists()


def test_anonymous_cannot_post(world: World) -> None:
    response = Client().post(f"/keys/{world.member_key.pk}/revoke/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not _revoked(world.member_key)


def test_a_user_outside_every_team_has_no_key_form() -> None:
    client = _client(UserFactory())
    page = client.get("/keys/")
    assert page.status_code == 200
    assert page.context["can_create"] is False
