"""Django admin: sign-in of a createsuperuser account, pages, key secrets shown once, actions."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.admin.sites import site
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from billing.models import AlertIncident, Budget, BudgetScope, GuardrailDecision, RequestLog
from billing.services import budget_upsert
from files.models import File, Upload
from gateway.models import (
    DebugCapture,
    ResponseCacheOrganization,
    SemanticCacheEntry,
    StoredCompletion,
    StoredResponse,
)
from keys.models import VirtualKey
from keys.selectors import key_authenticate
from keys.services import key_create
from tenants.models import AuditEvent, Role, ScimToken, User
from tests.factories import (
    MembershipFactory,
    ModelDeploymentFactory,
    OrganizationFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

_SECRET = re.compile(r'<code class="ogem-secret">([^<]+)</code>')


@pytest.fixture
def admin_client() -> Client:
    user = UserFactory(username="root", is_superuser=True, is_staff=True)
    user.save(update_fields=["password"])
    client = Client()
    client.force_login(user)
    return client


def test_createsuperuser_noinput_can_sign_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "ops")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "ops@example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long enough passphrase 42")
    call_command("createsuperuser", "--noinput", verbosity=0)
    user = User.objects.get(username="ops")
    assert (user.email, user.is_superuser, user.is_staff) == ("ops@example.com", True, True)

    client = Client()
    login_url = reverse("admin:login")
    page = client.get(login_url)
    assert page.status_code == 200
    response = client.post(
        login_url,
        {"username": "ops", "password": "a long enough passphrase 42", "next": "/admin/"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    index = client.get("/admin/")
    assert index.status_code == 200
    for changelist in (
        "/admin/tenants/organization/",
        "/admin/tenants/team/",
        "/admin/tenants/membership/",
        "/admin/keys/virtualkey/",
        "/admin/billing/budget/",
        "/admin/gateway/modeldeployment/",
    ):
        assert f'href="{changelist}"'.encode() in index.content, changelist

    wrong = Client().post(login_url, {"username": "ops", "password": "nope", "next": "/admin/"})
    assert wrong.status_code == 200
    assert "_auth_user_id" not in wrong.client.session


def test_staff_flag_grants_nothing_roles_do() -> None:
    org, other = OrganizationFactory(), OrganizationFactory()
    staff = UserFactory(is_staff=True)
    staff.save(update_fields=["password"])
    MembershipFactory(user=staff, organization=org, role=Role.MEMBER)
    client = Client()
    client.force_login(staff)
    assert client.get("/admin/tenants/organization/").status_code == 302  # to the login page
    assert client.get(f"/admin/tenants/organization/{org.pk}/change/").status_code == 302

    owner = UserFactory()
    owner.save(update_fields=["password"])
    MembershipFactory(user=owner, organization=org, role=Role.ORG_OWNER)
    client.force_login(owner)
    assert client.get(f"/admin/tenants/organization/{org.pk}/change/").status_code == 200
    assert client.get(f"/admin/tenants/organization/{other.pk}/change/").status_code == 404


def test_index_and_sidebar_list_ogem_apps_first(admin_client: Client) -> None:
    page = admin_client.get("/admin/")
    assert page.status_code == 200
    labels = [app["app_label"] for app in page.context["app_list"]]
    assert labels[:5] == ["tenants", "keys", "billing", "gateway", "files"]
    others = labels[5:]
    assert {"auth", "sites", "account", "socialaccount"} <= set(others)
    assert others == sorted(others, key=lambda label: _app_name(page, label).lower())
    # The index's tables follow the same order: Ogem's models before Django's Groups.
    content = page.content.decode()
    assert content.index('class="app-tenants module') < content.index('class="app-auth module')
    assert content.index('class="app-gateway module') < content.index('class="app-account module')
    # The sidebar of every other admin page lists them the same way.
    sidebar = admin_client.get("/admin/tenants/organization/").context["available_apps"]
    assert [app["app_label"] for app in sidebar][:5] == labels[:5]


def _app_name(page, label: str) -> str:  # type: ignore[no-untyped-def]
    return next(app["name"] for app in page.context["app_list"] if app["app_label"] == label)


@pytest.mark.parametrize(
    "model",
    [
        m
        for m in site._registry
        if m._meta.app_label in {"tenants", "keys", "billing", "gateway", "files"}
    ],
    ids=lambda m: m._meta.label,
)
def test_every_changelist_and_add_page_renders(admin_client: Client, model: type) -> None:
    team = TeamFactory()
    key_create(name="k", team=team, max_budget=Decimal("5"))
    ModelDeploymentFactory(organization=team.organization)
    MembershipFactory(organization=team.organization, team=team)
    meta = model._meta
    changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    assert admin_client.get(changelist).status_code == 200
    assert admin_client.get(changelist, {"q": "k"}).status_code == 200
    add = admin_client.get(reverse(f"admin:{meta.app_label}_{meta.model_name}_add"))
    # The request log, guardrail decisions, stored completions and responses, files, semantic
    # cache entries and debug captures are written by the data plane, alert incidents by the
    # alert rules, SCIM tokens are issued by an action, the audit log only by the services it
    # records, and the response cache page shows organizations' cache.
    written_elsewhere = (
        RequestLog,
        GuardrailDecision,
        ScimToken,
        AuditEvent,
        StoredCompletion,
        StoredResponse,
        File,
        Upload,
        SemanticCacheEntry,
        ResponseCacheOrganization,
        AlertIncident,
        DebugCapture,
    )
    assert add.status_code == (403 if model in written_elsewhere else 200)
    instance = model.objects.first()
    if instance is not None:
        change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[instance.pk])
        assert admin_client.get(change).status_code == 200


def test_organization_page_has_team_and_member_inlines(admin_client: Client) -> None:
    team = TeamFactory(name="Research")
    member = MembershipFactory(organization=team.organization, user=UserFactory(username="zoe"))
    response = admin_client.get(
        reverse("admin:tenants_organization_change", args=[team.organization.pk])
    )
    content = response.content.decode()
    assert 'name="teams-TOTAL_FORMS" value="1"' in content
    assert 'name="memberships-TOTAL_FORMS" value="1"' in content
    assert 'value="Research"' in content
    assert f'<option value="{member.user.pk}" selected>zoe</option>' in content


def test_team_page_lists_its_keys(admin_client: Client) -> None:
    team = TeamFactory()
    issued = key_create(name="pipeline", team=team)
    response = admin_client.get(reverse("admin:tenants_team_change", args=[team.pk]))
    assert response.status_code == 200
    assert issued.key.display_prefix.encode() in response.content
    assert issued.secret.encode() not in response.content


def test_adding_a_key_shows_its_secret_once(admin_client: Client) -> None:
    team = TeamFactory()
    owner = UserFactory()
    response = admin_client.post(
        reverse("admin:keys_virtualkey_add"),
        {
            "name": "from admin",
            "team": team.pk,
            "user": owner.pk,
            "allowed_models": '["mock-chat"]',
            "max_budget": "20",
            "budget_duration": "30d",
            "rpm_limit": "30",
            "metadata": "{}",
            "tags": "[]",
        },
    )
    assert response.status_code == 200, response.content[:2000]
    secrets = _SECRET.findall(response.content.decode())
    assert len(secrets) == 1
    key = VirtualKey.objects.get(name="from admin")
    assert key_authenticate(secret=secrets[0]) == key
    assert key.organization_id == team.organization_id
    assert (key.team_id, key.user_id, key.rpm_limit) == (team.pk, owner.pk, 30)
    assert key.allowed_models == ["mock-chat"]
    assert key.created_by.username == "root"
    budget = Budget.objects.get(scope=BudgetScope.KEY, key=key)
    assert (budget.max_budget, budget.duration) == (Decimal("20"), "30d")
    assert "no-store" in response["Cache-Control"]
    # The change page never shows it again.
    change = admin_client.get(reverse("admin:keys_virtualkey_change", args=[key.pk]))
    assert secrets[0].encode() not in change.content
    assert key.display_prefix.encode() in change.content


def test_key_change_updates_through_the_service(admin_client: Client) -> None:
    issued = key_create(name="old", team=TeamFactory(), max_budget=Decimal("1"))
    url = reverse("admin:keys_virtualkey_change", args=[issued.key.pk])
    response = admin_client.post(
        url,
        {
            "name": "new",
            "allowed_models": "[]",
            "rpm_limit": "9",
            "metadata": "{}",
            "tags": '["prod"]',
        },
    )
    assert response.status_code == 302
    issued.key.refresh_from_db()
    assert (issued.key.name, issued.key.rpm_limit, issued.key.tags) == ("new", 9, ["prod"])
    assert key_authenticate(secret=issued.secret) == issued.key


def test_revoke_and_rotate_actions(admin_client: Client) -> None:
    team = TeamFactory()
    first = key_create(name="first", team=team)
    second = key_create(name="second", team=team)
    changelist = reverse("admin:keys_virtualkey_changelist")

    rotated = admin_client.post(
        changelist, {"action": "rotate_keys", "_selected_action": [first.key.pk]}
    )
    assert rotated.status_code == 200
    new_secrets = _SECRET.findall(rotated.content.decode())
    assert len(new_secrets) == 1
    assert key_authenticate(secret=new_secrets[0]) == first.key
    assert key_authenticate(secret=first.secret) is None

    revoked = admin_client.post(
        changelist,
        {"action": "revoke_keys", "_selected_action": [first.key.pk, second.key.pk]},
    )
    assert revoked.status_code == 302
    assert VirtualKey.objects.filter(revoked_at__isnull=False).count() == 2
    assert key_authenticate(secret=second.secret) is None
    assert key_authenticate(secret=new_secrets[0]) is None


def test_reset_budget_action_and_spend_is_read_only(admin_client: Client) -> None:
    org = OrganizationFactory()
    budget = budget_upsert(scope=BudgetScope.ORGANIZATION, target=org, max_budget=Decimal("10"))
    Budget.objects.filter(pk=budget.pk).update(spend=Decimal("7.5"))
    change = admin_client.get(reverse("admin:billing_budget_change", args=[budget.pk]))
    assert b'name="spend"' not in change.content
    assert b"7.5" in change.content

    response = admin_client.post(
        reverse("admin:billing_budget_changelist"),
        {"action": "reset_budgets", "_selected_action": [budget.pk]},
    )
    assert response.status_code == 302
    budget.refresh_from_db()
    assert budget.spend == Decimal("0")
    assert budget.period_started_at is not None


def test_budget_add_validates_the_target(admin_client: Client) -> None:
    team = TeamFactory()
    url = reverse("admin:billing_budget_add")
    missing = admin_client.post(url, {"scope": "team", "mode": "enforce", "max_budget": "3"})
    assert missing.status_code == 200
    assert not Budget.objects.exists()
    ok = admin_client.post(
        url,
        {
            "scope": "team",
            "team": team.pk,
            "mode": "enforce",
            "max_budget": "3",
            "rpm_limit": "120",
            "max_parallel_requests": "4",
        },
    )
    assert ok.status_code == 302
    budget = Budget.objects.get(scope="team", team=team)
    assert budget.max_budget == Decimal("3")
    # The team's own rate limits, for all its keys together.
    limits = (budget.rpm_limit, budget.tpm_limit, budget.max_parallel_requests)
    assert limits == (120, None, 4)


def test_scim_token_action_shows_token_once(admin_client: Client) -> None:
    org = OrganizationFactory()
    response = admin_client.post(
        reverse("admin:tenants_organization_changelist"),
        {"action": "issue_scim_token", "_selected_action": [org.pk]},
    )
    assert response.status_code == 200
    secrets = _SECRET.findall(response.content.decode())
    assert len(secrets) == 1 and secrets[0].startswith("scim-")
    token = ScimToken.objects.get(organization=org)
    assert secrets[0] not in token.digest
    event = AuditEvent.objects.get(action="scim_token.create")
    root = User.objects.get(username="root")
    assert (event.actor, event.surface, event.organization_id) == (
        f"user:{root.pk}",
        "admin",
        org.pk,
    )


def test_request_log_is_read_only(admin_client: Client) -> None:
    assert admin_client.get(reverse("admin:billing_requestlog_add")).status_code == 403
    RequestLog.objects.create(
        request_id="r1",
        created_at="2026-01-01T00:00:00Z",
        endpoint="chat",
        model="m",
        status_code=200,
    )
    log = RequestLog.objects.get()
    change = admin_client.get(reverse("admin:billing_requestlog_change", args=[log.pk]))
    assert change.status_code == 200
    assert b'name="model"' not in change.content
    assert (
        admin_client.post(
            reverse("admin:billing_requestlog_delete", args=[log.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert RequestLog.objects.filter(pk=log.pk).exists()


def test_adding_a_user_in_admin(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("admin:tenants_user_add"),
        {
            "username": "newbie",
            "password1": "a long enough passphrase 42",
            "password2": "a long enough passphrase 42",
            "usable_password": "true",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    user = User.objects.get(username="newbie")
    assert user.check_password("a long enough passphrase 42")
