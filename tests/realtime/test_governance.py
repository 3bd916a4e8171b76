"""Governance of Realtime sessions through the live server: concurrent sessions, rate limits per
response, budgets at connect and per response, key revocation, a client leaving mid-response."""

from __future__ import annotations

import base64
import json
import os
import time
from decimal import Decimal

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.live import broadcast_listening
from tests.realtime.helpers import (
    events_until,
    key_of,
    raw_connect,
    realtime_logs,
    send,
    user_text,
)

# Prices of the test deployment (its params): cents make the arithmetic plain.
CHEAP = {"input_cost_per_token": 0.0001, "output_cost_per_token": 0.001}


def _refusal(live_ogem, secret: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidStatus) as refused:
        raw_connect(live_ogem, key=secret)
    response = refused.value.response
    return response.status_code, json.loads(response.body)["error"]


def test_a_keys_concurrent_sessions_are_limited(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    secret = make_key(metadata={"max_realtime_sessions": 1})
    with raw_connect(live_ogem, key=secret) as first:
        events_until(first, "session.created")
        status, error = _refusal(live_ogem, secret)
        assert status == 429
        assert error["code"] == "rate_limit_exceeded"
        assert "concurrent Realtime sessions" in error["message"]
    # The slot is free again once the first session ended (released before its upstream).
    assert emulator.connections[0].closed.wait(10)
    with raw_connect(live_ogem, key=secret) as again:
        assert events_until(again, "session.created")


def test_a_teams_limit_counts_the_sessions_of_all_its_keys(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    from tests.factories import TeamFactory

    realtime_model()
    team = TeamFactory(metadata={"max_realtime_sessions": 1})
    one, other = make_key(team=team), make_key(team=team)
    outsider = make_key()
    with raw_connect(live_ogem, key=one) as first:
        events_until(first, "session.created")
        assert _refusal(live_ogem, other)[0] == 429
        with raw_connect(live_ogem, key=outsider) as elsewhere:  # another team: not counted
            assert events_until(elsewhere, "session.created")


def test_an_exhausted_budget_refuses_the_session(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    status, error = _refusal(live_ogem, make_key(max_budget=Decimal("0")))
    assert (status, error["code"]) == (429, "budget_exceeded")
    assert emulator.connections == []


def test_a_budget_that_runs_out_mid_session_closes_it_with_an_error_event(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model(params=CHEAP)
    emulator.reply = " ".join(["word"] * 40)  # 40 output tokens: $0.04
    secret = make_key(max_budget=Decimal("0.05"))
    bounded = {
        "type": "response.create",
        "response": {"max_output_tokens": 20, "output_modalities": ["text"]},
    }
    with raw_connect(live_ogem, key=secret) as ws:
        send(ws, user_text("Hi"))
        send(ws, {**bounded, "event_id": "first"})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"
        # $0.0401 spent: the next response's worst case (its prompt, 20 tokens out) does not fit.
        send(ws, {**bounded, "event_id": "second"})
        error = events_until(ws, "error")[-1]["error"]
        assert (error["code"], error["event_id"]) == ("budget_exceeded", "second")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    # The refused response.create never reached the upstream; one response was billed.
    assert len(emulator.connections[0].of_type("response.create")) == 1
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert log.cost == Decimal("0.0001") + Decimal("0.04")  # "Hi" is one token in


def test_requests_per_minute_apply_to_each_response(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    secret = make_key(rpm_limit=1)
    with raw_connect(live_ogem, key=secret) as ws:
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create"})
        events_until(ws, "response.done")
        send(ws, {"type": "response.create", "event_id": "again"})
        error = events_until(ws, "error")[-1]["error"]
        assert (error["type"], error["code"], error["event_id"]) == (
            "rate_limit_error",
            "rate_limit_exceeded",
            "again",
        )
        # The session goes on: other events still pass.
        send(ws, user_text("one more thing"))
        assert events_until(ws, "conversation.item.done")
    assert len(emulator.connections[0].of_type("response.create")) == 1


def test_a_revoked_key_closes_its_open_session_and_opens_no_new_one(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    from keys.services import key_revoke

    emulator = realtime_model()
    secret = make_key()
    with raw_connect(live_ogem, key=secret) as ws:
        events_until(ws, "session.created")
        started = time.monotonic()
        key_revoke(key=key_of(secret))
        error = events_until(ws, "error", timeout=1)[-1]["error"]
        assert error["code"] == "invalid_api_key"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=1)
        assert time.monotonic() - started < 1.0  # the bound, revocation to close
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert emulator.connections[0].closed.wait(10)
    status, error = _refusal(live_ogem, secret)
    assert status == 401


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (pub/sub)")
def test_a_key_revoked_by_another_worker_closes_the_session_within_a_second(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    """Another process's revocation reaches the session only through Redis: the row is changed
    with a bare UPDATE (nothing in this process hears of it) and the broadcast is published the
    way another worker's key_revoke publishes it."""
    import orjson
    import redis
    from django.conf import settings
    from django.utils import timezone

    from keys.models import VirtualKey
    from ogem_site.broadcast import KEYS, broadcast_channel

    realtime_model()
    secret = make_key()
    with raw_connect(live_ogem, key=secret) as ws:
        events_until(ws, "session.created")
        broadcast_listening()  # the listener starts with the first session
        key = key_of(secret)
        VirtualKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
        client = redis.Redis.from_url(settings.REDIS_URL)
        try:
            started = time.monotonic()
            client.publish(
                broadcast_channel(), orjson.dumps({"topic": KEYS, "prefixes": [key.prefix]})
            )
        finally:
            client.close()
        assert events_until(ws, "error", timeout=1)[-1]["error"]["code"] == "invalid_api_key"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=1)
        assert time.monotonic() - started < 1.0
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_a_resubscribed_listener_rechecks_every_open_sessions_key(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    """Revocations published while a worker's listener was away are lost: when it subscribes
    again, every open session reads its key again (the KEYS topic's resync)."""
    from django.utils import timezone

    from keys.models import VirtualKey
    from ogem_site.broadcast import _resync

    realtime_model()
    secret, kept = make_key(), make_key()
    with raw_connect(live_ogem, key=secret) as ws, raw_connect(live_ogem, key=kept) as other:
        events_until(ws, "session.created")
        events_until(other, "session.created")
        VirtualKey.objects.filter(pk=key_of(secret).pk).update(revoked_at=timezone.now())
        _resync()
        assert events_until(ws, "error", timeout=1)[-1]["error"]["code"] == "invalid_api_key"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=1)
        send(other, user_text("Hi"))
        send(other, {"type": "response.create"})
        assert events_until(other, "response.done")[-1]["response"]["status"] == "completed"


def test_a_key_change_that_keeps_it_valid_leaves_the_session_open(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    from keys.services import key_update

    realtime_model()
    secret = make_key()
    with raw_connect(live_ogem, key=secret) as ws:
        events_until(ws, "session.created")
        key_update(key=key_of(secret), name="renamed")
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create"})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"


def test_a_client_leaving_mid_response_is_billed_once_for_what_was_generated(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model(params=CHEAP)
    emulator.reply = " ".join(["word"] * 50)
    emulator.delta_delay = 0.05
    secret = make_key()
    with raw_connect(live_ogem, key=secret) as ws:
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create", "response": {"output_modalities": ["text"]}})
        events_until(ws, "response.output_text.delta")
    upstream = emulator.connections[0]
    assert upstream.closed.wait(10)
    # Ogem cancelled the response and waited for its final usage before closing the upstream.
    assert upstream.of_type("response.cancel")
    [usage] = emulator.usages
    assert 0 < usage["output_tokens"] < 50
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert log.cancelled is True
    assert (log.prompt_tokens, log.completion_tokens) == (1, usage["output_tokens"])
    assert log.cost == Decimal("0.0001") + usage["output_tokens"] * Decimal("0.001")
    assert log.usage_estimated is False


def test_a_keys_realtime_endpoint_limit_counts_responses(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    secret = make_key(endpoint_limits={"realtime": {"rpm": 1}})
    with raw_connect(live_ogem, key=secret) as ws:
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create"})
        events_until(ws, "response.done")
        send(ws, {"type": "response.create"})
        error = events_until(ws, "error")[-1]["error"]
        assert error["code"] == "rate_limit_exceeded"
        assert "/v1/realtime" in error["message"]
    assert len(emulator.connections[0].of_type("response.create")) == 1


def test_a_response_the_upstream_starts_itself_is_admitted_and_billed(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model(params=CHEAP)
    secret = make_key()
    vad = {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad"}}}}
    with raw_connect(live_ogem, key=secret) as ws:
        send(ws, {"type": "session.update", "session": vad})
        send(
            ws,
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(4800)).decode()},
        )
        send(ws, {"type": "input_audio_buffer.commit"})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"
    assert emulator.connections[0].of_type("response.create") == []
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert log.prompt_tokens == 1  # 100 ms of audio
    assert log.status_code == 200


def test_a_refused_upstream_started_response_is_cancelled(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model(params=CHEAP)
    emulator.delta_delay = 0.05
    secret = make_key(rpm_limit=0)
    vad = {"type": "realtime", "audio": {"input": {"turn_detection": {"type": "server_vad"}}}}
    with raw_connect(live_ogem, key=secret) as ws:
        send(ws, {"type": "session.update", "session": vad})
        send(
            ws,
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(4800)).decode()},
        )
        send(ws, {"type": "input_audio_buffer.commit"})
        error = events_until(ws, "error")[-1]["error"]
        assert error["code"] == "rate_limit_exceeded"
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "cancelled"
    assert emulator.connections[0].of_type("response.cancel")
    assert realtime_logs(key_id=key_of(secret).pk) == []


def test_a_response_create_the_upstream_refuses_is_settled_once(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model(params=CHEAP)
    emulator.delta_delay = 0.05
    secret = make_key()
    with raw_connect(live_ogem, key=secret) as ws:
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create", "response": {"output_modalities": ["text"]}})
        send(ws, {"type": "response.create", "event_id": "too-soon"})
        error = events_until(ws, "error")[-1]["error"]
        assert (error["code"], error["event_id"]) == (
            "conversation_already_has_active_response",
            "too-soon",
        )
        events_until(ws, "response.done")
    logs = realtime_logs(key_id=key_of(secret).pk)
    assert sorted(log.status_code for log in logs) == [200, 400]
    refused = next(log for log in logs if log.status_code == 400)
    assert (refused.completion_tokens, refused.cost) == (0, Decimal(0))


def test_a_stopping_server_ends_its_sessions_with_their_usage_recorded(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key, monkeypatch
) -> None:
    emulator = realtime_model(params=CHEAP)
    emulator.reply = " ".join(["word"] * 100)
    emulator.delta_delay = 0.05
    secret = make_key()
    with raw_connect(live_ogem, key=secret) as ws:
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create", "response": {"output_modalities": ["text"]}})
        events_until(ws, "response.output_text.delta")
        # What `serve` does when it is asked to stop (ogem_site/supervision.py).
        monkeypatch.setattr("gateway.realtime.session.draining", lambda: True)
        assert events_until(ws, "error")[-1]["error"]["code"] == "server_restart"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert emulator.connections[0].closed.wait(10)
    [usage] = emulator.usages
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert (log.completion_tokens, log.cancelled) == (usage["output_tokens"], True)


def test_a_key_that_expires_ends_its_open_session(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    realtime_model()
    secret = make_key(expires_at=timezone.now() + timedelta(seconds=2))
    with raw_connect(live_ogem, key=secret) as ws:
        error = events_until(ws, "error")[-1]["error"]
        assert (error["code"], error["message"]) == (
            "invalid_api_key",
            "The API key of this session has expired.",
        )
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
