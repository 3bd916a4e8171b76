"""Nobody grants more than they hold."""

from __future__ import annotations

from tenants.models import Membership, Role, User
from tests.api.conftest import World


def test_org_admin_cannot_make_owners_but_owner_can(world: World) -> None:
    payload = {
        "user": world.a.alice.pk,
        "organization": world.a.organization.pk,
        "role": "org_owner",
    }
    refused = world.clients["org_admin"].post("/api/v1/memberships", payload, format="json")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "You cannot grant this role."}
    owner = world.users["org_admin"]
    Membership.objects.filter(user=owner, team=None).update(role=Role.ORG_OWNER)
    accepted = world.clients["org_admin"].post("/api/v1/memberships", payload, format="json")
    assert accepted.status_code == 201
    assert accepted.json()["role"] == "org_owner"


def test_org_admin_cannot_demote_an_owner(world: World) -> None:
    owner = Membership.objects.create(
        user=world.a.alice, organization=world.a.organization, role=Role.ORG_OWNER
    )
    response = world.clients["org_admin"].patch(
        f"/api/v1/memberships/{owner.pk}", {"role": "member"}, format="json"
    )
    assert response.status_code == 403
    owner.refresh_from_db()
    assert owner.role == Role.ORG_OWNER


def test_team_admin_grants_team_roles_in_their_team_only(world: World) -> None:
    client = world.clients["team_admin"]
    promoted = client.patch(
        f"/api/v1/memberships/{world.a.alice_membership.pk}", {"role": "team_admin"}, format="json"
    )
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "team_admin"
    org_role = client.patch(
        f"/api/v1/memberships/{world.a.alice_membership.pk}", {"role": "org_admin"}, format="json"
    )
    assert org_role.status_code == 403
    viewer_membership = Membership.objects.get(user=world.users["viewer"])
    assert (
        client.patch(
            f"/api/v1/memberships/{viewer_membership.pk}", {"role": "member"}, format="json"
        ).status_code
        == 404
    )


def test_nobody_but_proxy_admins_makes_proxy_admins(world: World) -> None:
    created = world.clients["org_admin"].post(
        "/api/v1/users",
        {"username": "sneaky", "organization": world.a.organization.pk, "is_proxy_admin": True},
        format="json",
    )
    assert created.status_code == 403
    assert not User.objects.filter(username="sneaky").exists()
    member = world.users["member"]
    itself = world.clients["member"].patch(
        f"/api/v1/users/{member.pk}", {"is_proxy_admin": True}, format="json"
    )
    assert itself.status_code == 403
    member.refresh_from_db()
    assert not member.is_superuser
    renamed = world.clients["member"].patch(
        f"/api/v1/users/{member.pk}", {"display_name": "Me"}, format="json"
    )
    assert renamed.status_code == 200
    assert renamed.json()["display_name"] == "Me"
    by_master = world.clients["master"].patch(
        f"/api/v1/users/{member.pk}", {"is_proxy_admin": True}, format="json"
    )
    assert by_master.json()["is_proxy_admin"] is True
    member.refresh_from_db()
    assert (member.is_superuser, member.is_staff) == (True, True)


def test_org_admin_creates_users_only_in_their_organization(world: World) -> None:
    client = world.clients["org_admin"]
    nowhere = client.post("/api/v1/users", {"username": "floating"}, format="json")
    assert nowhere.status_code == 403
    created = client.post(
        "/api/v1/users",
        {"username": "hired", "organization": world.a.organization.pk, "password": "pw-long-123"},
        format="json",
    )
    assert created.status_code == 201
    assert "password" not in created.json()
    hired = User.objects.get(username="hired")
    assert hired.check_password("pw-long-123")
    assert Membership.objects.get(user=hired).organization == world.a.organization


def test_only_proxy_admins_change_an_organization_slug(world: World) -> None:
    organization = world.a.organization
    path = f"/api/v1/organizations/{organization.pk}"
    refused = world.clients["org_admin"].patch(path, {"slug": "renamed"}, format="json")
    assert refused.status_code == 400
    assert refused.json() == {"slug": ["Only proxy admins change an organization's slug."]}
    organization.refresh_from_db()
    assert organization.slug == "org-a"
    # The rest of the organization stays theirs to edit, the unchanged slug included.
    renamed = world.clients["org_admin"].patch(
        path, {"name": "Org A2", "slug": "org-a"}, format="json"
    )
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["slug"]) == ("Org A2", "org-a")
    by_master = world.clients["master"].patch(path, {"slug": "renamed"}, format="json")
    assert by_master.status_code == 200
    assert by_master.json()["slug"] == "renamed"
    organization.refresh_from_db()
    assert organization.slug == "renamed"
