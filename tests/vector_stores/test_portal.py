"""The portal's vector stores page: a member sees their tenant's stores (never another's) with
their files by status and a progress bar; indexing progress reaches their page's live socket
(and no other tenant's)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from django.test import Client

from tests.batches.test_live_updates import _events, _live, _nothing, _session_cookie, _tenants
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.live import LiveServer, usage_record_now, wait_for

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _usage_drained(live_ogem: LiveServer) -> Iterator[None]:
    """The indexing's embedding calls are usage of the test's key: recorded before the next
    test, whose keys may take the same ids."""
    tasks = live_ogem.server.server_state.tasks  # uvicorn's: one per request or socket
    before = set(tasks)
    yield
    # Usage is accounted after a response, in its request's task: once the test's tasks ended.
    wait_for(lambda: not set(tasks) - before, what="the test's requests' ends")
    usage_record_now()


def _sdk(live: LiveServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=secret, max_retries=0)


def _upload(client: openai.OpenAI, text: str, name: str = "notes.md") -> Any:
    return client.files.create(file=(name, io.BytesIO(text.encode())), purpose="assistants")


def _stranger() -> tuple[Any, str]:
    """A member of another organization, with a key of their own there."""
    from keys.services import key_create

    organization = OrganizationFactory()
    user = UserFactory()
    MembershipFactory(user=user, organization=organization)
    issued = key_create(name="other key", organization=organization, user=user)
    return user, issued.secret


def test_the_page_shows_the_members_stores_with_their_file_counts(
    live_ogem: LiveServer,
) -> None:
    from tenants.models import User

    member, _, secret, _ = _tenants()
    stranger, stranger_secret = _stranger()
    client = _sdk(live_ogem, secret)
    good = _upload(client, "Ogem routes requests to many providers. " * 20)
    bad = _upload(client, "\x00binary\x00", name="blob.bin")
    store = client.vector_stores.create(name="handbook", file_ids=[good.id, bad.id])
    for file_id in (good.id, bad.id):
        client.vector_stores.files.poll(file_id, vector_store_id=store.id)
    theirs = _sdk(live_ogem, stranger_secret).vector_stores.create(name="secret plans")

    page = Client()
    page.force_login(User.objects.get(pk=member.pk))
    response = page.get("/vector-stores/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-vector-store="{store.id}"' in html
    assert "handbook" in html
    row = html.split(f'data-vector-store="{store.id}"', 1)[1].split("</tr>", 1)[0]
    assert '<td data-field="completed">1</td>' in row
    assert '<td data-field="failed">1</td>' in row
    assert '<td data-field="in_progress">0</td>' in row
    assert 'value="100"' in row and ">completed<" in row
    assert theirs.id not in html and "secret plans" not in html

    other = Client()
    other.force_login(User.objects.get(pk=stranger.pk))
    html = other.get("/vector-stores/").content.decode()
    assert theirs.id in html and store.id not in html
    # Signed out: the sign-in page, not the list.
    assert Client().get("/vector-stores/").status_code == 302


def test_indexing_progress_reaches_only_its_tenants_pages(live_ogem: LiveServer) -> None:
    member, other, secret, _ = _tenants()
    client = _sdk(live_ogem, secret)
    files = [_upload(client, f"Chapter {n}: vector stores index files. " * 10) for n in range(3)]
    with (
        _live(live_ogem, cookie=_session_cookie(member)) as mine,
        _live(live_ogem, cookie=_session_cookie(other)) as theirs,
    ):
        # Both pages joined their groups: the socket is accepted only after they did.
        store = client.vector_stores.create(file_ids=[f.id for f in files])
        events = _events(
            mine,
            until=lambda e: (
                e["type"] == "vector_store.progress" and e["file_counts"]["completed"] == 3
            ),
        )
        progress = [e for e in events if e["type"] == "vector_store.progress"]
        assert {e["vector_store_id"] for e in progress} == {store.id}
        assert progress[-1]["status"] == "completed"
        assert progress[-1]["file_counts"] == {
            "in_progress": 0,
            "completed": 3,
            "cancelled": 0,
            "failed": 0,
            "total": 3,
        }
        _nothing(theirs)


def test_the_vector_stores_page_progress_bar_follows_live_updates(
    live_ogem: LiveServer,
) -> None:
    from django.conf import settings
    from playwright.sync_api import expect

    from tests.portal.conftest import chromium_page

    member, _, secret, _ = _tenants()
    cookie = _session_cookie(member)
    client = _sdk(live_ogem, secret)
    files = [_upload(client, f"Part {n}: indexing follows live. " * 10) for n in range(3)]
    store = client.vector_stores.create(name="live")
    with chromium_page() as page:
        page.context.add_cookies(
            [{"name": settings.SESSION_COOKIE_NAME, "value": cookie, "url": live_ogem.url}]
        )
        page.goto(f"{live_ogem.url}/vector-stores/")
        row = page.locator(f'tr[data-vector-store="{store.id}"]')
        row.wait_for()
        expect(page.locator("#vector-store-table")).to_have_attribute("data-live", "1")
        page.evaluate("window.__sameDocument = true")
        assert row.locator('[data-field="total"]').inner_text() == "0"
        client.vector_stores.file_batches.create(
            vector_store_id=store.id, file_ids=[f.id for f in files]
        )
        expect(row.locator('[data-field="completed"]')).to_have_text("3", timeout=60_000)
        expect(row.locator('[data-field="status"]')).to_have_text("completed")
        assert row.locator('[data-field="progress"]').get_attribute("value") == "100"
        assert row.locator('[data-field="done"]').inner_text() == "3"
        assert row.locator('[data-field="total"]').inner_text() == "3"
        # Updated in place: the page was never reloaded.
        assert page.evaluate("window.__sameDocument === true")
