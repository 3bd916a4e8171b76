"""Role x action on keys through /api/v1, as docs/roles.md documents them (issue 14, finding 5).

Organization A has team T with an owner, an org admin, T's admin, a member of T and a viewer of
T, each signed in with a real session (username and password). T's admin issued the member and
the viewer a key each, bounded (one model, a budget, limits, an expiry); T also has a key with no
owner. Every cell runs alone on fresh data and checks the stored key: changed after a 2xx,
untouched otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.models import Budget, BudgetScope
from keys.models import VirtualKey
from keys.services import key_create
from tenants.models import Role, Team, User
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db

ROLES = ["owner", "org_admin", "team_admin", "member", "viewer"]
PASSWORD = "correct horse battery"
LIMITS = {
    "models": ["mock-chat"],
    "rpm_limit": 10,
    "tpm_limit": 1000,
    "expires_at": datetime(2030, 1, 1, tzinfo=UTC),
}

# action → (method, path under the key, body); create has no key.
ACTIONS: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "create": ("post", "", None),
    "rename": ("patch", "", {"name": "renamed"}),
    "update limits": (
        "patch",
        "",
        {"max_budget": None, "rpm_limit": None, "tpm_limit": None, "expires_at": None},
    ),
    "update scope": ("patch", "", {"models": []}),
    "rotate": ("post", "/rotate", {}),
    "revoke": ("post", "/revoke", None),
    "delete": ("delete", "", None),
}


def _row(owner: int, org_admin: int, team_admin: int, member: int, viewer: int) -> list[int]:
    return [owner, org_admin, team_admin, member, viewer]


# (action, key) → the status each role gets, in ROLES order. A member sees only their own keys
# (others are 404); a viewer sees the team's keys and changes none (403).
MATRIX: dict[tuple[str, str], list[int]] = {
    ("create", "-"): _row(201, 201, 201, 201, 403),
    ("rename", "member's key"): _row(200, 200, 200, 200, 403),
    ("update limits", "member's key"): _row(200, 200, 200, 403, 403),
    ("update scope", "member's key"): _row(200, 200, 200, 403, 403),
    ("rotate", "member's key"): _row(200, 200, 200, 200, 403),
    ("revoke", "member's key"): _row(200, 200, 200, 200, 403),
    ("delete", "member's key"): _row(204, 204, 204, 204, 403),
    ("rename", "viewer's key"): _row(200, 200, 200, 404, 403),
    ("update limits", "viewer's key"): _row(200, 200, 200, 404, 403),
    ("update scope", "viewer's key"): _row(200, 200, 200, 404, 403),
    ("rotate", "viewer's key"): _row(200, 200, 200, 404, 403),
    ("revoke", "viewer's key"): _row(200, 200, 200, 404, 403),
    ("delete", "viewer's key"): _row(204, 204, 204, 404, 403),
    ("rename", "team key"): _row(200, 200, 200, 404, 403),
    ("update limits", "team key"): _row(200, 200, 200, 404, 403),
    ("update scope", "team key"): _row(200, 200, 200, 404, 403),
    ("rotate", "team key"): _row(200, 200, 200, 404, 403),
    ("revoke", "team key"): _row(200, 200, 200, 404, 403),
    ("delete", "team key"): _row(204, 204, 204, 404, 403),
}


@dataclass
class World:
    team: Team
    users: dict[str, User]
    keys: dict[str, VirtualKey]


def _user(username: str) -> User:
    user = UserFactory(username=username)
    user.save(update_fields=["password"])  # the factory sets it after its own save
    return user


def _bounded_key(name: str, *, team: Team, user: User | None, issuer: User) -> VirtualKey:
    return key_create(
        name=name, team=team, user=user, created_by=issuer, max_budget=Decimal("1"), **LIMITS
    ).key


@pytest.fixture
def world() -> World:
    organization = OrganizationFactory(name="Org A", slug="org-a")
    team = TeamFactory(organization=organization, name="T", slug="t")
    users = {role: _user(role) for role in ROLES}
    MembershipFactory(user=users["owner"], organization=organization, role=Role.ORG_OWNER)
    MembershipFactory(user=users["org_admin"], organization=organization, role=Role.ORG_ADMIN)
    for role in ("team_admin", "member", "viewer"):
        MembershipFactory(user=users[role], organization=organization, team=team, role=role)
    issuer = users["team_admin"]
    keys = {
        "member's key": _bounded_key("m", team=team, user=users["member"], issuer=issuer),
        "viewer's key": _bounded_key("v", team=team, user=users["viewer"], issuer=issuer),
        "team key": _bounded_key("t", team=team, user=None, issuer=issuer),
    }
    return World(team=team, users=users, keys=keys)


def _signed_in(role: str) -> APIClient:
    client = APIClient()
    assert client.login(username=role, password=PASSWORD)
    return client


def _stored(key_id: int) -> dict[str, Any] | None:
    key = VirtualKey.objects.filter(pk=key_id).values().first()
    if key is None:
        return None
    budget = Budget.objects.filter(scope=BudgetScope.KEY, key_id=key_id).values().first()
    return {**key, "budget": budget}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("action", "target"), [pytest.param(*cell, id=" on ".join(cell)) for cell in MATRIX]
)
def test_key_role_matrix(world: World, action: str, target: str, role: str) -> None:
    expected = MATRIX[(action, target)][ROLES.index(role)]
    method, suffix, body = ACTIONS[action]
    client = _signed_in(role)
    if action == "create":
        before = VirtualKey.objects.count()
        response = client.post("/api/v1/keys", {"name": "new", "team": world.team.pk})
        assert response.status_code == expected, response.content
        assert VirtualKey.objects.count() == before + (expected == 201)
        return
    key = world.keys[target]
    before = _stored(key.pk)
    response = getattr(client, method)(f"/api/v1/keys/{key.pk}{suffix}", body, format="json")
    assert response.status_code == expected, response.content
    after = _stored(key.pk)
    if expected >= 400:
        assert after == before
        return
    assert after is not None or action == "delete"
    if action == "rename":
        assert after["name"] == "renamed"
    elif action == "update limits":
        assert (after["rpm_limit"], after["tpm_limit"], after["expires_at"]) == (None, None, None)
        assert after["budget"]["max_budget"] is None
    elif action == "update scope":
        assert after["allowed_models"] == []
    elif action == "rotate":
        assert after["prefix"] != before["prefix"]
        assert response.json()["key"].startswith(f"sk-{after['prefix']}")
    elif action == "revoke":
        assert after["revoked_at"] is not None
    elif action == "delete":
        assert after is None


def test_member_creates_keys_with_restrictions_but_no_routing_settings(world: World) -> None:
    client = _signed_in("member")
    narrowed = client.post(
        "/api/v1/keys",
        {"name": "mine", "team": world.team.pk, "models": ["mock-chat"], "rpm_limit": 5},
        format="json",
    )
    assert narrowed.status_code == 201, narrowed.content
    assert (narrowed.json()["user"], narrowed.json()["models"]) == (
        world.users["member"].pk,
        ["mock-chat"],
    )
    for extra in ({"metadata": {"priority": 0}}, {"tags": ["premium"]}):
        refused = client.post(
            "/api/v1/keys", {"name": "routed", "team": world.team.pk, **extra}, format="json"
        )
        assert refused.status_code == 403, extra
        assert refused.json() == {"detail": f"Only the team's admins set {next(iter(extra))}."}
    assert not VirtualKey.objects.filter(name="routed").exists()


def test_member_cannot_narrow_or_repeat_as_a_change(world: World) -> None:
    """Limits are the team admin's either way; a PUT repeating them is no change."""
    key = world.keys["member's key"]
    client = _signed_in("member")
    narrowed = client.patch(f"/api/v1/keys/{key.pk}", {"rpm_limit": 1}, format="json")
    assert narrowed.status_code == 403
    assert narrowed.json() == {"detail": "Only the key's team admins change rpm_limit."}
    repeated = client.put(
        f"/api/v1/keys/{key.pk}",
        {"name": "mine now", "models": ["mock-chat"], "rpm_limit": 10, "max_budget": 1},
        format="json",
    )
    assert repeated.status_code == 200, repeated.content
    key.refresh_from_db()
    assert (key.name, key.allowed_models, key.rpm_limit) == ("mine now", ["mock-chat"], 10)


def test_reassigned_key_records_its_issuer_and_does_not_act_as_its_new_owner(
    world: World,
) -> None:
    """A key the master key made (no issuer) that T's admin gives the owner of another
    organization must not let the admin, who holds the secret, act as them on /api/v1."""
    issued = key_create(name="shared", team=world.team)
    elsewhere = OrganizationFactory(name="Org Z", slug="org-z")
    MembershipFactory(user=world.users["member"], organization=elsewhere, role=Role.ORG_OWNER)
    response = _signed_in("team_admin").patch(
        f"/api/v1/keys/{issued.key.pk}", {"user": world.users["member"].pk}, format="json"
    )
    assert response.status_code == 200, response.content
    issued.key.refresh_from_db()
    assert (issued.key.user_id, issued.key.created_by_id) == (
        world.users["member"].pk,
        world.users["team_admin"].pk,
    )
    holder = APIClient()
    holder.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.secret}")
    refused = holder.get(f"/api/v1/organizations/{elsewhere.pk}")
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": "This key was issued to its user by someone else: it serves /v1 only."
    }
