"""IdP JWTs on /api/v1 (issue 14, finding 14): they authenticate, and their principal, which has
no user row, sees its own organization only, never the unowned rows of every tenant.

Tenants A and B come from tests/api/conftest.py; each has a team key without an owner, with a
key budget and spend. The tokens are signed by the local IdP of tests/oidc/conftest.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from mozilla_django_oidc.contrib import drf
from rest_framework.test import APIClient

from billing.models import Budget, BudgetScope, RequestLog
from billing.services import budget_upsert
from keys.models import VirtualKey
from tenants.models import Role
from tests.api.conftest import Tenant, World, ids, world  # noqa: F401  (world: a fixture)
from tests.live import free_port
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


# mozilla-django-oidc's DRF class does the work (tenants/authentication.py)


def test_idp_jwt_is_verified_by_mozilla_oidc_class(idp: LocalIdP, settings, world: World) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    # mozilla's own setting names the JWKS it reads: the IdP sees that path, not /jwks.json.
    settings.OIDC_OP_JWKS_ENDPOINT = f"{idp.url}/other-jwks.json"
    response = _as(idp, "gw-admins").get("/api/v1/keys")
    assert response.status_code == 200, response.content
    request = response.renderer_context["request"]
    assert isinstance(request.successful_authenticator, drf.OIDCAuthentication)
    assert request.auth.org_roles == {world.a.organization.pk: Role.ORG_ADMIN}
    assert idp.requests == ["/other-jwks.json"]


def test_forged_idp_jwt_is_refused(idp: LocalIdP, world: World) -> None:  # noqa: F811
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = idp.token(signing_key=forger, ogem_org="org-a", ogem_role="proxy_admin")
    response = APIClient().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401
    assert response.json() == {"detail": "the token's signature does not verify"}
    assert response["WWW-Authenticate"] == 'Bearer realm="ogem"'


@pytest.fixture
def opaque_on(idp: LocalIdP, settings) -> LocalIdP:  # type: ignore[no-untyped-def]
    """The local IdP, with opaque tokens accepted on /api/v1."""
    settings.OGEM_OIDC_OPAQUE_TOKENS = True
    return idp


def test_opaque_token_is_checked_at_the_idp_userinfo_endpoint(
    opaque_on: LocalIdP,
    world: World,  # noqa: F811
) -> None:
    idp = opaque_on
    token = idp.opaque_token(ogem_org="org-a", ogem_teams=["team-a"], ogem_role="gw-admins")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    for _ in range(2):
        response = client.get("/api/v1/keys", {"limit": 1000})
        assert response.status_code == 200, response.content
        assert ids(response) == set(
            VirtualKey.objects.filter(organization=world.a.organization).values_list(
                "pk", flat=True
            )
        )
    # The userinfo endpoint comes from discovery, once; the IdP vouches for the token each time.
    assert idp.requests == ["/.well-known/openid-configuration", "/userinfo", "/userinfo"]
    userinfo = idp.headers[1]
    assert userinfo["authorization"] == f"Bearer {token}"
    assert userinfo["user-agent"].startswith("python-requests/")  # mozilla-django-oidc's client
    assert response.renderer_context["request"].user.username == "oidc:alice"


def test_opaque_token_the_idp_refuses_is_a_401_with_its_reason(
    opaque_on: LocalIdP,
    world: World,  # noqa: F811
) -> None:
    response = APIClient().get("/api/v1/keys", HTTP_AUTHORIZATION="Bearer idp-revoked-token")
    assert response.status_code == 401
    assert response.json() == {"detail": "The access token is invalid or has expired"}
    assert response["WWW-Authenticate"] == 'Bearer realm="ogem"'
    assert opaque_on.requests == ["/.well-known/openid-configuration", "/userinfo"]


@pytest.mark.parametrize(
    ("userinfo", "status", "detail"),
    [
        ("down", 200, "the identity provider's userinfo endpoint failed"),
        ("idp", 500, "the identity provider's userinfo endpoint failed"),
        ("idp", 403, "the identity provider refused the token"),
    ],
)
def test_userinfo_failures_are_401_never_500(  # type: ignore[no-untyped-def]
    opaque_on: LocalIdP,
    settings,
    world: World,  # noqa: F811
    userinfo: str,
    status: int,
    detail: str,
) -> None:
    if userinfo == "down":
        settings.OIDC_OP_USER_ENDPOINT = f"http://127.0.0.1:{free_port()}/userinfo"
    opaque_on.userinfo_status = status
    token = opaque_on.opaque_token(ogem_org="org-a")
    response = APIClient().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert (response.status_code, response.json()) == (401, {"detail": detail})


def test_opaque_tokens_are_off_by_default(idp: LocalIdP, world: World) -> None:  # noqa: F811
    token = idp.opaque_token(ogem_org="org-a", ogem_role="gw-admins")
    response = APIClient().get("/api/v1/keys", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid, revoked or expired key."}
    assert idp.requests == []
