"""The portal's live updates over Channels (/portal/ws/live) through the live server: a batch's
progress and its key's usage reach the pages of its own tenant, never another's; the socket
needs the portal session and the portal's origin; the batches page's progress bar follows them
in Chromium."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.batches.conftest import chat_lines, upload
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.live import LiveServer

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


def _session_cookie(user: Any) -> str:
    from tenants.models import User

    client = Client()
    client.force_login(User.objects.get(pk=user.pk))  # the password as stored
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def _live(live: LiveServer, *, cookie: str | None, origin: str | None = None) -> ClientConnection:
    headers = {"Origin": origin or live.url}
    if cookie is not None:
        headers["Cookie"] = f"{settings.SESSION_COOKIE_NAME}={cookie}"
    return connect(
        live.url.replace("http://", "ws://") + "/portal/ws/live",
        additional_headers=headers,
        open_timeout=10,
    )


def _events(ws: ClientConnection, *, until: Callable[[dict[str, Any]], bool]) -> list[dict]:
    seen = []
    while True:
        event = json.loads(ws.recv(timeout=30))
        seen.append(event)
        if until(event):
            return seen


def _nothing(ws: ClientConnection, seconds: float = 0.5) -> None:
    with pytest.raises(TimeoutError):
        ws.recv(timeout=seconds)


def _tenants() -> tuple[Any, Any, Any, Any]:
    """A member of team A (organization A) with a key there, and a member of organization B."""
    from keys.services import key_create

    team = TeamFactory(organization=OrganizationFactory())
    member = UserFactory()
    MembershipFactory(user=member, organization=team.organization, team=team)
    other = UserFactory()
    MembershipFactory(user=other, organization=OrganizationFactory())
    issued = key_create(name="batch key", team=team, user=member)
    return member, other, issued.secret, team


def test_a_batch_progress_and_key_usage_reach_only_their_tenants_pages(
    live_ogem: LiveServer,
) -> None:
    import openai

    from billing.services import usage_drain
    from keys.models import VirtualKey
    from ogem_site.hashing import secret_prefix

    member, other, secret, _ = _tenants()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
    with (
        _live(live_ogem, cookie=_session_cookie(member)) as mine,
        _live(live_ogem, cookie=_session_cookie(other)) as theirs,
    ):
        # Both pages joined their groups: the socket is accepted only after they did.
        source = upload(client, chat_lines(5))
        batch = client.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        events = _events(
            mine,
            until=lambda e: e["type"] == "batch.progress" and e["status"] == "completed",
        )
        progress = [e for e in events if e["type"] == "batch.progress"]
        assert {e["batch_id"] for e in progress} == {batch.id}
        assert progress[-1]["request_counts"] == {"total": 5, "completed": 5, "failed": 0}
        assert "in_progress" in [e["status"] for e in progress]
        # The key's usage, published when the drain records it.
        usage_drain()
        key = VirtualKey.objects.get(prefix=secret_prefix(secret))
        usage = _events(mine, until=lambda e: e["type"] == "key.usage")[-1]
        assert (usage["key_id"], usage["requests"]) == (key.pk, 5)
        assert usage["prompt_tokens"] > 0
        _nothing(theirs)


def test_the_live_socket_needs_the_portal_session_and_origin(live_ogem: LiveServer) -> None:
    member, *_ = _tenants()
    # Refused before the handshake completes: an HTTP 403, for a stranger and a foreign page.
    with pytest.raises(InvalidStatus) as anonymous:
        _live(live_ogem, cookie=None)
    assert anonymous.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as foreign:
        _live(live_ogem, cookie=_session_cookie(member), origin="https://evil.example")
    assert foreign.value.response.status_code == 403


def test_the_batches_page_progress_bar_follows_live_updates(  # type: ignore[no-untyped-def]
    live_ogem: LiveServer, install_deployments, settings
) -> None:
    import openai
    from playwright.sync_api import expect

    from tests.emulators.fixtures import slow_mock
    from tests.portal.conftest import chromium_page

    settings.OGEM_BATCH_CONCURRENCY = 2
    install_deployments(slow_mock("slow-chat", latency_ms=250))
    member, _, secret, _ = _tenants()
    cookie = _session_cookie(member)
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
    source = upload(client, chat_lines(40, model="slow-chat"))
    with chromium_page() as page:
        page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_ogem.url}]
        )
        page.goto(f"{live_ogem.url}/batches/")  # the browser is warm before the batch starts
        batch = client.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        page.reload()
        row = page.locator(f'tr[data-batch="{batch.id}"]')
        row.wait_for()
        expect(page.locator("#batch-table")).to_have_attribute("data-live", "1")
        page.evaluate("window.__sameDocument = true")
        assert row.locator('[data-field="status"]').inner_text() != "completed"
        expect(row.locator('[data-field="status"]')).to_have_text("completed", timeout=60_000)
        assert row.locator('[data-field="progress"]').get_attribute("value") == "100"
        assert row.locator('[data-field="done"]').inner_text() == "40"
        # Updated in place: the page was never reloaded (the polling fallback did not run).
        assert page.evaluate("window.__sameDocument === true")
