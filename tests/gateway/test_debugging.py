"""Request debugging through the live server and the official SDK: the master key's
`x-ogem-debug` header and a key's debug mode capture the request and its answer (streams too),
redacted and bounded; anyone else's header is ignored; captures expire and are purged; admin
shows each organization its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import openai
import pytest
from django.test import Client
from django.utils import timezone

from gateway import debugging
from gateway.models import DebugCapture
from gateway.tasks import debug_captures_purge
from keys.services import key_create
from tenants.models import Role
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory
from tests.live import LiveServer, wait_for

HELLO = [{"role": "user", "content": "Hello, world!"}]


def _sdk(live: LiveServer, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live.url}/v1", api_key=secret, max_retries=0)


def _captured(request_id: str) -> DebugCapture:
    return wait_for(
        lambda: DebugCapture.objects.filter(request_id=request_id).first(),
        what=f"the capture of {request_id}",
        every=0.05,
    )


def _none_of(request_id: str) -> None:
    # A capture's write is scheduled before its answer leaves (debug_answer) and stays pending
    # until its row is in: once none is pending, a capture of this request would be there.
    wait_for(lambda: not debugging._pending, what="the pending capture writes")
    assert not DebugCapture.objects.filter(request_id=request_id).exists()


def _debug_key(**fields):  # type: ignore[no-untyped-def]
    team = TeamFactory()
    until = datetime.now(tz=UTC) + timedelta(hours=1)
    metadata = {"debug_until": until.isoformat()}
    return key_create(name="debugged", team=team, metadata=metadata, **fields)


def test_master_key_header_captures_request_and_answer(live_ogem, master_key) -> None:
    raw = _sdk(live_ogem, master_key).chat.completions.with_raw_response.create(
        model="mock-chat",
        messages=[{"role": "user", "content": "Hello, world! My key is sk-abcdefghijklmnop1234"}],
        extra_headers={"x-ogem-debug": "true", "x-request-id": "debug-master-1"},
        extra_body={"metadata_api_key": "do-not-keep"},
    )
    assert raw.headers["x-ogem-debug"] == "captured"
    assert raw.parse().choices[0].message.content.startswith("Mock reply to: Hello, world!")
    capture = _captured("debug-master-1")
    assert capture.reason == "header"
    assert (capture.organization_id, capture.key_id) == (None, None)
    assert capture.endpoint == "chat/completions"
    assert capture.deployment == "builtin:mock-chat"
    assert capture.status_code == 200
    assert capture.stream is False
    assert '"model":"mock-chat"' in capture.request_body
    assert "sk-[redacted]" in capture.request_body
    assert "abcdefghijklmnop1234" not in capture.request_body
    assert '"metadata_api_key":"[redacted]"' in capture.request_body
    assert "Mock reply to: Hello, world!" in capture.response_body
    assert capture.request_headers["x-request-id"] == "debug-master-1"
    assert "authorization" not in {name.lower() for name in capture.request_headers}
    everything = f"{capture.request_headers}{capture.request_body}{capture.response_body}"
    assert master_key not in everything
    assert capture.expires_at - capture.created_at == timedelta(hours=24)


def test_without_the_header_nothing_is_captured(live_ogem, master_key) -> None:
    raw = _sdk(live_ogem, master_key).chat.completions.with_raw_response.create(
        model="mock-chat", messages=HELLO, extra_headers={"x-request-id": "debug-off-1"}
    )
    assert "x-ogem-debug" not in raw.headers
    _none_of("debug-off-1")


def test_a_key_without_debug_mode_cannot_ask_by_header(live_ogem) -> None:
    issued = key_create(name="plain", team=TeamFactory())
    raw = _sdk(live_ogem, issued.secret).chat.completions.with_raw_response.create(
        model="mock-chat",
        messages=HELLO,
        extra_headers={"x-ogem-debug": "true", "x-request-id": "debug-ignored-1"},
    )
    assert "x-ogem-debug" not in raw.headers
    _none_of("debug-ignored-1")


def test_key_debug_mode_captures_streams(live_ogem) -> None:
    issued = _debug_key()
    client = _sdk(live_ogem, issued.secret)
    with client.chat.completions.with_streaming_response.create(
        model="mock-chat",
        messages=HELLO,
        stream=True,
        extra_headers={"x-request-id": "debug-stream-1"},
    ) as response:
        assert response.headers["x-ogem-debug"] == "captured"
        chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith(
        "Mock reply to: Hello, world!"
    )
    capture = _captured("debug-stream-1")
    assert capture.reason == "key"
    assert capture.stream is True
    assert capture.key_id == issued.key.pk
    assert capture.team_id == issued.key.team_id
    assert capture.organization_id == issued.key.organization_id
    assert capture.response_body.startswith("data: {")
    assert "data: [DONE]" in capture.response_body
    assert '"stream":true' in capture.request_body


def test_an_expired_debug_mode_is_off(live_ogem) -> None:
    past = (datetime.now(tz=UTC) - timedelta(minutes=1)).isoformat()
    issued = key_create(name="was debugged", team=TeamFactory(), metadata={"debug_until": past})
    raw = _sdk(live_ogem, issued.secret).chat.completions.with_raw_response.create(
        model="mock-chat", messages=HELLO, extra_headers={"x-request-id": "debug-expired-1"}
    )
    assert "x-ogem-debug" not in raw.headers
    _none_of("debug-expired-1")


def test_errors_are_captured_and_bodies_bounded(live_ogem, settings) -> None:
    settings.OGEM_DEBUG_MAX_BYTES = 64
    issued = _debug_key(models=["mock-chat"])
    client = _sdk(live_ogem, issued.secret)
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client.chat.completions.create(
            model="mock-embed", messages=HELLO, extra_headers={"x-request-id": "debug-error-1"}
        )
    assert raised.value.response.headers["x-ogem-debug"] == "captured"
    capture = _captured("debug-error-1")
    assert capture.status_code == 403
    assert capture.response_body.startswith('{"error":')
    assert len(capture.response_body.encode()) <= 64
    assert capture.truncated is True


def test_debug_mode_is_set_through_the_api(live_ogem, master_key) -> None:
    team = TeamFactory()
    admin = httpx.Client(base_url=live_ogem.url, headers={"Authorization": f"Bearer {master_key}"})
    created = admin.post("/api/v1/keys", json={"name": "api", "team": team.pk}).json()
    bad = admin.patch(f"/api/v1/keys/{created['id']}", json={"metadata": {"debug_until": "soon"}})
    assert bad.status_code == 400
    assert "debug_until must be an ISO 8601 time" in bad.text
    until = (datetime.now(tz=UTC) + timedelta(minutes=30)).isoformat()
    changed = admin.patch(
        f"/api/v1/keys/{created['id']}", json={"metadata": {"debug_until": until}}
    )
    assert changed.status_code == 200, changed.text
    raw = _sdk(live_ogem, created["key"]).chat.completions.with_raw_response.create(
        model="mock-chat", messages=HELLO, extra_headers={"x-request-id": "debug-api-1"}
    )
    assert raw.headers["x-ogem-debug"] == "captured"
    assert _captured("debug-api-1").reason == "key"


def _capture(organization_id: int | None, *, expires_in: timedelta) -> DebugCapture:
    now = timezone.now()
    return DebugCapture.objects.create(
        request_id=f"seeded-{organization_id}-{expires_in.total_seconds()}",
        organization_id=organization_id,
        reason="key",
        endpoint="chat/completions",
        request_body='{"model": "mock-chat"}',
        response_body='{"id": "x"}',
        created_at=now,
        expires_at=now + expires_in,
    )


@pytest.mark.django_db
def test_expired_captures_are_purged() -> None:
    kept = _capture(None, expires_in=timedelta(hours=1))
    _capture(None, expires_in=timedelta(seconds=-1))
    assert debug_captures_purge() == 1
    assert list(DebugCapture.objects.all()) == [kept]


@pytest.mark.django_db
def test_admin_shows_each_organization_its_own(admin_client: Client) -> None:
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    own = _capture(mine.pk, expires_in=timedelta(hours=1))
    other = _capture(theirs.pk, expires_in=timedelta(hours=1))
    expired = _capture(mine.pk, expires_in=timedelta(seconds=-1))
    owner = UserFactory()
    owner.save(update_fields=["password"])
    MembershipFactory(user=owner, organization=mine, role=Role.ORG_ADMIN)
    client = Client()
    client.force_login(owner)

    listing = client.get("/admin/gateway/debugcapture/")
    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [own]
    detail = client.get(f"/admin/gateway/debugcapture/{own.pk}/change/")
    assert detail.status_code == 200
    assert "&quot;model&quot;: &quot;mock-chat&quot;" in detail.content.decode()
    assert client.get(f"/admin/gateway/debugcapture/{other.pk}/change/").status_code == 404
    assert client.get(f"/admin/gateway/debugcapture/{expired.pk}/change/").status_code == 404

    everything = admin_client.get("/admin/gateway/debugcapture/")
    assert set(everything.context["cl"].result_list) == {own, other}
