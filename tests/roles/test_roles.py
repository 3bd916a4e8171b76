"""Each role on the same objects through admin, portal, management API and SCIM: exact statuses.

Organization A has teams T and T2; organization B belongs to the outsider (its owner, so it
is an admin user elsewhere, never a stranger to admin). Every role is a real signed-in user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from django.test import Client
from rest_framework.test import APIClient

from gateway.models import ModelDeployment
from keys.models import VirtualKey
from keys.services import key_create
from ogem_site.portal.views import _FORM_TOKENS
from tenants.models import AuditEvent, Membership, Organization, Role, ScimToken, Team, User
from tenants.scim.services import scim_token_create
from tests.factories import (
    MembershipFactory,
    ModelDeploymentFactory,
    OrganizationFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

ROLES = ["proxy", "owner", "org_admin", "team_admin", "member", "viewer", "outsider"]
_FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')


@dataclass
class World:
    a: Organization
    b: Organization
    t: Team
    t2: Team
    users: dict[str, User]
    key_t: VirtualKey
    key_t2: VirtualKey
    key_b: VirtualKey
    b_user: User
    global_deployment: ModelDeployment
    a_deployment: ModelDeployment


def _user(username: str, **flags: bool) -> User:
    user = UserFactory(username=username, **flags)
    user.save(update_fields=["password"])  # the factory sets it after its own save
    return user


@pytest.fixture
def world() -> World:
    a = OrganizationFactory(name="Org A", slug="org-a")
    b = OrganizationFactory(name="Org B", slug="org-b")
    t = TeamFactory(organization=a, name="T", slug="t")
    t2 = TeamFactory(organization=a, name="T2", slug="t2")
    users = {
        "proxy": _user("proxy", is_superuser=True),
        "owner": _user("owner"),
        "org_admin": _user("org_admin"),
        "team_admin": _user("team_admin", is_staff=True),
        "member": _user("member", is_staff=True),
        "viewer": _user("viewer"),
        "outsider": _user("outsider"),
    }
    MembershipFactory(user=users["owner"], organization=a, role=Role.ORG_OWNER)
    MembershipFactory(user=users["org_admin"], organization=a, role=Role.ORG_ADMIN)
    MembershipFactory(user=users["team_admin"], organization=a, team=t, role=Role.TEAM_ADMIN)
    MembershipFactory(user=users["member"], organization=a, team=t, role=Role.MEMBER)
    MembershipFactory(user=users["viewer"], organization=a, role=Role.VIEWER)
    MembershipFactory(user=users["outsider"], organization=b, role=Role.ORG_OWNER)
    b_user = _user("bob-b")
    MembershipFactory(user=b_user, organization=b, role=Role.MEMBER)
    return World(
        a=a,
        b=b,
        t=t,
        t2=t2,
        users=users,
        key_t=key_create(name="key-t", team=t).key,
        key_t2=key_create(name="key-t2", team=t2).key,
        key_b=key_create(name="key-b", organization=b).key,
        b_user=b_user,
        global_deployment=ModelDeploymentFactory(model_name="shared"),
        a_deployment=ModelDeploymentFactory(model_name="a-only", organization=a),
    )


def _client(world: World, role: str) -> Client:
    client = Client()
    client.force_login(world.users[role])
    return client


def _api(world: World, role: str) -> APIClient:
    client = APIClient()
    client.force_login(world.users[role])
    return client


def _row(**by_role: int) -> list[int]:
    return [by_role[role] for role in ROLES]


# ---- Django admin ------------------------------------------------------------------------------

# 302: to the admin sign-in page (not an admin of anything); 403: an admin, but not of this kind
# of page; 404: an object the caller does not administer (its existence is not revealed).
ADMIN_PAGES = {
    "index": (
        "/admin/",
        _row(
            proxy=200,
            owner=200,
            org_admin=200,
            team_admin=200,
            member=302,
            viewer=302,
            outsider=200,
        ),
    ),
    "org A": (
        "/admin/tenants/organization/{a}/change/",
        _row(
            proxy=200,
            owner=200,
            org_admin=200,
            team_admin=404,
            member=302,
            viewer=302,
            outsider=404,
        ),
    ),
    "org add": (
        "/admin/tenants/organization/add/",
        _row(
            proxy=200,
            owner=403,
            org_admin=403,
            team_admin=403,
            member=302,
            viewer=302,
            outsider=403,
        ),
    ),
    "team T": (
        "/admin/tenants/team/{t}/change/",
        _row(
            proxy=200,
            owner=200,
            org_admin=200,
            team_admin=404,
            member=302,
            viewer=302,
            outsider=404,
        ),
    ),
    "key of T": (
        "/admin/keys/virtualkey/{key_t}/change/",
        _row(
            proxy=200,
            owner=200,
            org_admin=200,
            team_admin=200,
            member=302,
            viewer=302,
            outsider=404,
        ),
    ),
    "key of T2": (
        "/admin/keys/virtualkey/{key_t2}/change/",
        _row(
            proxy=200,
            owner=200,
            org_admin=200,
            team_admin=404,
            member=302,
            viewer=302,
            outsider=404,
        ),
    ),
    "key of B": (
        "/admin/keys/virtualkey/{key_b}/change/",
        _row(
            proxy=200,
            owner=404,
            org_admin=404,
            team_admin=404,
            member=302,
            viewer=302,
            outsider=200,
        ),
    ),
    "user of B": (
        "/admin/tenants/user/{b_user}/change/",
        _row(
            proxy=200,
            owner=404,
            org_admin=404,
            team_admin=404,
            member=302,
            viewer=302,
            outsider=200,
        ),
    ),
    "audit log": (
        "/admin/tenants/auditevent/",
        _row(
            proxy=200,
            owner=200,
            org_admin=200,
            team_admin=403,
            member=302,
            viewer=302,
            outsider=200,
        ),
    ),
    "prices": (
        "/admin/billing/modelprice/",
        _row(
            proxy=200,
            owner=403,
            org_admin=403,
            team_admin=403,
            member=302,
            viewer=302,
            outsider=403,
        ),
    ),
    "groups": (
        "/admin/auth/group/",
        _row(
            proxy=200,
            owner=403,
            org_admin=403,
            team_admin=403,
            member=302,
            viewer=302,
            outsider=403,
        ),
    ),
    "sites": (
        "/admin/sites/site/",
        _row(
            proxy=200,
            owner=403,
            org_admin=403,
            team_admin=403,
            member=302,
            viewer=302,
            outsider=403,
        ),
    ),
    "shared deployment": (
        "/admin/gateway/modeldeployment/{shared}/change/",
        _row(
            proxy=200,
            owner=200,
            org_admin=200,
            team_admin=404,
            member=302,
            viewer=302,
            outsider=200,
        ),
    ),
}


@pytest.mark.parametrize("page", ADMIN_PAGES, ids=str)
@pytest.mark.parametrize("role", ROLES)
def test_admin_pages(world: World, role: str, page: str) -> None:
    path, expected = ADMIN_PAGES[page]
    url = path.format(
        a=world.a.pk,
        t=world.t.pk,
        key_t=world.key_t.pk,
        key_t2=world.key_t2.pk,
        key_b=world.key_b.pk,
        b_user=world.b_user.pk,
        shared=world.global_deployment.pk,
    )
    response = _client(world, role).get(url)
    assert response.status_code == expected[ROLES.index(role)]
    if response.status_code == 302:
        assert response["Location"].startswith("/admin/login/")


def test_org_admin_lists_only_their_organization(world: World) -> None:
    client = _client(world, "org_admin")
    page = client.get("/admin/keys/virtualkey/").content.decode()
    assert ">key-t</a>" in page
    assert ">key-t2</a>" in page
    assert "key-b" not in page
    orgs = client.get("/admin/tenants/organization/").content.decode()
    assert "Org A" in orgs and "Org B" not in orgs
    index = client.get("/admin/").content.decode()
    assert 'href="/admin/keys/virtualkey/"' in index
    assert 'href="/admin/auth/group/"' not in index
    assert 'href="/admin/billing/modelprice/"' not in index


def test_team_admin_sees_only_their_teams_keys(world: World) -> None:
    page = _client(world, "team_admin").get("/admin/keys/virtualkey/").content.decode()
    assert ">key-t</a>" in page
    assert "key-t2" not in page and "key-b" not in page


def _key_form(**values: object) -> dict[str, object]:
    base = {"name": "made in admin", "metadata": "{}", "tags": "[]", "allowed_models": "[]"}
    return {**base, **values}


@pytest.mark.parametrize(
    ("role", "team", "created"),
    [
        ("org_admin", "t", True),
        ("org_admin", "b_team", False),  # not a choice: another organization's team
        ("team_admin", "t", True),
        ("team_admin", "t2", False),
    ],
)
def test_key_add_is_limited_to_administered_teams(
    world: World, role: str, team: str, created: bool
) -> None:
    teams = {"t": world.t, "t2": world.t2, "b_team": TeamFactory(organization=world.b)}
    target = teams[team]
    response = _client(world, role).post(
        "/admin/keys/virtualkey/add/",
        _key_form(organization=target.organization_id, team=target.pk),
    )
    exists = VirtualKey.objects.filter(name="made in admin").exists()
    assert exists is created
    assert response.status_code == 200  # the secret page, or the form with its errors
    if created:
        assert b"ogem-secret" in response.content
        event = AuditEvent.objects.get(action="virtualkey.create")
        assert (event.surface, event.actor, event.organization_id) == (
            "admin",
            f"user:{world.users[role].pk}",
            world.a.pk,
        )
        assert "digest" not in (event.after or {})


def test_team_admin_cannot_make_an_org_wide_key(world: World) -> None:
    response = _client(world, "team_admin").post(
        "/admin/keys/virtualkey/add/", _key_form(organization=world.a.pk)
    )
    assert response.status_code == 200
    assert b"Choose an organization you administer." in response.content
    assert not VirtualKey.objects.filter(name="made in admin").exists()


@pytest.mark.parametrize(
    ("role", "key", "revoked"),
    [
        ("org_admin", "key_t2", True),
        ("team_admin", "key_t", True),
        ("org_admin", "key_b", False),
        ("team_admin", "key_t2", False),
    ],
)
def test_revoke_action_only_on_administered_keys(
    world: World, role: str, key: str, revoked: bool
) -> None:
    target: VirtualKey = getattr(world, key)
    response = _client(world, role).post(
        "/admin/keys/virtualkey/",
        {"action": "revoke_keys", "_selected_action": [target.pk]},
    )
    target.refresh_from_db()
    assert (target.revoked_at is not None) is revoked
    # Rows outside the caller's queryset are dropped by admin: nothing selected, no write.
    assert response.status_code == 302
    events = AuditEvent.objects.filter(action="key.revoke", target_id=str(target.pk))
    assert events.count() == (1 if revoked else 0)
    if revoked:
        assert events.get().surface == "admin"


def _membership_form(world: World, user: User, role: str) -> dict[str, object]:
    return {"user": user.pk, "organization": world.a.pk, "team": "", "role": role}


@pytest.mark.parametrize(
    ("granter", "role", "granted"),
    [
        ("owner", Role.ORG_OWNER, True),
        ("org_admin", Role.ORG_OWNER, False),  # only owners make owners
        ("org_admin", Role.ORG_ADMIN, True),
        ("org_admin", Role.PROXY_ADMIN, False),  # not a membership role at all
    ],
)
def test_membership_grants_never_escalate(
    world: World, granter: str, role: str, granted: bool
) -> None:
    grantee = world.users["member"]
    response = _client(world, granter).post(
        "/admin/tenants/membership/add/", _membership_form(world, grantee, role)
    )
    exists = Membership.objects.filter(
        user=grantee, organization=world.a, team=None, role=role
    ).exists()
    assert exists is granted
    assert response.status_code == (302 if granted else 200)


def test_org_admin_cannot_grant_in_another_org(world: World) -> None:
    response = _client(world, "org_admin").post(
        "/admin/tenants/membership/add/",
        {
            "user": world.users["member"].pk,
            "organization": world.b.pk,
            "team": "",
            "role": "member",
        },
    )
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content
    assert not Membership.objects.filter(organization=world.b, user=world.users["member"]).exists()


def test_org_admin_cannot_change_an_owner(world: World) -> None:
    owner_membership = Membership.objects.get(user=world.users["owner"])
    response = _client(world, "org_admin").get(
        f"/admin/tenants/membership/{owner_membership.pk}/change/"
    )
    assert response.status_code == 200
    assert b'name="_save"' not in response.content  # read-only for them
    posted = _client(world, "org_admin").post(
        f"/admin/tenants/membership/{owner_membership.pk}/change/",
        {**_membership_form(world, world.users["owner"], Role.MEMBER)},
    )
    assert posted.status_code == 403
    owner_membership.refresh_from_db()
    assert owner_membership.role == Role.ORG_OWNER


def test_users_are_read_only_and_flags_cannot_be_set(world: World) -> None:
    member = world.users["member"]
    client = _client(world, "owner")
    assert client.get(f"/admin/tenants/user/{member.pk}/change/").status_code == 200
    response = client.post(
        f"/admin/tenants/user/{member.pk}/change/",
        {"username": member.username, "is_superuser": "on", "is_staff": "on", "is_active": "on"},
    )
    assert response.status_code == 403
    member.refresh_from_db()
    assert member.is_superuser is False
    assert client.get("/admin/tenants/user/add/").status_code == 403


def test_shared_deployments_are_read_only_for_org_admins(world: World) -> None:
    client = _client(world, "org_admin")
    shared = world.global_deployment
    response = client.post(
        f"/admin/gateway/modeldeployment/{shared.pk}/change/",
        {"model_name": "hijacked", "provider": "mock", "upstream_model": "x"},
    )
    assert response.status_code == 403
    shared.refresh_from_db()
    assert shared.model_name == "shared"
    own = client.get(f"/admin/gateway/modeldeployment/{world.a_deployment.pk}/change/")
    assert b'name="_save"' in own.content


def test_admin_scim_token_action_is_for_org_admins_only(world: World) -> None:
    for role, status in [("org_admin", 200), ("team_admin", 403), ("viewer", 302)]:
        response = _client(world, role).post(
            "/admin/tenants/organization/",
            {"action": "issue_scim_token", "_selected_action": [world.a.pk]},
        )
        assert response.status_code == status, role
    assert ScimToken.objects.filter(organization=world.a).count() == 1
    event = AuditEvent.objects.get(action="scim_token.create")
    assert (event.surface, event.actor) == ("admin", f"user:{world.users['org_admin'].pk}")


# ---- Portal ------------------------------------------------------------------------------------

PORTAL_REVOKE = {
    # key of team T: team admins and up change it; members and viewers see it or not, never revoke
    "key_t": _row(
        proxy=302, owner=302, org_admin=302, team_admin=302, member=404, viewer=403, outsider=404
    ),
    "key_b": _row(
        proxy=302, owner=404, org_admin=404, team_admin=404, member=404, viewer=404, outsider=302
    ),
}


@pytest.mark.parametrize("key", PORTAL_REVOKE)
@pytest.mark.parametrize("role", ROLES)
def test_portal_revoke(world: World, role: str, key: str) -> None:
    client = _client(world, role)
    keys_page = client.get("/keys/")
    assert keys_page.status_code == 200
    # Read-only callers get no form on the page; a forged POST carries a valid one-time token.
    shown = _FORM_TOKEN.search(keys_page.content.decode())
    token = shown.group(1) if shown else client.session[_FORM_TOKENS][-1]
    target: VirtualKey = getattr(world, key)
    response = client.post(f"/keys/{target.pk}/revoke/", {"form_token": token})
    expected = PORTAL_REVOKE[key][ROLES.index(role)]
    assert response.status_code == expected
    target.refresh_from_db()
    assert (target.revoked_at is not None) is (expected == 302)


@pytest.mark.parametrize(
    ("role", "action", "expected"),
    [
        ("member", "revoke", 302),
        ("member", "rotate", 200),  # the keys page, showing the new secret once
        ("viewer", "revoke", 403),
        ("viewer", "rotate", 403),
    ],
)
def test_portal_own_key_needs_a_writing_role(
    world: World, role: str, action: str, expected: int
) -> None:
    # Their team admin issued each a key; the viewer of A, read-only, changes not even theirs.
    owned = key_create(
        name=f"{role}'s", team=world.t, user=world.users[role], created_by=world.users["team_admin"]
    ).key
    client = _client(world, role)
    client.get("/keys/")
    token = client.session[_FORM_TOKENS][-1]
    response = client.post(f"/keys/{owned.pk}/{action}/", {"form_token": token})
    assert response.status_code == expected
    before = owned.prefix
    owned.refresh_from_db()
    changed = owned.revoked_at is not None if action == "revoke" else owned.prefix != before
    assert changed is (expected < 400)


# ---- Management API ----------------------------------------------------------------------------

API = {
    "read key of T": (
        "get",
        "/api/v1/keys/{key_t}",
        _row(
            proxy=200,
            owner=200,
            org_admin=200,
            team_admin=200,
            member=404,
            viewer=200,
            outsider=404,
        ),
    ),
    "revoke key of T2": (
        "post",
        "/api/v1/keys/{key_t2}/revoke",
        _row(
            proxy=200,
            owner=200,
            org_admin=200,
            team_admin=404,
            member=404,
            viewer=403,
            outsider=404,
        ),
    ),
    "read org B": (
        "get",
        "/api/v1/organizations/{b}",
        _row(
            proxy=200,
            owner=404,
            org_admin=404,
            team_admin=404,
            member=404,
            viewer=404,
            outsider=200,
        ),
    ),
    "create team in A": (
        "post",
        "/api/v1/teams",
        _row(
            proxy=201,
            owner=201,
            org_admin=201,
            team_admin=403,
            member=403,
            viewer=403,
            outsider=404,
        ),
    ),
    "SCIM token for A": (
        "post",
        "/api/v1/organizations/{a}/scim-tokens",
        _row(
            proxy=201,
            owner=201,
            org_admin=201,
            team_admin=403,
            member=403,
            viewer=403,
            outsider=404,
        ),
    ),
}


@pytest.mark.parametrize("call", API, ids=str)
@pytest.mark.parametrize("role", ROLES)
def test_management_api(world: World, role: str, call: str) -> None:
    method, path, expected = API[call]
    url = path.format(a=world.a.pk, b=world.b.pk, key_t=world.key_t.pk, key_t2=world.key_t2.pk)
    body = {"organization": world.a.pk, "name": "New team", "slug": f"new-{role}"}
    response = getattr(_api(world, role), method)(
        url, body if method == "post" else None, format="json"
    )
    assert response.status_code == expected[ROLES.index(role)], response.content


# ---- SCIM: org tokens, no user roles -----------------------------------------------------------


def test_scim_tokens_are_scoped_to_their_organization(world: World) -> None:
    _, secret_a = scim_token_create(organization=world.a, name="a")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret_a}")
    listed = client.get("/scim/v2/Users")
    assert listed.status_code == 200
    names = {resource["userName"] for resource in listed.json()["Resources"]}
    assert world.b_user.username not in names
    assert world.users["outsider"].username not in names
    assert client.get(f"/scim/v2/Users/{world.b_user.pk}").status_code == 404
    # A user's session or key is no SCIM credential, whatever its role.
    for role in ("proxy", "owner"):
        assert _api(world, role).get("/scim/v2/Users").status_code == 401


def test_admin_writes_are_audited_once_with_before_and_after(world: World) -> None:
    client = _client(world, "org_admin")
    changed = client.post(
        f"/admin/tenants/team/{world.t.pk}/change/",
        {
            "organization": world.a.pk,
            "name": "Renamed",
            "slug": "t",
            "metadata": "{}",
            "external_id": "",
            **_empty_inlines(),
        },
    )
    assert changed.status_code == 302
    update = AuditEvent.objects.get(action="team.update")
    assert (update.surface, update.actor, update.organization_id) == (
        "admin",
        f"user:{world.users['org_admin'].pk}",
        world.a.pk,
    )
    assert (update.before["name"], update.after["name"]) == ("T", "Renamed")

    deleted = client.post(f"/admin/tenants/team/{world.t2.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not Team.objects.filter(pk=world.t2.pk).exists()
    delete = AuditEvent.objects.get(action="team.delete")
    assert (delete.surface, delete.target_id, delete.after) == ("admin", str(world.t2.pk), None)
    assert delete.before["name"] == "T2"


def _empty_inlines() -> dict[str, str]:
    forms = {}
    for prefix in ("memberships", "keys"):
        forms.update(
            {
                f"{prefix}-TOTAL_FORMS": "0",
                f"{prefix}-INITIAL_FORMS": "0",
                f"{prefix}-MIN_NUM_FORMS": "0",
                f"{prefix}-MAX_NUM_FORMS": "1000",
            }
        )
    return forms


@pytest.mark.parametrize(("role", "signed_in"), [("owner", True), ("member", False)])
def test_admin_sign_in_goes_by_role_not_staff_flag(
    world: World, role: str, signed_in: bool
) -> None:
    client = Client()
    response = client.post(
        "/admin/login/",
        {"username": role, "password": "correct horse battery", "next": "/admin/"},
    )
    # The member has is_staff set and still may not sign in; the owner has no flag and may.
    assert world.users["member"].is_staff and not world.users["owner"].is_staff
    assert response.status_code == (302 if signed_in else 200)
    assert ("_auth_user_id" in client.session) is signed_in


def test_org_admin_renames_their_organization_but_not_its_slug(world: World) -> None:
    response = _client(world, "org_admin").post(
        f"/admin/tenants/organization/{world.a.pk}/change/",
        {
            "name": "Org A renamed",
            "slug": "org-b-lookalike",
            "metadata": "{}",
            "teams-TOTAL_FORMS": "0",
            "teams-INITIAL_FORMS": "0",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302
    world.a.refresh_from_db()
    assert (world.a.name, world.a.slug) == ("Org A renamed", "org-a")


# What an org admin meets on registered admin pages (changelist, add): theirs, or 403.
ORG_ADMIN_PAGES = {
    "tenants.Organization": (200, 403),
    "tenants.Team": (200, 200),
    "tenants.User": (200, 403),
    "tenants.Membership": (200, 200),
    "tenants.EndCustomer": (200, 200),
    "tenants.ScimToken": (200, 403),
    "tenants.AuditEvent": (200, 403),
    "tenants.OrganizationIdentityProvider": (403, 403),
    "keys.VirtualKey": (200, 200),
    "billing.Budget": (200, 200),
    "billing.ModelPrice": (403, 403),
    "billing.RequestLog": (200, 403),
    "billing.GuardrailDecision": (200, 403),
    "gateway.ModelDeployment": (200, 200),
    # Their organization's own guardrails (tests/gateway/guardrails/test_admin_guardrails.py).
    "gateway.GuardrailDefinition": (200, 200),
    "files.File": (200, 403),  # their organization's files (tests/files/test_admin.py)
    "batches.Batch": (200, 403),  # their organization's batches (tests/batches/test_management.py)
    # Their organization's vector stores (tests/vector_stores/test_admin.py).
    "vector_stores.VectorStore": (200, 403),
    # Their organization's assistants, threads and runs (tests/assistants/test_management.py).
    "assistants.Assistant": (200, 403),
    "assistants.Thread": (200, 403),
    "assistants.Run": (200, 403),
    # Their organization's jobs (tests/fine_tuning/test_management.py).
    "fine_tuning.FineTuningJob": (200, 403),
    "gateway.ResponseCacheOrganization": (200, 403),  # their cache (tests/gateway/test_cache.py)
    # Their organization's debug captures, read-only (tests/gateway/test_debugging.py).
    "gateway.DebugCapture": (200, 403),
    "auth.Group": (403, 403),
    "sites.Site": (403, 403),
    "account.EmailAddress": (403, 403),
    "socialaccount.SocialApp": (403, 403),
    "socialaccount.SocialToken": (403, 403),
    "socialaccount.SocialAccount": (403, 403),
    "mfa.Authenticator": (403, 403),
}


def test_every_admin_page_for_an_org_admin(world: World) -> None:
    from django.contrib.admin import site

    client = _client(world, "org_admin")
    for model in site._registry:
        label = model._meta.label
        # Any admin not opened to org admins on purpose is closed to them.
        changelist, add = ORG_ADMIN_PAGES.get(label, (403, 403))
        app_label, model_name = label.lower().split(".")
        base = f"/admin/{app_label}/{model_name}/"
        assert client.get(base).status_code == changelist, label
        assert client.get(f"{base}add/").status_code == add, label
