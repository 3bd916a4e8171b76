"""One organization's SCIM token never reaches another organization's people: a userName names an
account, it does not prove who holds it (finding 8 of issue 14)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from keys.services import key_create
from tenants.models import Membership, Role, ScimUser, User
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.scim.conftest import ScimClient, make_scim_client, patch_body

pytestmark = pytest.mark.django_db

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"


@pytest.fixture
def b_owner() -> User:
    owner = UserFactory(
        username="b_owner", first_name="Bea", last_name="Owner", email="bea@b.example"
    )
    MembershipFactory(user=owner, organization=OrganizationFactory(slug="org-b"), role="org_owner")
    return owner


def _taken(username: str) -> dict[str, str]:
    return {
        "schemas": [ERROR],
        "status": "409",
        "scimType": "uniqueness",
        "detail": f"userName {username!r} is taken",
    }


def _untouched(owner: User) -> None:
    owner.refresh_from_db()
    assert (owner.username, owner.email, owner.first_name, owner.is_active) == (
        "b_owner",
        "bea@b.example",
        "Bea",
        True,
    )
    assert list(
        Membership.objects.filter(user=owner).values_list("organization__slug", "team", "role")
    ) == [("org-b", None, Role.ORG_OWNER)]
    assert not ScimUser.objects.filter(user=owner).exists()


def test_create_with_another_organizations_username_is_a_conflict(
    scim: ScimClient, b_owner: User
) -> None:
    response = scim.post(
        "Users",
        {"schemas": [USER], "userName": "b_owner", "emails": [{"value": "a@a.example"}]},
    )
    assert (response.status, response.body) == (409, _taken("b_owner"))
    again = scim.post("Users", {"schemas": [USER], "userName": "B_OWNER"})
    assert (again.status, again.body) == (409, _taken("B_OWNER"))
    _untouched(b_owner)
    # Nothing of B's owner is visible to A: not by filter, not by id, not in the listing.
    found = scim.get('Users?filter=userName eq "b_owner"').body
    assert (found["totalResults"], found.get("Resources", [])) == (0, [])
    assert scim.get(f"Users/{b_owner.pk}").status == 404
    assert scim.get("Users").body["totalResults"] == 0
    # Nor to A's organization admin on the management API.
    a_admin = UserFactory(username="a_admin")
    MembershipFactory(user=a_admin, organization=scim.organization, role=Role.ORG_ADMIN)
    api = APIClient()
    secret = key_create(name="a", organization=scim.organization, user=a_admin).secret
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get(f"/api/v1/users/{b_owner.pk}").status_code == 404


def test_an_operator_held_account_is_not_linked(scim: ScimClient) -> None:
    UserFactory(username="root", is_superuser=True, is_staff=True)
    response = scim.post("Users", {"schemas": [USER], "userName": "root"})
    assert (response.status, response.body) == (409, _taken("root"))
    assert not ScimUser.objects.filter(user__username="root").exists()


def test_renaming_an_own_user_onto_another_organizations_user_is_a_conflict(
    scim: ScimClient, b_owner: User
) -> None:
    own = scim.post("Users", {"schemas": [USER], "userName": "a_user"}).body
    put = scim.put(f"Users/{own['id']}", {"schemas": [USER], "userName": "b_owner"})
    assert (put.status, put.body) == (409, _taken("b_owner"))
    patched = scim.patch(
        f"Users/{own['id']}", patch_body({"op": "replace", "path": "userName", "value": "b_owner"})
    )
    assert (patched.status, patched.body) == (409, _taken("b_owner"))
    # Another account's address on an own user is this organization's record only: no link.
    emails = scim.patch(
        f"Users/{own['id']}",
        patch_body({"op": "replace", "path": "emails", "value": [{"value": "bea@b.example"}]}),
    )
    assert emails.status == 200
    assert emails.body["userName"] == "a_user"
    _untouched(b_owner)
    assert scim.get("Users").body["totalResults"] == 1


def test_a_group_cannot_take_in_another_organizations_user(scim: ScimClient, b_owner: User) -> None:
    group = scim.post("Groups", {"schemas": [GROUP], "displayName": "Ops"}).body
    added = scim.patch(
        f"Groups/{group['id']}",
        patch_body({"op": "add", "path": "members", "value": [{"value": str(b_owner.pk)}]}),
    )
    assert added.status == 400
    assert added.body["detail"] == f"no such users in this organization: {b_owner.pk}"
    _untouched(b_owner)


def test_their_own_idp_still_manages_them(b_owner: User) -> None:
    """B's SCIM token sees B's owner (a member there) and provisions them as usual."""
    theirs = make_scim_client(organization=b_owner.memberships.get().organization)
    found = theirs.get('Users?filter=userName eq "b_owner"').body
    assert [resource["id"] for resource in found["Resources"]] == [str(b_owner.pk)]
