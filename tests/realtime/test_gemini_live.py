"""/v1/realtime on gemini and vertex_ai deployments: OpenAI's Realtime protocol translated to
Gemini's Live API, through the live server to the Live API emulator (a real WebSocket). The
official SDK's realtime client is the judge: the same client code works on both upstreams."""

from __future__ import annotations

import base64
import time
from decimal import Decimal
from typing import Any

import openai
import pytest
from websockets.exceptions import ConnectionClosed

from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.gemini_live_api import GEMINI_PATH, OUTPUT_CHUNK, VERTEX_PATH
from tests.realtime.helpers import events_until, key_of, raw_connect, realtime_logs, send, user_text

LIVE_REPLY = "Hello from the Live API emulator."
# The deployment's prices (its params), per token: plain numbers keep the arithmetic exact.
PRICES = {
    "input_cost_per_token": 0.001,
    "output_cost_per_token": 0.01,
    "cache_read_input_token_cost": 0.0001,
    "input_cost_per_audio_token": 0.002,
    "output_cost_per_audio_token": 0.02,
    "cache_read_input_audio_token_cost": 0.0002,
}
TEXT_IN, TEXT_OUT, CACHED = Decimal("0.001"), Decimal("0.01"), Decimal("0.0001")
AUDIO_IN, AUDIO_OUT, AUDIO_CACHED = Decimal("0.002"), Decimal("0.02"), Decimal("0.0002")


@pytest.fixture
def live_model(gemini_live_emulator, install_deployments):  # type: ignore[no-untyped-def]
    """Installs model `gem`: one deployment on the Live API emulator (gemini by default)."""

    def install(provider: str = "gemini", **fields: Any):  # type: ignore[no-untyped-def]
        options: dict[str, Any] = {
            "id": f"test:gem-{provider}",
            "model_name": "gem",
            "provider": provider,
            "upstream_model": "gemini-live-2.5-flash",
            "api_base": gemini_live_emulator.url,
            "api_key": UPSTREAM_KEY,
            "params": dict(PRICES),
            **fields,
        }
        if provider == "vertex_ai":
            options["params"] = {**options["params"], "vertex_project": "proj-1"}
            options["region"] = "us-central1"
        install_deployments(Deployment(**options))
        return gemini_live_emulator

    return install


def _client(live_ogem, secret: str) -> openai.OpenAI:  # type: ignore[no-untyped-def]
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)


def _text_exchange(live_ogem, secret: str, model: str) -> tuple[str, Any]:  # type: ignore[no-untyped-def]
    """What an application does, whichever upstream serves `model`."""
    with _client(live_ogem, secret).realtime.connect(model=model) as conn:
        conn.session.update(
            session={"type": "realtime", "output_modalities": ["text"], "instructions": "Be brief"}
        )
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
                return text, event.response
    raise AssertionError("no response.done")


def test_the_sdk_completes_a_text_exchange_on_gemini_with_usage_recorded(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    emulator = live_model()
    secret = make_key()
    text, response = _text_exchange(live_ogem, secret, "gem")
    assert text == LIVE_REPLY
    assert response.status == "completed"
    assert response.output[0].content[0].text == LIVE_REPLY
    # "Be brief" (2) + "Hi there" (2) in; six words out.
    assert (response.usage.input_tokens, response.usage.output_tokens) == (4, 6)
    [upstream] = emulator.connections
    assert upstream.path == GEMINI_PATH
    assert upstream.headers["x-goog-api-key"] == UPSTREAM_KEY
    assert upstream.setup == {
        "model": "models/gemini-live-2.5-flash",
        "generationConfig": {"responseModalities": ["TEXT"]},
        "systemInstruction": {"parts": [{"text": "Be brief"}]},
        "realtimeInputConfig": {"automaticActivityDetection": {"disabled": True}},
    }
    assert upstream.of_kind("clientContent") == [
        {"turns": [{"role": "user", "parts": [{"text": "Hi there"}]}], "turnComplete": True}
    ]
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert (log.model, log.provider, log.deployment) == ("gem", "gemini", "test:gem-gemini")
    assert (log.prompt_tokens, log.completion_tokens, log.usage_estimated) == (4, 6, False)
    assert log.cost == 4 * TEXT_IN + 6 * TEXT_OUT


def test_one_client_works_on_openai_and_gemini_deployments(  # type: ignore[no-untyped-def]
    live_model, realtime_emulator, install_deployments, live_ogem, make_key
) -> None:
    gemini = Deployment(
        id="test:gem",
        model_name="gem",
        provider="gemini",
        upstream_model="gemini-live-2.5-flash",
        api_base=live_model().url,
        api_key=UPSTREAM_KEY,
    )
    openai_voice = Deployment(
        id="test:voice",
        model_name="voice",
        provider="openai",
        upstream_model="gpt-realtime",
        api_base=f"{realtime_emulator.url}/v1",
        api_key=UPSTREAM_KEY,
    )
    install_deployments(gemini, openai_voice)
    secret = make_key()
    assert _text_exchange(live_ogem, secret, "gem")[0] == LIVE_REPLY
    assert _text_exchange(live_ogem, secret, "voice")[0] == "Hello from the realtime emulator."
    assert {log.provider for log in realtime_logs(key_id=key_of(secret).pk)} == {"gemini", "openai"}


def test_an_audio_exchange_on_gemini_prices_audio_and_cached_tokens_apart(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    emulator = live_model()
    secret = make_key()
    pcm = bytes(24000)  # 500 ms of PCM16 at 24 kHz: 16 audio tokens at 32 a second
    received = b""
    with _client(live_ogem, secret).realtime.connect(model="gem") as conn:
        conn.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
        for half in (pcm[:12000], pcm[12000:]):
            conn.input_audio_buffer.append(audio=base64.b64encode(half).decode())
        conn.input_audio_buffer.commit()
        conn.response.create()
        transcript = ""
        for event in conn:
            if event.type == "response.output_audio.delta":
                received += base64.b64decode(event.delta)
            if event.type == "response.output_audio_transcript.delta":
                transcript += event.delta
            if event.type == "response.done":
                assert event.response.output[0].content[0].transcript == LIVE_REPLY
                break
        conn.response.create()  # the first turn is now cached upstream
        for event in conn:
            if event.type == "response.done":
                break
    assert transcript == LIVE_REPLY
    assert received == OUTPUT_CHUNK * 6
    upstream = emulator.connections[0]
    assert upstream.setup["generationConfig"] == {"responseModalities": ["AUDIO"]}
    assert upstream.setup["outputAudioTranscription"] == {}
    inputs = upstream.of_kind("realtimeInput")
    assert inputs[0] == {"activityStart": {}}
    assert [i["audio"]["mimeType"] for i in inputs[1:3]] == ["audio/pcm;rate=24000"] * 2
    assert inputs[3] == {"activityEnd": {}}
    first, second = realtime_logs(key_id=key_of(secret).pk)
    # 16 audio tokens in; six 250 ms chunks (8 tokens each) out.
    assert (first.prompt_tokens, first.completion_tokens) == (16, 48)
    assert first.cost == 16 * AUDIO_IN + 48 * AUDIO_OUT
    # The second turn reads the first (16 + 48 audio tokens), all of it cached.
    assert (second.prompt_tokens, second.completion_tokens) == (64, 48)
    assert second.cost == 64 * AUDIO_CACHED + 48 * AUDIO_OUT


def test_a_vertex_ai_deployment_speaks_vertex_live_api(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    emulator = live_model("vertex_ai")
    secret = make_key()
    assert _text_exchange(live_ogem, secret, "gem")[0] == LIVE_REPLY
    [upstream] = emulator.connections
    assert upstream.path == VERTEX_PATH
    # A deployment api_key is a ready access token on Vertex AI.
    assert upstream.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert upstream.setup["model"] == (
        "projects/proj-1/locations/us-central1/publishers/google/models/gemini-live-2.5-flash"
    )
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert log.provider == "vertex_ai"


def test_the_beta_protocol_is_translated_too(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    live_model()
    secret = make_key()
    with raw_connect(
        live_ogem, query="model=gem", key=secret, headers={"OpenAI-Beta": "realtime=v1"}
    ) as ws:
        assert events_until(ws, "session.created")[-1]["session"]["modalities"] == ["text", "audio"]
        send(ws, {"type": "session.update", "session": {"modalities": ["text"]}})
        send(ws, user_text("Hi"))
        events = events_until(ws, "conversation.item.created")
        send(ws, {"type": "response.create"})
        events = events_until(ws, "response.done")
    deltas = [e["delta"] for e in events if e["type"] == "response.text.delta"]
    assert "".join(deltas) == LIVE_REPLY


def test_a_session_update_after_the_setup_is_refused_for_what_setup_fixed(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    live_model()
    secret = make_key()
    with raw_connect(live_ogem, query="model=gem", key=secret) as ws:
        events_until(ws, "session.created")
        send(ws, user_text("Hi"))  # the setup goes out here
        send(ws, {"type": "session.update", "session": {"instructions": "Now be verbose"}})
        error = events_until(ws, "error")[-1]["error"]
        assert error["code"] == "session_update_not_supported"
        # The session goes on.
        send(ws, {"type": "response.create", "response": {}})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"


def test_usage_reported_after_the_turn_or_never(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    emulator = live_model()
    secret = make_key()
    emulator.usage_mode = "separate"
    with raw_connect(live_ogem, query="model=gem", key=secret) as ws:
        send(ws, {"type": "session.update", "session": {"output_modalities": ["text"]}})
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create"})
        done = events_until(ws, "response.done")[-1]["response"]
        assert done["usage"]["output_tokens"] == 6
        emulator.usage_mode = "none"
        send(ws, {"type": "response.create"})
        started = time.monotonic()
        done = events_until(ws, "response.done")[-1]["response"]
        assert done["usage"] is None and done["status"] == "completed"
        assert time.monotonic() - started < 10  # the grace for a late usageMetadata (1 s) ends
    first, second = realtime_logs(key_id=key_of(secret).pk)
    assert (first.completion_tokens, first.usage_estimated) == (6, False)
    # Estimated from what was relayed: 33 characters of text, a token per 4 bytes.
    assert (second.completion_tokens, second.usage_estimated) == (9, True)


def test_a_client_leaving_mid_response_is_billed_once_for_the_whole_turn(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    emulator = live_model()
    emulator.reply = " ".join(["word"] * 20)
    emulator.delta_delay = 0.05
    secret = make_key()
    with raw_connect(live_ogem, query="model=gem", key=secret) as ws:
        send(ws, {"type": "session.update", "session": {"output_modalities": ["text"]}})
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create"})
        events_until(ws, "response.output_text.delta")
    upstream = emulator.connections[0]
    assert upstream.closed.wait(10)
    # The Live API cannot stop a turn: Ogem waited for its end and its usage.
    [usage] = emulator.usages
    assert usage["responseTokenCount"] == 20
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert log.cancelled is True
    assert (log.prompt_tokens, log.completion_tokens, log.usage_estimated) == (1, 20, False)


def test_with_turn_detection_gemini_starts_responses_itself_and_they_are_billed(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    emulator = live_model()
    secret = make_key()
    session = {
        "type": "realtime",
        "output_modalities": ["text"],
        "audio": {"input": {"turn_detection": {"type": "server_vad"}}},
    }
    with raw_connect(live_ogem, query="model=gem", key=secret) as ws:
        send(ws, {"type": "session.update", "session": session})
        send(
            ws,
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(48000)).decode()},
        )
        send(ws, {"type": "input_audio_buffer.commit"})
        events = events_until(ws, "response.done")
    assert "response.created" in [e["type"] for e in events]
    upstream = emulator.connections[0]
    assert "realtimeInputConfig" not in upstream.setup  # Gemini's own activity detection
    assert upstream.of_kind("realtimeInput")[-1] == {"audioStreamEnd": True}
    [log] = realtime_logs(key_id=key_of(secret).pk)
    assert (log.prompt_tokens, log.completion_tokens) == (32, 6)  # one second of audio


def test_an_unknown_event_gets_an_error_and_the_session_goes_on(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    live_model()
    secret = make_key()
    with raw_connect(live_ogem, query="model=gem", key=secret) as ws:
        send(ws, {"type": "transcription_session.update", "event_id": "ev1"})
        error = events_until(ws, "error")[-1]["error"]
        assert (error["code"], error["event_id"]) == ("unsupported_event", "ev1")
        send(ws, {"type": "session.update", "session": {"output_modalities": ["text"]}})
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create"})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"


def test_a_live_api_that_closes_with_a_reason_reaches_the_client_as_an_error(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    emulator = live_model()
    emulator.close_after_setup = (1008, "Quota exceeded for this project.")
    secret = make_key()
    with raw_connect(live_ogem, query="model=gem", key=secret) as ws:
        send(ws, user_text("Hi"))  # the setup goes out, the Live API closes
        error = events_until(ws, "error")[-1]["error"]
        assert error["code"] == "upstream_closed"
        assert "Quota exceeded" in error["message"]
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_a_wrong_upstream_key_fails_the_handshake(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    from websockets.exceptions import InvalidStatus

    emulator = live_model(api_key="wrong")
    secret = make_key()
    with pytest.raises(InvalidStatus) as refused:
        raw_connect(live_ogem, query="model=gem", key=secret)
    assert refused.value.response.status_code == 503
    assert emulator.connections == []


WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def _tool_round_trip(live_ogem, secret: str) -> tuple[list[Any], Any, str, Any]:  # type: ignore[no-untyped-def]
    """What an application with a function tool does: the call's events and response, then
    the reply to the function's result and its response."""
    with _client(live_ogem, secret).realtime.connect(model="gem") as conn:
        conn.session.update(
            session={"type": "realtime", "output_modalities": ["text"], "tools": [WEATHER_TOOL]}
        )
        conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Weather in Paris?"}],
            }
        )
        conn.response.create()
        call_events = []
        for event in conn:
            if event.type.startswith("response.function_call_arguments") or (
                event.type.startswith("response.output_item")
            ):
                call_events.append(event)
            if event.type == "response.done":
                called = event.response
                break
        call = called.output[0]
        conn.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": '{"temp": 21}'}
        )
        conn.response.create()
        text = ""
        for event in conn:
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                return call_events, called, text, event.response
    raise AssertionError("no response.done")


@pytest.mark.parametrize("provider", ["gemini", "vertex_ai"])
def test_the_sdk_calls_a_function_through_the_live_api_and_both_responses_are_billed(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key, provider
) -> None:
    emulator = live_model(provider)
    emulator.tool_call = ("get_weather", {"city": "Paris"})
    secret = make_key()
    call_events, called, text, answered = _tool_round_trip(live_ogem, secret)
    # The call: one function_call item, its arguments streamed and done, in OpenAI's events.
    assert [e.type for e in call_events] == [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    done = call_events[2]
    assert (done.name, done.arguments) == ("get_weather", '{"city":"Paris"}')
    assert called.status == "completed"
    [item] = called.output
    assert (item.type, item.name, item.arguments) == (
        "function_call",
        "get_weather",
        '{"city":"Paris"}',
    )
    assert item.call_id == done.call_id == call_events[1].call_id
    assert text == LIVE_REPLY and answered.status == "completed"
    [upstream] = emulator.connections
    # The tool went into setup as a function declaration (JSON Schema in Gemini's subset).
    assert upstream.setup["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather in a city",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ]
    [tool_response] = upstream.of_kind("toolResponse")
    expected = {"name": "get_weather", "response": {"temp": 21}}
    if provider == "gemini":  # the Gemini API's call id is the client's call_id
        assert item.call_id == "function-call-1"
        expected = {"id": "function-call-1", **expected}
    assert tool_response == {"functionResponses": [expected]}
    # Two responses, each billed with the usage the Live API reported for its part of the turn:
    # "Weather in Paris?" (5) in, the arguments (5) out; then those 10 cached + the result (3)
    # in, six words out.
    first, second = realtime_logs(key_id=key_of(secret).pk)
    assert (first.prompt_tokens, first.completion_tokens, first.usage_estimated) == (5, 5, False)
    assert (second.prompt_tokens, second.completion_tokens) == (13, 6)
    assert (called.usage.input_tokens, called.usage.output_tokens) == (5, 5)
    assert second.cost == 3 * TEXT_IN + 10 * CACHED + 6 * TEXT_OUT


def test_function_results_and_tools_that_do_not_translate_get_error_events(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    emulator = live_model()
    secret = make_key()
    with raw_connect(live_ogem, query="model=gem", key=secret) as ws:
        send(
            ws,
            {
                "type": "session.update",
                "event_id": "ev1",
                "session": {"tools": [{"type": "mcp", "server_label": "x"}]},
            },
        )
        error = events_until(ws, "error")[-1]["error"]
        assert (error["code"], error["event_id"]) == ("invalid_value", "ev1")
        unknown = {"type": "function_call_output", "call_id": "call_nope", "output": "1"}
        send(ws, {"type": "conversation.item.create", "event_id": "ev2", "item": unknown})
        error = events_until(ws, "error")[-1]["error"]
        assert (error["code"], error["event_id"]) == ("invalid_value", "ev2")
        # tool_choice "none": the model gets no tools at all.
        send(
            ws,
            {
                "type": "session.update",
                "session": {
                    "output_modalities": ["text"],
                    "tools": [WEATHER_TOOL],
                    "tool_choice": "none",
                },
            },
        )
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create"})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"
    assert "tools" not in emulator.connections[0].setup


def test_an_audio_append_that_is_not_json_gets_an_error_from_the_translation(  # type: ignore[no-untyped-def]
    live_model, live_ogem, make_key
) -> None:
    live_model()
    with raw_connect(live_ogem, query="model=gem", key=make_key()) as ws:
        events_until(ws, "session.created")
        ws.send('{"type": "input_audio_buffer.append", "audio": "AAAA",}')
        assert events_until(ws, "error")[-1]["error"]["code"] == "invalid_json"
        send(ws, {"type": "session.update", "session": {"output_modalities": ["text"]}})
        send(ws, user_text("Hi"))
        send(ws, {"type": "response.create"})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"
