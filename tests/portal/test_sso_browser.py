"""SSO end to end in a real browser: a local OpenID Connect provider, Chromium driven by
Playwright, the live Ogem. The person discovers their company's IdP by email domain, signs in,
joins the organization just in time, creates a key in the portal and uses it on /v1 (from the
playground in the browser and with the official SDK)."""

from __future__ import annotations

import openai
import pytest
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.contrib.sites.models import Site
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from keys.models import VirtualKey
from ogem_site.hashing import secret_prefix
from tenants.models import AuditEvent, Membership, OrganizationIdentityProvider, Role, User
from tenants.portal.services import social_app_secret_set
from tests.factories import OrganizationFactory, TeamFactory
from tests.live import LiveServer
from tests.portal.conftest import IDP_PROVIDER_ID, LocalIdp, chromium_page

pytestmark = pytest.mark.live


def test_sign_in_through_sso_create_a_key_and_use_it(
    live_ogem: LiveServer, local_idp: LocalIdp
) -> None:
    organization = OrganizationFactory(name="Acme", slug="acme")
    team = TeamFactory(organization=organization, name="Platform", slug="platform")
    app = SocialApp(
        provider="openid_connect",
        provider_id=IDP_PROVIDER_ID,
        name="Acme Okta",
        client_id=local_idp.client_id,
        settings={"server_url": local_idp.issuer},
    )
    # Stored encrypted, as admin stores it: the sign-in below needs it decrypted for the IdP.
    social_app_secret_set(app=app, secret=local_idp.client_secret)
    app.save()
    assert local_idp.client_secret not in SocialApp.objects.get(pk=app.pk).secret
    app.sites.add(Site.objects.get_current())
    OrganizationIdentityProvider.objects.create(
        organization=organization,
        social_app=app,
        domains=["acme.test"],
        default_role=Role.MEMBER,
        default_team=team,
    )
    with chromium_page() as page:
        page.goto(f"{live_ogem.url}/")
        assert page.url.startswith(f"{live_ogem.url}/accounts/login/")
        page.get_by_label("Work email").fill(local_idp.email)
        page.click("#sso-discover")
        assert "Acme signs in with Acme Okta" in page.inner_text("main")
        page.click("#sso-continue")

        # oidc-provider's sign-in form, on the IdP's own origin.
        page.wait_for_url(f"{local_idp.issuer}/**")
        page.fill("input[name=login]", local_idp.user)
        page.fill("input[name=password]", "any password")
        page.click("button[type=submit]")

        page.wait_for_url(f"{live_ogem.url}/")
        assert page.inner_text("h1") == "Welcome, Alice"

        page.click("nav >> text=Keys")
        page.fill("#id_name", "from the browser")
        page.select_option("#id_team", str(team.pk))
        page.click("#create-key")
        secret = page.input_value("#new-secret")
        assert secret.startswith("sk-")
        page.reload()
        # Shown once: reloading (which re-sends the POST) neither shows it nor makes a key.
        assert page.locator("#new-secret").count() == 0
        assert "already submitted" in page.inner_text("main")

        # The playground streams a reply from /v1 with that key, in the browser.
        page.click("nav >> text=Playground")
        # Its script must have bound the form: a click before that submits the bare form, which
        # reloads the page (seen on loaded CI runs: no status, no reply).
        page.wait_for_load_state("load")
        page.fill("#pg-key", secret)
        page.select_option("#pg-model", "mock-chat")
        page.fill("#pg-message", "stream to me")
        page.click("#pg-send")
        answer = page.locator(".msg-assistant .msg-body")
        try:
            answer.filter(has_text="Mock reply to: stream to me").wait_for()
        except PlaywrightTimeout:  # once on a loaded CI machine: say what the page showed
            shown = page.inner_text("#pg-status"), answer.all_inner_texts()
            raise AssertionError(f"no streamed reply; status and replies: {shown}") from None
        assert answer.inner_text() == "Mock reply to: stream to me"
        page.locator("#pg-status", has_text="tokens").wait_for()

    client = openai.OpenAI(api_key=secret, base_url=f"{live_ogem.url}/v1", max_retries=0)
    reply = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "hello from SSO"}]
    )
    assert reply.choices[0].message.content == "Mock reply to: hello from SSO"

    user = User.objects.get(email=local_idp.email)
    assert SocialAccount.objects.get(user=user).uid == local_idp.user
    assert set(Membership.objects.filter(user=user).values_list("team_id", "role")) == {
        (None, Role.MEMBER),
        (team.pk, Role.MEMBER),
    }
    key = VirtualKey.objects.get(user=user)
    assert key.prefix == secret_prefix(secret)
    assert (key.name, key.user_id, key.team_id) == ("from the browser", user.pk, team.pk)
    created = AuditEvent.objects.get(action="key.create", target_id=str(key.pk))
    assert (created.surface, created.actor, created.organization_id) == (
        "portal",
        f"user:{user.pk}",
        organization.pk,
    )
    assert "digest" not in (created.after or {})


def test_instance_wide_sso_button_signs_in_without_granting_any_membership(
    live_ogem: LiveServer, local_idp: LocalIdp, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_OIDC_ISSUER = local_idp.issuer
    settings.OGEM_OIDC_CLIENT_ID = local_idp.client_id
    settings.OGEM_OIDC_NAME = "Sign in with Example ID"
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "OAUTH_PKCE_ENABLED": True,
            "APPS": [
                {
                    "provider_id": "sso",
                    "name": "Sign in with Example ID",
                    "client_id": local_idp.client_id,
                    "secret": local_idp.client_secret,
                    "settings": {"server_url": local_idp.issuer},
                }
            ],
        }
    }
    with chromium_page() as page:
        page.goto(f"{live_ogem.url}/keys/")
        page.get_by_role("button", name="Sign in with Example ID").click()
        page.wait_for_url(f"{local_idp.issuer}/**")
        page.fill("input[name=login]", local_idp.user)
        page.fill("input[name=password]", "any password")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_ogem.url}/keys/")
        assert page.inner_text("h1") == "Keys"
        assert page.locator("#create-key").count() == 0

    user = User.objects.get(email=local_idp.email)
    assert SocialAccount.objects.get(user=user).provider == "sso"
    assert not Membership.objects.filter(user=user).exists()
