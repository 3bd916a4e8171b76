"""IdP JWTs on /api/v1 (issue 14, finding 14): they authenticate, and their principal, which has
no user row, sees its own organization only, never the unowned rows of every tenant.

Tenants A and B come from tests/api/conftest.py; each has a team key without an owner, with a
key budget and spend. The tokens are signed by the local IdP of tests/oidc/conftest.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from billing.models import Budget, BudgetScope, RequestLog
from billing.services import budget_upsert
from keys.models import VirtualKey
from tests.api.conftest import Tenant, World, ids, world  # noqa: F401  (world: a fixture)
from tests.oidc.conftest import LocalIdP

pytestmark = pytest.mark.django_db


def _spent(tenant: Tenant, request_id: str) -> None:
    budget_upsert(scope=BudgetScope.KEY, target=tenant.team_key, max_budget=Decimal("5"))
    RequestLog.objects.create(
        request_id=request_id,
        created_at=datetime(2026, 3, 1, 12, tzinfo=UTC),
        organization_id=tenant.organization.pk,
        team_id=tenant.team.pk,
        key_id=tenant.team_key.pk,
        endpoint="chat/completions",
        model="mock-chat",
        status_code=200,
        prompt_tokens=3,
        completion_tokens=2,
        total_tokens=5,
        cost=Decimal("0.5"),
    )


def _as(idp: LocalIdP, role: str) -> APIClient:
    client = APIClient()
    token = idp.token(ogem_org="org-a", ogem_teams=["team-a"], ogem_role=role)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def spent(world: World) -> World:  # noqa: F811
    _spent(world.a, "req-a")
    _spent(world.b, "req-b")
    return world


def test_org_admin_token_sees_its_organization_only(idp: LocalIdP, spent: World) -> None:
    client = _as(idp, "gw-admins")
    keys = client.get("/api/v1/keys", {"limit": 1000})
    assert keys.status_code == 200, keys.content
    assert ids(keys) == set(
        VirtualKey.objects.filter(organization=spent.a.organization).values_list("pk", flat=True)
    )
    budgets = ids(client.get("/api/v1/budgets", {"limit": 1000}))
    assert budgets == {
        spent.a.team_budget.pk,
        Budget.objects.get(scope=BudgetScope.KEY, key=spent.a.team_key).pk,
    }
    spend = client.get("/api/v1/spend", {"group_by": "key"}).json()
    assert [row["key"] for row in spend["results"]] == [spent.a.team_key.pk]
    assert spend["total"]["requests"] == 1


def test_member_token_owns_nothing(idp: LocalIdP, spent: World) -> None:
    client = _as(idp, "gw-users")
    keys = client.get("/api/v1/keys")
    assert keys.status_code == 200, keys.content
    assert ids(keys) == set()
    # The team's own budget is theirs to read; no key budget, of A or B, is.
    assert ids(client.get("/api/v1/budgets")) == {spent.a.team_budget.pk}
    spend = client.get("/api/v1/spend", {"group_by": "key"}).json()
    assert (spend["results"], spend["total"]["requests"]) == ([], 0)
    # No user row to own a key: members' own keys need a signed-in user.
    created = client.post("/api/v1/keys", {"name": "mine", "team": spent.a.team.pk})
    assert created.status_code == 403
    assert created.json() == {
        "detail": "Members create keys for themselves, and this sign-in has no user to own one."
    }


def test_bad_idp_token_is_refused_by_the_idp_class(idp: LocalIdP, world: World) -> None:  # noqa: F811
    expired = idp.token(ogem_org="org-a", exp=1, iat=1, nbf=1)
    response = APIClient().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {expired}")
    assert response.status_code == 401
    assert response.json() == {"detail": "the token has expired"}


def test_team_admin_token_gives_keys_no_owner(idp: LocalIdP, world: World) -> None:  # noqa: F811
    """A key it gave Alice would look issued by the master key, and so act as Alice."""
    client = _as(idp, "gw-leads")
    owned = client.post(
        "/api/v1/keys", {"name": "hers", "team": world.a.team.pk, "user": world.a.alice.pk}
    )
    assert owned.status_code == 403
    refusal = {"detail": "This sign-in has no user to record as issuer: it gives keys no owner."}
    assert owned.json() == refusal
    unowned = client.post("/api/v1/keys", {"name": "service", "team": world.a.team.pk})
    assert unowned.status_code == 201, unowned.content
    assert (unowned.json()["user"], unowned.json()["created_by"]) == (None, None)
    reassigned = client.patch(
        f"/api/v1/keys/{world.a.team_key.pk}", {"user": world.a.alice.pk}, format="json"
    )
    assert reassigned.status_code == 403
    assert reassigned.json() == refusal
    world.a.team_key.refresh_from_db()
    assert world.a.team_key.user_id is None
