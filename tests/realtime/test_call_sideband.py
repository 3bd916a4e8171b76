"""WebRTC calls governed by Ogem: a call set up through `POST /v1/realtime/calls` is recorded
(key, model, deployment) and holds a concurrent-session slot until it ends; its sideband
WebSocket (`/v1/realtime?call_id=`) goes through Ogem to the upstream's, its responses billed
from `response.done` and its budget enforced; another key's call id is unknown. The official
SDK (`realtime.calls.create`, `realtime.connect(call_id=...)`, `realtime.calls.hangup`) against
OpenAI's HTTP emulator, which mints call ids and serves their sidebands."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import openai
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.realtime.helpers import events_until, key_of, raw_connect, realtime_logs, send, user_text
from tests.realtime.test_calls import OFFER

CHEAP = {"input_cost_per_token": 0.0001, "output_cost_per_token": 0.001}
REPLY = "Hello from the realtime emulator."


@pytest.fixture
def call_voice(openai_emulator, install_deployments):  # type: ignore[no-untyped-def]
    """Model `voice`: one OpenAI deployment on the OpenAI HTTP emulator, priced."""
    install_deployments(
        Deployment(
            id="test:voice-http",
            model_name="voice",
            provider="openai",
            upstream_model="gpt-realtime",
            api_base=f"{openai_emulator.url}/v1",
            api_key=UPSTREAM_KEY,
            params=dict(CHEAP),
        )
    )
    return openai_emulator


def _client(live_ogem, secret: str) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)


def _call(live_ogem, secret: str) -> str:  # type: ignore[no-untyped-def]
    answer = _client(live_ogem, secret).realtime.calls.create(
        sdp=OFFER, session={"type": "realtime", "model": "voice", "output_modalities": ["text"]}
    )
    return str(answer.response.headers["location"]).rpartition("/")[2]


def _call_row(call_id: str) -> Any:
    from gateway.models import RealtimeCall

    return RealtimeCall.objects.get(call_id=call_id)


def _refusal(live_ogem, secret: str, query: str) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidStatus) as refused:
        raw_connect(live_ogem, key=secret, query=query)
    response = refused.value.response
    return response.status_code, json.loads(response.body)["error"]


def test_a_calls_sideband_goes_through_ogem_and_its_responses_are_billed(  # type: ignore[no-untyped-def]
    call_voice, live_ogem, make_key
) -> None:
    secret = make_key()
    call_id = _call(live_ogem, secret)
    row = _call_row(call_id)
    assert (row.key_id, row.model, row.deployment_id, row.ended_at) == (
        key_of(secret).pk,
        "voice",
        "test:voice-http",
        None,
    )
    with _client(live_ogem, secret).realtime.connect(call_id=call_id) as conn:
        conn.session.update(session={"type": "realtime", "instructions": "Be brief"})
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi"}],
            }
        )
        conn.response.create()  # the server's own response
        text = ""
        for event in conn:
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                break
        assert text == REPLY
        # The WebRTC peer asks for a response on its data channel: the sideband sees it run,
        # Ogem admits it as it starts and bills it.
        call_voice.realtime_calls.inject(call_id, {"type": "response.create"})
        for event in conn:
            if event.type == "response.done":
                assert event.response.status == "completed"
                break
    [sideband] = call_voice.realtime_calls.calls[call_id].sidebands
    assert sideband.path == f"/v1/realtime?call_id={call_id}"
    assert sideband.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    first, second = realtime_logs(key_id=key_of(secret).pk)
    assert (first.deployment, first.usage_estimated) == ("test:voice-http", False)
    # "Be brief" (2) + "Hi" (1) in, five words out; then the same 3 plus the reply (9) in.
    assert (first.prompt_tokens, first.completion_tokens) == (3, 5)
    assert (second.prompt_tokens, second.completion_tokens) == (12, 5)
    assert first.cost == Decimal("0.0003") + Decimal("0.005")
    # The sideband client left: the call goes on, holding its slot.
    assert _call_row(call_id).ended_at is None
    _client(live_ogem, secret).realtime.calls.hangup(call_id)
    assert _call_row(call_id).ended_at is not None
    assert call_voice.realtime_calls.calls[call_id].ended
    assert call_voice.requests[-1].path == f"/v1/realtime/calls/{call_id}/hangup"


def test_another_keys_call_id_is_unknown_and_one_sideband_at_a_time(  # type: ignore[no-untyped-def]
    call_voice, live_ogem, make_key
) -> None:
    owner, other = make_key(), make_key()
    call_id = _call(live_ogem, owner)
    status, error = _refusal(live_ogem, other, f"call_id={call_id}")
    assert (status, error["code"]) == (404, "call_not_found")
    assert _refusal(live_ogem, owner, "call_id=rtc_nope")[0] == 404
    with pytest.raises(openai.NotFoundError):
        _client(live_ogem, other).realtime.calls.hangup(call_id)
    with raw_connect(live_ogem, key=owner, query=f"call_id={call_id}") as ws:
        events_until(ws, "session.created")
        # A second sideband would see (and bill) every response again.
        status, error = _refusal(live_ogem, owner, f"call_id={call_id}")
        assert (status, error["code"]) == (409, "call_sideband_open")
    assert call_voice.realtime_calls.calls[call_id].sidebands[0].closed.wait(10)
    assert len(call_voice.realtime_calls.calls[call_id].sidebands) == 1


def test_a_call_counts_against_the_concurrent_session_limit_until_it_ends(  # type: ignore[no-untyped-def]
    call_voice, live_ogem, make_key
) -> None:
    secret = make_key(metadata={"max_realtime_sessions": 1})
    call_id = _call(live_ogem, secret)
    with pytest.raises(openai.RateLimitError):
        _call(live_ogem, secret)
    status, error = _refusal(live_ogem, secret, "model=voice")
    assert (status, error["code"]) == (429, "rate_limit_exceeded")
    # The upstream ends the call (its sideband closes): the slot is free again.
    before = _sessions_ended("upstream closed")
    with raw_connect(live_ogem, key=secret, query=f"call_id={call_id}") as ws:
        events_until(ws, "session.created")
        call_voice.realtime_calls.inject(call_id, {"type": "session.update", "session": {}})
        events_until(ws, "session.updated")
        _hangup_upstream(call_voice, call_id)
        with pytest.raises(ConnectionClosed):
            while True:
                ws.recv(timeout=10)
    _wait_ended(call_id, reason="upstream closed", before=before)
    assert _call(live_ogem, secret).startswith("rtc_")


def _hangup_upstream(emulator, call_id: str) -> None:  # type: ignore[no-untyped-def]
    """The call ends at OpenAI (the peer hung up): as a hang-up straight to the upstream."""
    import asyncio

    loop = emulator.realtime_calls.loop
    asyncio.run_coroutine_threadsafe(emulator.realtime_calls.hangup(call_id), loop).result(10)


def _sessions_ended(reason: str) -> float:
    from ogem_site.metrics import REALTIME_SESSIONS_ENDED

    return REALTIME_SESSIONS_ENDED.labels(reason=reason)._value.get()


def _wait_ended(call_id: str, *, reason: str, before: float) -> None:
    """Wait for the sideband's session to have ended (the call's end recorded on its way out),
    then read the call: polling its row would race the server's write on SQLite."""
    import time

    for _ in range(200):
        if _sessions_ended(reason) > before:
            break
        time.sleep(0.05)
    assert _call_row(call_id).ended_at is not None


def test_a_budget_that_runs_out_on_the_sideband_hangs_the_call_up(  # type: ignore[no-untyped-def]
    call_voice, live_ogem, make_key
) -> None:
    call_voice.realtime_calls.realtime.reply = " ".join(["word"] * 40)  # $0.04 out
    secret = make_key(max_budget=Decimal("0.05"))
    call_id = _call(live_ogem, secret)
    before = _sessions_ended("budget exceeded")
    with raw_connect(live_ogem, key=secret, query=f"call_id={call_id}") as ws:
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create", "response": {"max_output_tokens": 20}})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"
        # The peer's next response cannot be paid for: Ogem cancels it, says why and hangs up.
        call_voice.realtime_calls.inject(call_id, {"type": "response.create"})
        error = events_until(ws, "error")[-1]["error"]
        assert error["code"] == "budget_exceeded"
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    _wait_ended(call_id, reason="budget exceeded", before=before)
    assert call_voice.realtime_calls.calls[call_id].ended
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert log.cost == Decimal("0.0001") + Decimal("0.04")
