from __future__ import annotations

from typing import Any

import pytest

from keys.selectors import key_authenticate
from keys.services import key_create
from tenants.models import Membership, Role, Team
from tests.factories import MembershipFactory
from tests.scim.conftest import BASE, ScimClient, patch_body

pytestmark = pytest.mark.django_db

GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def _user(scim: ScimClient, name: str) -> str:
    response = scim.post("Users", {"schemas": [USER], "userName": name})
    assert response.status == 201
    return response.body["id"]


def _member(user_id: str) -> dict[str, Any]:
    return {"value": user_id, "$ref": f"{BASE}Users/{user_id}", "type": "User"}


def _team_members(team_id: str) -> set[int]:
    return set(Membership.objects.filter(team_id=team_id).values_list("user_id", flat=True))


def test_create_group_with_members(scim: ScimClient) -> None:
    alice, bob = _user(scim, "alice"), _user(scim, "bob")

    response = scim.post(
        "Groups",
        {
            "schemas": [GROUP],
            "displayName": "ML Platform",
            "externalId": "g-1",
            "members": [{"value": alice}, {"value": bob}],
        },
    )

    assert response.status == 201
    team = Team.objects.get(pk=response.body["id"])
    assert (team.organization, team.name, team.slug, team.external_id) == (
        scim.organization,
        "ML Platform",
        "ml-platform",
        "g-1",
    )
    assert {k: v for k, v in response.body.items() if k != "meta"} == {
        "schemas": [GROUP],
        "id": str(team.pk),
        "externalId": "g-1",
        "displayName": "ML Platform",
        "members": [_member(alice), _member(bob)],
    }
    assert response.body["meta"]["resourceType"] == "Group"
    assert response.body["meta"]["location"] == f"{BASE}Groups/{team.pk}"
    assert set(
        Membership.objects.filter(team=team).values_list("user_id", "organization", "role")
    ) == {
        (int(alice), scim.organization.pk, Role.MEMBER),
        (int(bob), scim.organization.pk, Role.MEMBER),
    }
    # The user resource lists the group it now belongs to.
    assert scim.get(f"Users/{alice}").body["groups"] == [
        {"value": str(team.pk), "$ref": f"{BASE}Groups/{team.pk}", "display": "ML Platform"}
    ]

    duplicate = scim.post("Groups", {"schemas": [GROUP], "displayName": "ML Platform"})
    assert Team.objects.get(pk=duplicate.body["id"]).slug == "ml-platform-2"


def test_patch_group_membership(scim: ScimClient) -> None:
    alice, bob, carol = _user(scim, "alice"), _user(scim, "bob"), _user(scim, "carol")
    group_id = scim.post("Groups", {"displayName": "Ops", "members": [{"value": alice}]}).body["id"]

    added = scim.patch(
        f"Groups/{group_id}",
        patch_body({"op": "add", "path": "members", "value": [{"value": bob}, {"value": carol}]}),
    )
    assert added.status == 200
    assert added.body["members"] == [_member(alice), _member(bob), _member(carol)]

    removed = scim.patch(
        f"Groups/{group_id}",
        patch_body({"op": "remove", "path": f'members[value eq "{bob}"]'}),
    )
    assert removed.body["members"] == [_member(alice), _member(carol)]
    assert _team_members(group_id) == {int(alice), int(carol)}

    # Azure AD removes by value list, and renames without a path.
    azure = scim.patch(
        f"Groups/{group_id}",
        patch_body(
            {"op": "Remove", "path": "members", "value": [{"value": alice}]},
            {"op": "Replace", "value": {"displayName": "Operations"}},
        ),
    )
    assert azure.body["displayName"] == "Operations"
    assert azure.body["members"] == [_member(carol)]

    replaced = scim.patch(
        f"Groups/{group_id}",
        patch_body({"op": "replace", "path": "members", "value": [{"value": bob}]}),
    )
    assert replaced.body["members"] == [_member(bob)]

    emptied = scim.patch(f"Groups/{group_id}", patch_body({"op": "remove", "path": "members"}))
    assert "members" not in emptied.body
    assert _team_members(group_id) == set()


def test_existing_team_admin_keeps_role_when_group_is_replaced(scim: ScimClient) -> None:
    alice = _user(scim, "alice")
    group_id = scim.post("Groups", {"displayName": "Ops"}).body["id"]
    MembershipFactory(
        user_id=alice, organization=scim.organization, team_id=group_id, role=Role.TEAM_ADMIN
    )

    response = scim.put(f"Groups/{group_id}", {"displayName": "Ops", "members": [{"value": alice}]})

    assert response.status == 200
    assert Membership.objects.get(team_id=group_id).role == Role.TEAM_ADMIN


def test_group_membership_of_deactivated_user_waits(scim: ScimClient) -> None:
    alice = _user(scim, "alice")
    scim.patch(f"Users/{alice}", patch_body({"op": "replace", "path": "active", "value": False}))
    group_id = scim.post("Groups", {"displayName": "Ops", "members": [{"value": alice}]}).body["id"]

    assert _team_members(group_id) == set()
    scim.patch(f"Users/{alice}", patch_body({"op": "replace", "path": "active", "value": True}))
    assert _team_members(group_id) == {int(alice)}


def test_list_filter_and_delete_group(scim: ScimClient) -> None:
    ops = scim.post("Groups", {"displayName": "Ops", "externalId": "e1"}).body["id"]
    scim.post("Groups", {"displayName": "Research"})

    found = scim.get('Groups?filter=displayName eq "ops"').body
    assert [r["id"] for r in found["Resources"]] == [ops]
    assert scim.get('Groups?filter=externalId eq "e1"&attributes=displayName').body[
        "Resources"
    ] == [{"schemas": [GROUP], "id": ops, "displayName": "Ops"}]

    issued = key_create(name="ci", team=Team.objects.get(pk=ops))
    assert scim.delete(f"Groups/{ops}").status == 204
    assert scim.get(f"Groups/{ops}").status == 404
    assert not Team.objects.filter(pk=ops).exists()
    assert key_authenticate(secret=issued.secret) is None
    assert scim.get("Groups").body["totalResults"] == 1


def test_root_search_spans_users_and_groups(scim: ScimClient) -> None:
    alice = _user(scim, "ops-alice")
    ops = scim.post("Groups", {"displayName": "Ops"}).body["id"]
    response = scim.post(
        ".search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "attributes": ["id"],
        },
    )
    assert response.status == 200
    assert response.body["totalResults"] == 2
    assert response.body["Resources"] == [
        {"schemas": [USER], "id": alice},
        {"schemas": [GROUP], "id": ops},
    ]
