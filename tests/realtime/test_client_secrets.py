"""Ephemeral client secrets: minted with the SDK, stored as digests, bound to their key, model
and session configuration, refused once expired or revoked, and confined to their tenant."""

from __future__ import annotations

import json
from datetime import timedelta

import openai
import pytest
from django.utils import timezone
from websockets.exceptions import InvalidStatus

from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.realtime.helpers import events_until, key_of, raw_connect, realtime_logs, send, user_text


def _client(live_ogem, secret: str) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)


def _mint(live_ogem, secret: str, **session: object) -> str:  # type: ignore[no-untyped-def]
    minted = _client(live_ogem, secret).realtime.client_secrets.create(
        session={"type": "realtime", "model": "voice", **session},  # type: ignore[typeddict-item]
    )
    return minted.value


def _refused(live_ogem, **options: object) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidStatus) as refused:
        raw_connect(live_ogem, **options)  # type: ignore[arg-type]
    return refused.value.response.status_code, json.loads(refused.value.response.body)["error"]


def test_a_client_secret_opens_a_session_of_its_key_with_its_configuration(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    from gateway.models import RealtimeClientSecret

    emulator = realtime_model()
    secret = make_key()
    before = int(timezone.now().timestamp())
    minted = _client(live_ogem, secret).realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 120},
        session={
            "type": "realtime",
            "model": "voice",
            "instructions": "Be brief.",
            "output_modalities": ["text"],
        },
    )
    after = int(timezone.now().timestamp())
    assert minted.value.startswith("ek_")
    assert before + 120 <= minted.expires_at <= after + 121
    assert minted.session.model == "voice"
    assert minted.session.instructions == "Be brief."
    # Only a digest is stored.
    [row] = RealtimeClientSecret.objects.all()
    stored = json.dumps([row.prefix, row.digest, row.model, row.session])
    assert minted.value not in stored and minted.value[3:] not in stored
    with _client(live_ogem, minted.value).realtime.connect(model="voice") as conn:
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi"}],
            }
        )
        conn.response.create()
        text = ""
        for event in conn:
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                break
    assert text == "Hello from the realtime emulator."
    first = emulator.connections[0].events[0]
    assert first["type"] == "session.update"
    assert first["session"]["instructions"] == "Be brief."
    # The session is the minting key's: its usage, its limits.
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert log.model == "voice"


def test_the_beta_sessions_route_mints_a_secret_a_browser_can_use(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    realtime_model()
    session = _client(live_ogem, make_key()).beta.realtime.sessions.create(
        model="voice", modalities=["text"], instructions="Hello."
    )
    value = session.client_secret.value
    assert value.startswith("ek_")
    assert session.instructions == "Hello."
    offered = ["realtime", f"openai-insecure-api-key.{value}", "openai-beta.realtime-v1"]
    with raw_connect(live_ogem, subprotocols=offered) as ws:
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create"})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"


def test_a_client_secret_is_bound_to_its_model(  # type: ignore[no-untyped-def]
    realtime_model, realtime_emulator, live_ogem, make_key
) -> None:
    other = Deployment(
        id="test:voice-2",
        model_name="voice-2",
        provider="openai",
        upstream_model="gpt-realtime-mini",
        api_base=f"{realtime_emulator.url}/v1",
        api_key=UPSTREAM_KEY,
    )
    realtime_model(other)
    value = _mint(live_ogem, make_key())
    status, error = _refused(live_ogem, key=value, query="model=voice-2")
    assert (status, error["code"]) == (403, "model_not_allowed")
    with raw_connect(live_ogem, key=value, query="") as ws:  # no model: the secret's
        assert events_until(ws, "session.created")
    assert realtime_emulator.connections[-1].model == "gpt-realtime"


def test_a_secret_dies_with_its_key_and_at_its_expiry(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    from gateway.models import RealtimeClientSecret
    from keys.services import key_revoke

    realtime_model()
    revoked_key = make_key()
    revoked = _mint(live_ogem, revoked_key)
    key_revoke(key=key_of(revoked_key))
    assert _refused(live_ogem, key=revoked)[0] == 401
    expired = _mint(live_ogem, make_key())
    RealtimeClientSecret.objects.filter(prefix=expired[3:11]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert _refused(live_ogem, key=expired) == (
        401,
        {
            "message": "Invalid or expired client secret.",
            "type": "authentication_error",
            "param": None,
            "code": "invalid_client_secret",
        },
    )
    # A forged secret of the right shape is refused the same way.
    assert _refused(live_ogem, key=expired[:11] + "x" * 40)[0] == 401


def test_secrets_stay_in_their_tenant(  # type: ignore[no-untyped-def]
    realtime_model, realtime_emulator, live_ogem, make_key
) -> None:
    from tests.factories import OrganizationFactory, TeamFactory

    mine, theirs = OrganizationFactory(), OrganizationFactory()
    private = Deployment(
        id="test:private-voice",
        model_name="private-voice",
        provider="openai",
        upstream_model="gpt-realtime",
        api_base=f"{realtime_emulator.url}/v1",
        api_key=UPSTREAM_KEY,
        organization_id=mine.pk,
    )
    realtime_model(private)
    my_key = make_key(team=TeamFactory(organization=mine))
    their_key = make_key(team=TeamFactory(organization=theirs))
    # Another organization cannot mint a secret for my model, nor open it: it does not exist.
    with pytest.raises(openai.NotFoundError):
        _mint(live_ogem, their_key, model="private-voice")
    assert _refused(live_ogem, key=their_key, query="model=private-voice")[0] == 404
    # My secret opens my model and is billed to my key, never to another.
    value = _mint(live_ogem, my_key, model="private-voice")
    with raw_connect(live_ogem, key=value, query="model=private-voice") as ws:
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create"})
        events_until(ws, "response.done")
    assert len(realtime_logs(key_id=key_of(my_key).pk)) == 1
    assert realtime_logs(key_id=key_of(their_key).pk) == []
    # A secret of their key cannot reach my model either: it is bound to theirs.
    their_value = _mint(live_ogem, their_key)
    assert _refused(live_ogem, key=their_value, query="model=private-voice")[0] == 403


def test_a_secret_is_refused_outside_the_realtime_api(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    realtime_model()
    value = _mint(live_ogem, make_key())
    with pytest.raises(openai.AuthenticationError):
        _client(live_ogem, value).chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "hi"}]
        )


def test_minting_checks_its_input(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key, master_key
) -> None:
    import httpx

    realtime_model()
    url = f"{live_ogem.url}/v1/realtime/client_secrets"
    secret = make_key()
    cases = [
        (secret, {"session": {"type": "realtime"}}, 400, "session.model"),
        (secret, {"session": "voice"}, 400, "session"),
        (
            secret,
            {"session": {"model": "voice"}, "expires_after": {"seconds": 5}},
            400,
            "expires_after.seconds",
        ),
        (secret, {"session": {"model": "no-such-model"}}, 404, "model"),
        (secret, {"session": {"model": "voice", "instructions": "a\x00b"}}, 400, "session"),
        (master_key, {"session": {"model": "voice"}}, 400, None),
    ]
    for key, body, status, param in cases:
        answer = httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == status, body
        assert answer.json()["error"]["param"] == param
