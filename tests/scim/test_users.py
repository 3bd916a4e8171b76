from __future__ import annotations

from typing import Any

import pytest

from keys.selectors import key_authenticate
from keys.services import key_create
from tenants.models import Membership, Role, ScimUser, User
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.scim.conftest import BASE, ScimClient, make_scim_client, patch_body

pytestmark = pytest.mark.django_db

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

ALICE = {
    "schemas": [USER],
    "externalId": "00u1",
    "userName": "alice@acme.io",
    "name": {"givenName": "Alice", "familyName": "Liddell"},
    "displayName": "Alice L.",
    "emails": [{"value": "alice@acme.io", "type": "work", "primary": True}],
    "active": True,
}


def _without_meta(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k != "meta"}


def _create(scim: ScimClient, **changes: Any) -> dict[str, Any]:
    response = scim.post("Users", {**ALICE, **changes})
    assert response.status == 201, response.body
    return response.body


def test_create_user(scim: ScimClient) -> None:
    response = scim.post("Users", ALICE)

    assert response.status == 201
    assert response.content_type == "application/scim+json"
    user = User.objects.get(username="alice@acme.io")
    assert response.headers["Location"] == f"{BASE}Users/{user.pk}"
    assert _without_meta(response.body) == {
        "schemas": [USER],
        "id": str(user.pk),
        "externalId": "00u1",
        "userName": "alice@acme.io",
        "name": {"givenName": "Alice", "familyName": "Liddell"},
        "displayName": "Alice L.",
        "emails": [{"value": "alice@acme.io", "type": "work", "primary": True}],
        "active": True,
    }
    state = ScimUser.objects.get(user=user, organization=scim.organization)
    assert response.body["meta"] == {
        "resourceType": "User",
        "created": state.created_at.isoformat().replace("+00:00", "Z"),
        "lastModified": state.updated_at.isoformat().replace("+00:00", "Z"),
        "location": f"{BASE}Users/{user.pk}",
    }
    assert (user.first_name, user.last_name, user.email) == ("Alice", "Liddell", "alice@acme.io")
    assert user.has_usable_password() is False
    assert list(
        Membership.objects.filter(user=user).values_list("organization", "team", "role")
    ) == [(scim.organization.pk, None, Role.MEMBER)]


def test_create_duplicate_username_is_a_conflict(scim: ScimClient) -> None:
    _create(scim)
    response = scim.post("Users", {**ALICE, "userName": "ALICE@acme.io"})
    assert response.status == 409
    assert response.body == {
        "schemas": [ERROR],
        "status": "409",
        "scimType": "uniqueness",
        "detail": "userName 'ALICE@acme.io' already exists",
    }


def test_create_without_username_is_invalid(scim: ScimClient) -> None:
    response = scim.post("Users", {"schemas": [USER], "displayName": "x"})
    assert response.status == 400
    assert response.body == {
        "schemas": [ERROR],
        "status": "400",
        "scimType": "invalidValue",
        "detail": "userName is required",
    }


def test_malformed_json_is_invalid_syntax(scim: ScimClient) -> None:
    response = scim.client.post(
        "/scim/v2/Users",
        data="{not json",
        content_type="application/scim+json",
        HTTP_AUTHORIZATION=f"Bearer {scim.secret}",
    )
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidSyntax"


def test_get_user_and_attribute_projection(scim: ScimClient) -> None:
    created = _create(scim)
    user_id = created["id"]

    assert scim.get(f"Users/{user_id}").body == created
    only = scim.get(f"Users/{user_id}?attributes=userName,name.givenName").body
    assert only == {
        "schemas": [USER],
        "id": user_id,
        "userName": "alice@acme.io",
        "name": {"givenName": "Alice"},
    }
    without = scim.get(f"Users/{user_id}?excludedAttributes=emails,name,meta").body
    assert without == {
        "schemas": [USER],
        "id": user_id,
        "externalId": "00u1",
        "userName": "alice@acme.io",
        "displayName": "Alice L.",
        "active": True,
    }


def test_unknown_user_is_404(scim: ScimClient) -> None:
    for user_id in ("999999", "not-a-number"):
        response = scim.get(f"Users/{user_id}")
        assert response.status == 404
        assert response.body == {
            "schemas": [ERROR],
            "status": "404",
            "detail": f"User {user_id} not found",
        }


def test_list_filter_and_pagination(scim: ScimClient) -> None:
    ids = [
        _create(scim, userName=f"user{n}@acme.io", externalId=f"x{n}", emails=[])["id"]
        for n in range(5)
    ]

    page = scim.get("Users?startIndex=2&count=2").body
    assert page["schemas"] == [LIST]
    assert (page["totalResults"], page["itemsPerPage"], page["startIndex"]) == (5, 2, 2)
    assert [r["id"] for r in page["Resources"]] == ids[1:3]

    found = scim.get('Users?filter=userName eq "USER3@acme.io"').body
    assert found["totalResults"] == 1
    assert found["Resources"][0]["id"] == ids[3]

    compound = scim.get(
        'Users?filter=(externalId eq "x1" or externalId eq "x4") and userName sw "user"'
    ).body
    assert [r["id"] for r in compound["Resources"]] == [ids[1], ids[4]]

    assert scim.get('Users?filter=externalId eq "X1"').body["totalResults"] == 0  # case-exact
    assert scim.get("Users?filter=displayName pr").body["totalResults"] == 5
    assert scim.get('Users?filter=userName co "ser2"').body["totalResults"] == 1
    assert scim.get("Users?count=0").body == {
        "schemas": [LIST],
        "totalResults": 5,
        "itemsPerPage": 0,
        "startIndex": 1,
        "Resources": [],
    }


def test_filter_on_email_value_path(scim: ScimClient) -> None:
    alice = _create(scim)
    _create(
        scim,
        userName="bob@acme.io",
        emails=[
            {"value": "bob@home.example", "type": "home"},
            {"value": "bob@acme.io", "type": "work", "primary": True},
        ],
    )
    work = scim.get('Users?filter=emails[type eq "work" and value co "alice"]').body
    assert [r["id"] for r in work["Resources"]] == [alice["id"]]
    home = scim.get('Users?filter=emails.value eq "bob@home.example"').body
    assert [r["userName"] for r in home["Resources"]] == ["bob@acme.io"]


def test_invalid_filter_is_400(scim: ScimClient) -> None:
    response = scim.get('Users?filter=userName zz "x"')
    assert response.status == 400
    assert response.body == {
        "schemas": [ERROR],
        "status": "400",
        "scimType": "invalidFilter",
        "detail": "unknown operator 'zz'",
    }


def test_search_endpoint(scim: ScimClient) -> None:
    alice = _create(scim)
    response = scim.post(
        "Users/.search",
        {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": 'userName eq "alice@acme.io"',
            "attributes": ["userName"],
        },
    )
    assert response.status == 200
    assert response.body["Resources"] == [
        {"schemas": [USER], "id": alice["id"], "userName": "alice@acme.io"}
    ]


def test_put_replaces_user(scim: ScimClient) -> None:
    user_id = _create(scim)["id"]
    response = scim.put(
        f"Users/{user_id}",
        {"schemas": [USER], "userName": "alice2@acme.io", "name": {"familyName": "Pleasance"}},
    )
    assert response.status == 200
    assert _without_meta(response.body) == {
        "schemas": [USER],
        "id": user_id,
        "userName": "alice2@acme.io",
        "name": {"familyName": "Pleasance"},
        "active": True,  # a PUT without `active` keeps the current state
    }
    user = User.objects.get(pk=user_id)
    assert (user.username, user.first_name, user.email) == ("alice2@acme.io", "", "")


def test_patch_operations(scim: ScimClient) -> None:
    user_id = _create(scim)["id"]

    response = scim.patch(
        f"Users/{user_id}",
        patch_body(
            {"op": "replace", "path": "name.givenName", "value": "Alicia"},
            {"op": "add", "path": "emails", "value": [{"value": "a@home.example", "type": "home"}]},
            {"op": "Replace", "value": {"displayName": "A.", "externalId": "00u9"}},
            {"op": "replace", "path": 'emails[type eq "work"].value', "value": "al@acme.io"},
            {"op": "remove", "path": 'emails[type eq "home"]'},
        ),
    )

    assert response.status == 200, response.body
    assert _without_meta(response.body) == {
        "schemas": [USER],
        "id": user_id,
        "externalId": "00u9",
        "userName": "alice@acme.io",
        "name": {"givenName": "Alicia", "familyName": "Liddell"},
        "displayName": "A.",
        "emails": [{"value": "al@acme.io", "type": "work", "primary": True}],
        "active": True,
    }
    assert User.objects.get(pk=user_id).email == "al@acme.io"


def test_patch_errors(scim: ScimClient) -> None:
    user_id = _create(scim)["id"]
    cases = [
        (patch_body({"op": "remove"}), "noTarget", "remove needs a path"),
        (patch_body({"op": "move", "path": "x"}), "invalidSyntax", "unknown op 'move'"),
        (
            patch_body({"op": "replace", "path": "groups", "value": []}),
            "mutability",
            "groups is read-only",
        ),
        (
            patch_body({"op": "replace", "path": 'emails[type eq "other"]', "value": {}}),
            "noTarget",
            "no value matches the path filter",
        ),
        ({"Operations": "nope"}, "invalidSyntax", "Operations must be a non-empty list"),
    ]
    for body, scim_type, detail in cases:
        response = scim.patch(f"Users/{user_id}", body)
        assert response.status == 400
        assert (response.body["scimType"], response.body["detail"]) == (scim_type, detail)


def test_delete_user_removes_membership_and_revokes_keys(scim: ScimClient) -> None:
    user_id = _create(scim)["id"]
    user = User.objects.get(pk=user_id)
    issued = key_create(name="laptop", organization=scim.organization, user=user)

    response = scim.delete(f"Users/{user_id}")

    assert (response.status, response.body) == (204, None)
    assert scim.get(f"Users/{user_id}").status == 404
    assert not Membership.objects.filter(user=user).exists()
    assert key_authenticate(secret=issued.secret) is None
    user.refresh_from_db()
    assert user.is_active is False  # kept for history, but can no longer sign in


def test_deactivation_revokes_keys_and_suspends_memberships(scim: ScimClient) -> None:
    user_id = _create(scim)["id"]
    user = User.objects.get(pk=user_id)
    team = TeamFactory(organization=scim.organization)
    MembershipFactory(user=user, organization=scim.organization, team=team, role=Role.TEAM_ADMIN)
    org_key = key_create(name="a", organization=scim.organization, user=user)
    team_key = key_create(name="b", team=team, user=user)
    elsewhere = key_create(name="c", organization=OrganizationFactory(), user=user)
    assert key_authenticate(secret=org_key.secret) is not None

    response = scim.patch(
        f"Users/{user_id}", patch_body({"op": "replace", "value": {"active": "False"}})
    )

    assert response.status == 200
    assert response.body["active"] is False
    assert key_authenticate(secret=org_key.secret) is None
    assert key_authenticate(secret=team_key.secret) is None
    assert key_authenticate(secret=elsewhere.secret) is not None  # another org's key is untouched
    assert not Membership.objects.filter(user=user, organization=scim.organization).exists()
    # Still visible to the IdP, as inactive.
    assert scim.get(f"Users/{user_id}").body["active"] is False

    reactivated = scim.patch(
        f"Users/{user_id}", patch_body({"op": "replace", "path": "active", "value": True})
    )
    assert reactivated.body["active"] is True
    assert set(
        Membership.objects.filter(user=user).values_list("organization", "team", "role")
    ) == {
        (scim.organization.pk, None, Role.MEMBER),
        (scim.organization.pk, team.pk, Role.TEAM_ADMIN),
    }
    assert key_authenticate(secret=org_key.secret) is None  # revoked keys stay revoked


def test_existing_member_is_visible_and_shared_profile_is_protected(scim: ScimClient) -> None:
    shared = UserFactory(username="carol", first_name="Carol", email="carol@acme.io")
    MembershipFactory(user=shared, organization=scim.organization)
    MembershipFactory(user=shared, organization=OrganizationFactory())

    listing = scim.get('Users?filter=userName eq "carol"').body
    assert listing["Resources"][0]["emails"] == [{"value": "carol@acme.io", "primary": True}]
    response = scim.put(
        f"Users/{shared.pk}",
        {"schemas": [USER], "userName": "mallory", "emails": [{"value": "m@evil.example"}]},
    )

    assert response.status == 200
    shared.refresh_from_db()
    # Another organization's IdP cannot take over the shared account's name or address.
    assert (shared.username, shared.email, shared.first_name) == ("carol", "carol@acme.io", "Carol")
    assert response.body["emails"] == [{"value": "m@evil.example"}]


def test_tenant_isolation(scim: ScimClient) -> None:
    theirs = make_scim_client()
    their_user = theirs.post("Users", ALICE).body
    their_group = theirs.post(
        "Groups",
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Ops",
            "members": [{"value": their_user["id"]}],
        },
    ).body

    for path in (f"Users/{their_user['id']}", f"Groups/{their_group['id']}"):
        assert scim.get(path).status == 404
        assert scim.put(path, {"userName": "x", "displayName": "x"}).status == 404
        assert scim.patch(path, patch_body({"op": "replace", "value": {}})).status == 404
        assert scim.delete(path).status == 404
    assert scim.get("Users").body["totalResults"] == 0
    assert scim.get("Groups").body["totalResults"] == 0
    # Our group cannot take in their user either.
    response = scim.post(
        "Groups",
        {"displayName": "Mine", "members": [{"value": their_user["id"]}]},
    )
    assert response.status == 400
    assert response.body["detail"] == f"no such users in this organization: {their_user['id']}"
    assert theirs.get(f"Users/{their_user['id']}").status == 200


def test_authentication_is_required(scim: ScimClient) -> None:
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer scim-wrong"}):
        response = scim.client.get("/scim/v2/Users", **header)
        assert response.status_code == 401
        assert response["Content-Type"] == "application/scim+json"
        assert response.json()["schemas"] == [ERROR]
        assert response.json()["status"] == "401"

    from tenants.scim.services import scim_token_revoke

    scim_token_revoke(token=scim.token)
    assert scim.get("Users").status == 401


def test_create_links_an_account_no_organization_holds(scim: ScimClient) -> None:
    # e.g. someone who signed in through the instance's SSO and was not placed yet.
    existing = UserFactory(username="erin@acme.io", first_name="Erin", email="erin@acme.io")

    response = scim.post("Users", {**ALICE, "userName": "Erin@Acme.io", "externalId": "00u7"})

    assert response.status == 201
    assert response.body["id"] == str(existing.pk)
    assert response.body["externalId"] == "00u7"
    existing.refresh_from_db()
    assert (existing.username, existing.first_name) == ("Erin@Acme.io", "Alice")
    assert list(Membership.objects.filter(user=existing).values_list("organization", "role")) == [
        (scim.organization.pk, Role.MEMBER)
    ]
