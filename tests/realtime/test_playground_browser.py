"""The portal playground's realtime text mode: the portal mints a one-minute client secret for
one of the user's own keys, and Chromium (driven by Playwright, as the SSO test does) opens
/v1/realtime with it, sends text and shows the response; the session is the key's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.live import LiveServer
from tests.realtime.helpers import realtime_logs

pytestmark = pytest.mark.live


def _member_with_key() -> tuple[Any, Any, Client]:
    from keys.services import key_create
    from tenants.models import User

    team = TeamFactory(organization=OrganizationFactory())
    user = UserFactory()
    MembershipFactory(user=user, organization=team.organization, team=team)
    key = key_create(name="my realtime key", team=team, user=user).key
    client = Client()
    client.force_login(User.objects.get(pk=user.pk))  # the password as stored
    return user, key, client


def test_the_playground_opens_a_realtime_session_with_an_ephemeral_secret(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem: LiveServer
) -> None:
    from playwright.sync_api import expect

    from gateway.models import RealtimeClientSecret
    from tests.portal.conftest import chromium_page

    emulator = realtime_model()
    _, key, client = _member_with_key()
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value
    with chromium_page() as page:
        page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_ogem.url}]
        )
        page.goto(f"{live_ogem.url}/playground/")
        page.select_option("#rt-key", str(key.pk))
        page.select_option("#rt-model", "voice")
        page.fill("#rt-message", "Hello over realtime")
        page.click("#rt-send")
        answer = page.locator("#rt-transcript .msg-assistant .msg-body")
        expect(answer).to_have_text("Hello from the realtime emulator.")
        expect(page.locator("#rt-status")).to_have_text("Done: 10 tokens.")
        # A second message goes over the same session.
        page.fill("#rt-message", "Again")
        page.click("#rt-send")
        expect(answer.nth(1)).to_have_text("Hello from the realtime emulator.")
        page.click("#rt-close")
        expect(page.locator("#rt-status")).to_have_text("Session closed.")
    [upstream] = emulator.connections
    assert upstream.closed.wait(10)
    # The secret's session configuration went first, then the page's events.
    assert upstream.events[0] == {
        "type": "session.update",
        "session": {"type": "realtime", "output_modalities": ["text"]},
    }
    texts = [e["item"]["content"][0]["text"] for e in upstream.of_type("conversation.item.create")]
    assert texts == ["Hello over realtime", "Again"]
    logs = realtime_logs(key_id=key.pk)
    assert len(logs) == 2 and all(log.status_code == 200 for log in logs)
    [secret] = RealtimeClientSecret.objects.filter(key_id=key.pk)
    assert secret.model == "voice"
    assert round((secret.expires_at - secret.created_at).total_seconds()) == 60


def test_the_playground_mints_secrets_for_the_users_own_keys_only(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem: LiveServer
) -> None:
    from keys.services import key_create

    realtime_model()
    _, key, client = _member_with_key()
    url = "/playground/realtime-secret/"
    answer = client.post(url, {"key_id": key.pk, "model": "voice"})
    assert answer.status_code == 200 and answer.json()["value"].startswith("ek_")
    # Another member's key of the same team, a model without Realtime, a bad form, no session.
    colleague = UserFactory()
    MembershipFactory(user=colleague, organization=key.organization, team=key.team)
    theirs = key_create(name="theirs", team=key.team, user=colleague).key
    assert client.post(url, {"key_id": theirs.pk, "model": "voice"}).status_code in (403, 404)
    refused = client.post(url, {"key_id": key.pk, "model": "mock-chat"})
    assert refused.status_code == 400
    assert json.loads(refused.content)["error"]["code"] == "unsupported_endpoint"
    assert client.post(url, {"model": "voice"}).status_code == 400
    assert Client().post(url, {"key_id": key.pk, "model": "voice"}).status_code == 302
    from keys.services import key_revoke

    key_revoke(key=key)
    assert client.post(url, {"key_id": key.pk, "model": "voice"}).status_code == 401
