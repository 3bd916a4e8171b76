"""/v1/realtime through the live server to the Realtime emulator: the official SDK's realtime
client, the browser's subprotocol, the beta protocol, Azure's URL, failover, bad events, closes
and timeouts."""

from __future__ import annotations

import base64
import json
import re
import time
from decimal import Decimal

import httpx
import openai
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.live import free_port
from tests.realtime.helpers import (
    events_until,
    key_of,
    raw_connect,
    realtime_logs,
    send,
    user_text,
)

# gpt-realtime's list prices (billing/prices/prices.yaml), per token.
TEXT_IN, TEXT_OUT, CACHED = Decimal("4") / 10**6, Decimal("16") / 10**6, Decimal("0.4") / 10**6
AUDIO_IN, AUDIO_OUT, AUDIO_CACHED = Decimal("32") / 10**6, Decimal("64") / 10**6, CACHED
REPLY = "Hello from the realtime emulator."


def _client(live_ogem, secret: str) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)


def test_the_sdk_completes_a_text_exchange_and_its_usage_is_recorded(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    secret = make_key()
    with _client(live_ogem, secret).realtime.connect(model="voice") as conn:
        conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hi there"}],
            }
        )
        conn.response.create()
        text = ""
        for event in conn:
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                usage = event.response.usage
                break
    assert text == REPLY
    assert (usage.input_tokens, usage.output_tokens) == (2, 5)
    upstream = emulator.connections[0]
    assert upstream.path == "/v1/realtime?model=gpt-realtime"
    assert upstream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "openai-beta" not in upstream.headers
    # The client's events reached the upstream as they were sent.
    assert [e["type"] for e in upstream.events] == [
        "session.update",
        "conversation.item.create",
        "response.create",
    ]
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert (log.model, log.provider, log.deployment) == ("voice", "openai", "test:voice")
    assert (log.prompt_tokens, log.completion_tokens, log.total_tokens) == (2, 5, 7)
    assert log.cost == 2 * TEXT_IN + 5 * TEXT_OUT
    assert (log.status_code, log.cancelled, log.stream) == (200, False, True)


def test_an_audio_exchange_prices_audio_and_cached_tokens_apart(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    secret = make_key()
    pcm = bytes(9600)  # 200 ms of PCM16 at 24 kHz: two audio tokens
    received_audio = b""
    with _client(live_ogem, secret).realtime.connect(model="voice") as conn:
        conn.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
        for half in (pcm[:4800], pcm[4800:]):
            conn.input_audio_buffer.append(audio=base64.b64encode(half).decode())
        conn.input_audio_buffer.commit()
        conn.response.create()
        transcript = ""
        for event in conn:
            if event.type == "response.output_audio.delta":
                received_audio += base64.b64decode(event.delta)
            if event.type == "response.output_audio_transcript.delta":
                transcript += event.delta
            if event.type == "response.done":
                break
        conn.response.create()  # the conversation so far is now cached upstream
        for event in conn:
            if event.type == "response.done":
                break
    assert transcript == REPLY
    assert received_audio == bytes(5 * 4800)
    first, second = realtime_logs(key_id=key_of(secret).pk)
    # Two audio tokens in; five transcript tokens and five audio tokens out.
    assert (first.prompt_tokens, first.completion_tokens) == (2, 10)
    assert first.cost == 2 * AUDIO_IN + 5 * TEXT_OUT + 5 * AUDIO_OUT
    # Then the first answer's transcript (9 text tokens) is new and the audio (2) cached.
    assert emulator.usages[1]["input_token_details"]["cached_tokens_details"]["audio_tokens"] == 2
    assert (second.prompt_tokens, second.completion_tokens) == (11, 10)
    assert second.cost == 9 * TEXT_IN + 2 * AUDIO_CACHED + 5 * TEXT_OUT + 5 * AUDIO_OUT


def test_the_beta_protocol_is_relayed_to_a_beta_upstream(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    # The beta client always says wss:// unless given the WebSocket base URL.
    client = openai.OpenAI(
        base_url=f"{live_ogem.url}/v1",
        websocket_base_url=live_ogem.url.replace("http://", "ws://") + "/v1",
        api_key=make_key(),
        max_retries=0,
    )
    with client.beta.realtime.connect(model="voice") as conn:
        conn.session.update(session={"modalities": ["text"]})
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
            if event.type == "response.text.delta":
                text += event.delta
            if event.type == "response.done":
                break
    assert text == REPLY
    assert emulator.connections[0].headers["openai-beta"] == "realtime=v1"


def test_a_browser_authenticates_with_the_key_subprotocol(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    secret = make_key()
    offered = ["realtime", f"openai-insecure-api-key.{secret}", "openai-beta.realtime-v1"]
    with raw_connect(live_ogem, subprotocols=offered) as ws:
        assert ws.subprotocol == "realtime"  # never the key's own protocol
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
    assert emulator.connections[0].headers["openai-beta"] == "realtime=v1"


def test_a_handshake_without_a_valid_key_is_refused_with_openais_error(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem
) -> None:
    emulator = realtime_model()
    for key in (None, "sk-not-a-key"):
        with pytest.raises(InvalidStatus) as refused:
            raw_connect(live_ogem, key=key)
        assert refused.value.response.status_code == 401
        assert json.loads(refused.value.response.body)["error"]["type"] == "authentication_error"
    assert emulator.connections == []


def test_an_unknown_or_forbidden_model_is_refused_at_the_handshake(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    realtime_model()
    cases = [
        (make_key(), "model=no-such-model", 404, "model_not_found"),
        (make_key(models=["mock-chat"]), "model=voice", 403, "model_not_allowed"),
        (make_key(), "model=mock-chat", 400, "unsupported_endpoint"),  # no realtime upstream
        (make_key(), "", 400, None),
    ]
    for secret, query, status, code in cases:
        with pytest.raises(InvalidStatus) as refused:
            raw_connect(live_ogem, key=secret, query=query)
        assert refused.value.response.status_code == status, query
        assert json.loads(refused.value.response.body)["error"]["code"] == code


def test_an_azure_deployment_is_reached_with_its_url_and_api_key(  # type: ignore[no-untyped-def]
    realtime_model, realtime_emulator, live_ogem, make_key
) -> None:
    emulator = realtime_model(
        provider="azure", api_base=realtime_emulator.url, params={"deployment": "rt-east"}
    )
    with raw_connect(live_ogem, key=make_key()) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
    upstream = emulator.connections[-1]
    assert upstream.path == "/openai/realtime?api-version=2024-10-01-preview&deployment=rt-east"
    assert upstream.headers["api-key"] == UPSTREAM_KEY


def test_a_deployment_that_cannot_be_connected_fails_over(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    dead = Deployment(
        id="test:voice-dead",
        model_name="voice",
        provider="openai",
        upstream_model="gpt-realtime",
        api_base=f"http://127.0.0.1:{free_port()}/v1",
        api_key=UPSTREAM_KEY,
        priority=0,
    )
    emulator = realtime_model(dead, priority=1)
    secret = make_key()
    with raw_connect(live_ogem, key=secret) as ws:
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create"})
        events_until(ws, "response.done")
    assert len(emulator.connections) == 1
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert log.deployment == "test:voice"


def test_no_reachable_deployment_is_a_503_naming_no_secret(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    emulator.refuse_status = 500
    with pytest.raises(InvalidStatus) as refused:
        raw_connect(live_ogem, key=make_key())
    assert refused.value.response.status_code == 503
    body = refused.value.response.body.decode()
    assert json.loads(body)["error"]["type"] == "upstream_error"
    assert UPSTREAM_KEY not in body


def test_malformed_events_get_error_events_and_the_session_goes_on(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key, settings
) -> None:
    emulator = realtime_model()
    settings.OGEM_REALTIME_MAX_MESSAGE_BYTES = 1000
    with raw_connect(live_ogem, key=make_key()) as ws:
        events_until(ws, "session.created")
        ws.send("not json")
        ws.send(b"\x00binary")
        send(ws, {"no": "type"})
        send(ws, {"type": "input_audio_buffer.append", "audio": "A" * 2000})
        errors = [json.loads(ws.recv(timeout=10)) for _ in range(4)]
        assert [e["type"] for e in errors] == ["error"] * 4
        assert [e["error"]["code"] for e in errors] == [
            "invalid_json",
            "invalid_event",
            "invalid_event",
            "message_too_large",
        ]
        assert errors[2]["error"]["param"] == "type"
        send(ws, user_text("still here"))
        send(ws, {"type": "response.create"})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"
    # None of the bad events reached the upstream.
    assert [e["type"] for e in emulator.connections[0].events] == [
        "conversation.item.create",
        "response.create",
    ]
    assert emulator.connections[0].malformed == []


def test_an_audio_append_is_relayed_unparsed_and_the_upstream_judges_it(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    bad = '{"type": "input_audio_buffer.append", "audio": "AAAA",}'  # a trailing comma
    with raw_connect(live_ogem, key=make_key()) as ws:
        events_until(ws, "session.created")
        ws.send(bad)
        error = events_until(ws, "error")[-1]["error"]
        assert error["type"] == "invalid_request_error"
        send(ws, {"type": "input_audio_buffer.append", "audio": "AAAA"})
        send(ws, {"type": "input_audio_buffer.commit"})
        assert events_until(ws, "input_audio_buffer.committed")
    # The frame reached the upstream as it came, the valid one after it too.
    assert emulator.connections[0].malformed == [bad]
    assert [e["type"] for e in emulator.connections[0].events] == [
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
    ]


def test_the_upstream_closing_closes_the_client_with_its_code(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    emulator.close_after_created = 1013
    with raw_connect(live_ogem, key=make_key()) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013


def test_the_client_closing_closes_the_upstream(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    emulator = realtime_model()
    with raw_connect(live_ogem, key=make_key()) as ws:
        events_until(ws, "session.created")
    upstream = emulator.connections[0]
    assert upstream.closed.wait(10)
    assert upstream.close_code == 1000


def test_an_idle_session_is_closed_with_an_error_event(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key, settings
) -> None:
    emulator = realtime_model()
    settings.OGEM_REALTIME_IDLE_TIMEOUT = 1
    with raw_connect(live_ogem, key=make_key()) as ws:
        events = events_until(ws, "error")
        assert events[-1]["error"]["code"] == "session_idle"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert emulator.connections[0].closed.wait(10)
    assert emulator.connections[0].close_code == 1001


def test_a_session_past_its_maximum_duration_is_closed(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key, settings
) -> None:
    realtime_model()
    settings.OGEM_REALTIME_MAX_SECONDS = 1
    with raw_connect(live_ogem, key=make_key()) as ws:
        assert events_until(ws, "error")[-1]["error"]["code"] == "session_expired"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001


def test_open_and_ended_sessions_are_counted_on_metrics(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    def sample(name: str) -> float:
        text = httpx.get(f"{live_ogem.url}/metrics").text
        found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, flags=re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    emulator = realtime_model()
    ended = 'ogem_realtime_sessions_ended_total{reason="client closed"}'
    before = sample(ended)
    with raw_connect(live_ogem, key=make_key()) as ws:
        events_until(ws, "session.created")
        assert sample("ogem_realtime_sessions") >= 1
    assert emulator.connections[0].closed.wait(10)
    for _ in range(100):  # counted once the session's teardown has run
        if sample(ended) == before + 1:
            break
        time.sleep(0.05)
    assert sample(ended) == before + 1


def test_litellms_path_serves_sessions_and_other_paths_are_404(  # type: ignore[no-untyped-def]
    realtime_model, live_ogem, make_key
) -> None:
    from websockets.sync.client import connect

    realtime_model()
    secret = make_key()
    base = live_ogem.url.replace("http://", "ws://")
    headers = {"Authorization": f"Bearer {secret}"}
    with connect(f"{base}/realtime?model=voice", additional_headers=headers) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{base}/v1/elsewhere", additional_headers=headers)
    assert refused.value.response.status_code == 404
    assert json.loads(refused.value.response.body)["error"]["code"] == "unknown_url"
