"""Password sign-in, TOTP multi-factor and the sign-in page's SSO entry points."""

from __future__ import annotations

import time

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from allauth.socialaccount.models import SocialApp
from django.contrib.sites.models import Site
from django.test import Client

from tenants.models import (
    AuditEvent,
    Membership,
    OrganizationIdentityProvider,
    Role,
    ScimUser,
    User,
)
from tenants.portal.services import identity_provider_membership_grant
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery"


def _person(username: str) -> User:
    user = UserFactory(username=username, email=f"{username}@example.com")
    user.set_password(PASSWORD)
    user.save(update_fields=["password"])
    return user


def _code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


def _sign_in(client: Client, login: str, password: str = PASSWORD) -> object:
    return client.post("/accounts/login/", {"login": login, "password": password})


def test_anonymous_visitors_are_sent_to_sign_in() -> None:
    response = Client().get("/keys/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/keys/"


def test_password_sign_in_by_email_lands_in_the_portal() -> None:
    user = _person("bob")
    client = Client()
    assert _sign_in(client, "bob@example.com", "wrong").status_code == 200
    assert client.get("/").status_code == 302
    response = _sign_in(client, "bob@example.com")
    assert response.status_code == 302
    assert response["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert home.context["user"] == user
    assert b"Welcome" in home.content


def test_totp_is_enrolled_in_the_portal_and_then_required_at_sign_in() -> None:
    user = _person("carol")
    client = Client()
    _sign_in(client, "carol")

    # Changing a security setting asks for the password again first.
    asked = client.get("/accounts/2fa/totp/activate/")
    assert asked["Location"].startswith("/accounts/reauthenticate/")
    confirmed = client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    assert confirmed.status_code == 302
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    secret = page.context["form"].secret
    refused = client.post("/accounts/2fa/totp/activate/", {"code": "000000"})
    assert refused.status_code == 200
    assert not Authenticator.objects.filter(user=user).exists()
    activated = client.post("/accounts/2fa/totp/activate/", {"code": _code(secret)})
    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).count() == 1

    client.post("/accounts/logout/")
    second = Client()
    step = _sign_in(second, "carol")
    assert step.status_code == 302
    assert step["Location"] == "/accounts/2fa/authenticate/"
    assert second.get("/").status_code == 302  # the password alone does not sign in

    wrong = second.post("/accounts/2fa/authenticate/", {"code": "123456"})
    assert wrong.status_code == 200
    assert second.get("/").status_code == 302
    code = _code(secret)
    done = second.post("/accounts/2fa/authenticate/", {"code": code})
    assert done.status_code == 302
    assert second.get("/").status_code == 200

    # A code works once: replaying it on another sign-in is refused.
    third = Client()
    _sign_in(third, "carol")
    assert third.post("/accounts/2fa/authenticate/", {"code": code}).status_code == 200
    assert third.get("/").status_code == 302


def test_sign_in_page_offers_the_instance_sso_button_only_when_configured(settings) -> None:  # type: ignore[no-untyped-def]
    page = Client().get("/accounts/login/")
    assert b'id="sso-login"' not in page.content
    settings.OGEM_OIDC_ISSUER = "https://login.example.com"
    settings.OGEM_OIDC_CLIENT_ID = "ogem"
    settings.OGEM_OIDC_NAME = "Example SSO"
    page = Client().get("/accounts/login/")
    assert b'id="sso-login"' in page.content
    assert b'action="/accounts/oidc/sso/login/"' in page.content
    assert b">Example SSO</button>" in page.content


def _org_idp(domains: list[str], **options: object) -> OrganizationIdentityProvider:
    organization = OrganizationFactory(name="Acme")
    app = SocialApp.objects.create(
        provider="openid_connect",
        provider_id="acme",
        name="Acme Entra",
        client_id="id",
        secret="s",
        settings={"server_url": "https://idp.acme.test"},
    )
    app.sites.add(Site.objects.get_current())
    return OrganizationIdentityProvider.objects.create(
        organization=organization, social_app=app, domains=domains, **options
    )


def test_email_domain_discovers_the_organization_idp() -> None:
    _org_idp(["acme.test", "acme.example"])
    found = Client().get("/sso/", {"email": "Dana@ACME.example"})
    assert found.status_code == 200
    assert b"<strong>Acme</strong> signs in with Acme Entra." in found.content
    assert b'action="/accounts/oidc/acme/login/"' in found.content
    missing = Client().get("/sso/", {"email": "dana@other.test"})
    assert missing.status_code == 404
    assert b"No organization signs in with that email" in missing.content
    assert b"/accounts/oidc/" not in missing.content


def test_sign_in_page_offers_sso_only_when_an_identity_provider_is_configured() -> None:
    # Neither the instance's OIDC (OGEM_OIDC_* unset in tests) nor any organization's IdP.
    page = Client().get("/accounts/login/")
    assert page.status_code == 200
    assert b"SSO" not in page.content
    assert b'id="sso-discover"' not in page.content
    assert b"your organization" not in page.content
    idp = _org_idp(["acme.test"], enabled=False)  # a disabled IdP signs no one in
    assert b'id="sso-discover"' not in Client().get("/accounts/login/").content
    idp.enabled = True
    idp.save(update_fields=["enabled"])
    page = Client().get("/accounts/login/")
    assert b'id="sso-discover"' in page.content
    assert b">Continue with company SSO</button>" in page.content
    assert b'id="sso-login"' not in page.content


def test_disabled_idp_is_not_discovered() -> None:
    _org_idp(["acme.test"], enabled=False)
    assert Client().get("/sso/", {"email": "dana@acme.test"}).status_code == 404


def test_just_in_time_membership_never_lowers_an_existing_role() -> None:
    idp = _org_idp(["acme.test"], default_role=Role.VIEWER)
    team = TeamFactory(organization=idp.organization)
    idp.default_team = team
    idp.save()
    admin = MembershipFactory(organization=idp.organization, role=Role.ORG_ADMIN).user
    created = identity_provider_membership_grant(identity_provider=idp, user=admin)
    assert [(m.team_id, m.role) for m in created] == [(team.pk, Role.VIEWER)]
    assert set(Membership.objects.filter(user=admin).values_list("team_id", "role")) == {
        (None, Role.ORG_ADMIN),
        (team.pk, Role.VIEWER),
    }
    assert identity_provider_membership_grant(identity_provider=idp, user=admin) == []


def test_admin_validates_organization_idp_settings() -> None:
    from tenants.portal.admin import OrganizationIdentityProviderForm

    existing = _org_idp(["acme.test"])
    stranger_team = TeamFactory()
    app = SocialApp.objects.create(provider="openid_connect", provider_id="beta", name="Beta")
    form = OrganizationIdentityProviderForm(
        data={
            "organization": existing.organization.pk,
            "social_app": app.pk,
            "domains": '["Beta.test", "ACME.test"]',
            "default_role": Role.MEMBER,
            "default_team": stranger_team.pk,
            "enabled": True,
        }
    )
    assert not form.is_valid()
    assert form.errors["domains"] == ["acme.test already signs in through Acme (Acme Entra)."]
    assert form.errors["default_team"] == ["The team belongs to another organization."]
    form = OrganizationIdentityProviderForm(
        data={
            "organization": existing.organization.pk,
            "social_app": app.pk,
            "domains": '["@Beta.test", " beta.example "]',
            "default_role": Role.VIEWER,
            "enabled": True,
        }
    )
    assert form.is_valid(), form.errors
    assert form.save().domains == ["beta.example", "beta.test"]


def test_password_sign_up_is_closed_unless_enabled(settings) -> None:  # type: ignore[no-untyped-def]
    data = {
        "email": "eve@example.com",
        "username": "eve",
        "password1": "a long passphrase 42",
        "password2": "a long passphrase 42",
    }
    closed = Client().post("/accounts/signup/", data)
    assert closed.status_code == 200
    assert b"Sign Up Closed" in closed.content
    assert not User.objects.filter(username="eve").exists()
    settings.OGEM_PORTAL_SIGNUP = True
    opened = Client().post("/accounts/signup/", data)
    assert opened.status_code == 302
    assert User.objects.filter(username="eve", email="eve@example.com").exists()


def test_just_in_time_membership_respects_a_scim_deactivation() -> None:
    idp = _org_idp(["acme.test"])
    person = UserFactory()
    ScimUser.objects.create(organization=idp.organization, user=person, active=False)
    assert identity_provider_membership_grant(identity_provider=idp, user=person) == []
    assert not Membership.objects.filter(user=person).exists()
    ScimUser.objects.filter(user=person).update(active=True)
    granted = identity_provider_membership_grant(identity_provider=idp, user=person)
    assert [(m.organization_id, m.team_id, m.role) for m in granted] == [
        (idp.organization.pk, None, Role.MEMBER)
    ]
    event = AuditEvent.objects.get(action="membership.create", target_id=str(granted[0].pk))
    assert event.organization_id == idp.organization.pk


def test_proxy_admins_configure_organization_idps_in_admin() -> None:
    admin = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(User.objects.get(pk=admin.pk))
    assert client.get("/admin/tenants/organizationidentityprovider/add/").status_code == 200
    org_admin = MembershipFactory(role=Role.ORG_ADMIN).user
    org_admin.is_staff = True
    org_admin.save(update_fields=["is_staff"])
    other = Client()
    other.force_login(User.objects.get(pk=org_admin.pk))
    assert other.get("/admin/tenants/organizationidentityprovider/add/").status_code == 403
