"""Keys beyond CRUD: the contract's fields, secrets shown once, owners, revoke and rotate."""

from __future__ import annotations

from decimal import Decimal

from billing.models import Budget, BudgetScope
from keys.models import VirtualKey
from keys.selectors import key_authenticate
from tests.api.conftest import World, bearer_client


def test_create_with_every_contract_field_returns_the_secret_once(world: World) -> None:
    response = world.clients["master"].post(
        "/api/v1/keys",
        {
            "name": "batch jobs",
            "team": world.a.team.pk,
            "models": ["mock-chat", "mock-embed"],
            "max_budget": 12.5,
            "budget_duration": "7d",
            "rpm_limit": 60,
            "tpm_limit": 10000,
            "expires_at": "2030-01-01T00:00:00Z",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["key"]
    key = VirtualKey.objects.get(pk=body["id"])
    assert key_authenticate(secret=secret) == key
    assert key.organization_id == world.a.organization.pk
    assert key.allowed_models == ["mock-chat", "mock-embed"]
    assert (key.rpm_limit, key.tpm_limit) == (60, 10000)
    assert key.expires_at.isoformat() == "2030-01-01T00:00:00+00:00"
    budget = Budget.objects.get(scope=BudgetScope.KEY, key=key)
    assert (budget.max_budget, budget.duration) == (Decimal("12.5"), "7d")
    assert body["key_prefix"] == f"sk-{key.prefix}…"
    assert (body["max_budget"], body["budget_duration"], body["spend"]) == (
        "12.50000000",
        "7d",
        "0.00000000",
    )
    # Never again: neither retrieve nor list shows the secret.
    again = world.clients["master"].get(f"/api/v1/keys/{key.pk}")
    assert "key" not in again.json()
    assert secret not in again.content.decode()
    assert secret not in world.clients["master"].get("/api/v1/keys").content.decode()


def test_budget_duration_null_and_invalid_values(world: World) -> None:
    client = world.clients["master"]
    ok = client.post(
        "/api/v1/keys",
        {"name": "n", "max_budget": 1, "budget_duration": None, "team": world.a.team.pk},
        format="json",
    )
    assert ok.status_code == 201
    assert ok.json()["budget_duration"] is None
    bad = client.post(
        "/api/v1/keys",
        {"name": "n", "budget_duration": "2d", "team": world.a.team.pk},
        format="json",
    )
    assert bad.status_code == 400
    assert "budget_duration" in bad.json()
    for payload in ({"name": "n", "team": "not a slug"}, {"name": "n", "rpm_limit": -1}, {}):
        assert client.post("/api/v1/keys", payload, format="json").status_code == 400


def test_member_creates_keys_for_themselves_only(world: World) -> None:
    member = world.users["member"]
    client = world.clients["member"]
    response = client.post("/api/v1/keys", {"name": "mine", "team": world.a.team.pk}, format="json")
    assert response.status_code == 201
    assert response.json()["user"] == member.pk
    assert response.json()["created_by"] == member.pk
    listed = {row["id"] for row in client.get("/api/v1/keys").json()["results"]}
    assert response.json()["id"] in listed
    assert world.a.team_key.pk not in listed
    for_alice = client.post(
        "/api/v1/keys",
        {"name": "hers", "team": world.a.team.pk, "user": world.a.alice.pk},
        format="json",
    )
    # Alice is not visible to a plain member, so naming her is a 404 like any unseen object.
    assert for_alice.status_code == 404
    other_team = client.post(
        "/api/v1/keys", {"name": "x", "team": world.a.other_team.pk}, format="json"
    )
    assert other_team.status_code == 404


def test_team_admin_assigns_keys_to_team_members(world: World) -> None:
    response = world.clients["team_admin"].post(
        "/api/v1/keys",
        {"name": "for alice", "team": world.a.team.pk, "user": world.a.alice.pk},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["user"] == world.a.alice.pk
    assert (
        world.clients["team_admin"]
        .post("/api/v1/keys", {"name": "x", "organization": world.a.organization.pk}, format="json")
        .status_code
        == 403
    )


def test_org_admin_cannot_touch_or_create_keys_in_other_tenant(world: World) -> None:
    client = world.clients["org_admin"]
    foreign = world.b.team_key
    for action in ("revoke", "rotate"):
        assert client.post(f"/api/v1/keys/{foreign.pk}/{action}").status_code == 404
    for payload in (
        {"name": "x", "team": world.b.team.pk},
        {"name": "x", "organization": world.b.organization.pk},
        {"name": "x", "team": world.a.team.pk, "organization": world.b.organization.pk},
        {"name": "x", "team": world.a.team.pk, "user": world.b.alice.pk},
    ):
        assert client.post("/api/v1/keys", payload, format="json").status_code == 404, payload
    assert not VirtualKey.objects.filter(name="x").exists()
    foreign.refresh_from_db()
    assert foreign.revoked_at is None


def test_revoke_refuses_the_key_everywhere_it_authenticates(world: World) -> None:
    issued_response = world.clients["org_admin"].post(
        "/api/v1/keys",
        {
            "name": "admin key",
            "organization": world.a.organization.pk,
            "user": world.users["org_admin"].pk,
        },
        format="json",
    )
    assert issued_response.status_code == 201
    secret = issued_response.json()["key"]
    own = bearer_client(secret)
    assert own.get("/api/v1/organizations").status_code == 200
    response = world.clients["org_admin"].post(
        f"/api/v1/keys/{issued_response.json()['id']}/revoke"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert key_authenticate(secret=secret) is None
    refused = own.get("/api/v1/organizations")
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Invalid, revoked or expired key."}
    active = world.clients["org_admin"].get("/api/v1/keys", {"status": "active"}).json()
    assert issued_response.json()["id"] not in {row["id"] for row in active["results"]}
    revoked = world.clients["org_admin"].get("/api/v1/keys", {"status": "revoked"}).json()
    assert [row["id"] for row in revoked["results"]] == [issued_response.json()["id"]]


def test_rotate_issues_a_new_secret_with_optional_grace(world: World) -> None:
    client = world.clients["team_admin"]
    created = client.post("/api/v1/keys", {"name": "r", "team": world.a.team.pk}, format="json")
    old_secret = created.json()["key"]
    pk = created.json()["id"]

    graced = client.post(f"/api/v1/keys/{pk}/rotate", {"grace_period_seconds": 3600}, format="json")
    assert graced.status_code == 200
    new_secret = graced.json()["key"]
    assert new_secret != old_secret
    assert key_authenticate(secret=new_secret).pk == pk
    assert key_authenticate(secret=old_secret).pk == pk

    immediate = client.post(f"/api/v1/keys/{pk}/rotate", format="json")
    newest = immediate.json()["key"]
    assert key_authenticate(secret=newest).pk == pk
    assert key_authenticate(secret=new_secret) is None
    assert key_authenticate(secret=old_secret) is None

    bad = client.post(f"/api/v1/keys/{pk}/rotate", {"grace_period_seconds": -5}, format="json")
    assert bad.status_code == 400


def test_viewer_cannot_revoke_or_rotate(world: World) -> None:
    pk = world.a.team_key.pk
    for action in ("revoke", "rotate"):
        assert world.clients["viewer"].post(f"/api/v1/keys/{pk}/{action}").status_code == 403
    world.a.team_key.refresh_from_db()
    assert world.a.team_key.revoked_at is None


def test_update_sets_the_key_budget(world: World) -> None:
    pk = world.a.team_key.pk
    response = world.clients["team_admin"].patch(
        f"/api/v1/keys/{pk}",
        {"max_budget": 3, "budget_duration": "1d", "models": ["mock-chat"]},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["max_budget"], body["budget_duration"], body["models"]) == (
        "3.00000000",
        "1d",
        ["mock-chat"],
    )
    budget = Budget.objects.get(scope=BudgetScope.KEY, key_id=pk)
    assert (budget.max_budget, budget.duration) == (Decimal("3"), "1d")
    # Moving a key to another tenant's team is not an update: the team is fixed.
    moved = world.clients["master"].patch(
        f"/api/v1/keys/{pk}", {"team": world.b.team.pk}, format="json"
    )
    assert moved.status_code == 200
    assert moved.json()["team"] == world.a.team.pk


def test_filters_and_pagination(world: World) -> None:
    client = world.clients["master"]
    by_team = client.get("/api/v1/keys", {"team": world.b.team.pk}).json()
    assert [row["id"] for row in by_team["results"]] == [world.b.team_key.pk]
    page = client.get("/api/v1/keys", {"limit": 2, "offset": 0}).json()
    total = VirtualKey.objects.count()
    assert page["count"] == total
    assert len(page["results"]) == 2
    assert page["next"] is not None
    assert client.get("/api/v1/keys", {"team": "abc"}).status_code == 400
    searched = client.get("/api/v1/keys", {"search": "ci-b"}).json()
    assert [row["id"] for row in searched["results"]] == [world.b.team_key.pk]
