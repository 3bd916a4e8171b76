"""`POST /v1/realtime/calls`: WebRTC session setup passed through to an OpenAI deployment, the
OpenAI emulator answering the SDP offer; the official SDK's `realtime.calls.create` is the
client; keys and client secrets, allow-lists and budgets apply."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest

from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY

OFFER = (
    "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=rtpmap:111 opus/48000/2\r\n"
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:1\r\n"
)


@pytest.fixture
def call_model(openai_emulator, install_deployments):  # type: ignore[no-untyped-def]
    """Model `voice`: one OpenAI deployment on the OpenAI HTTP emulator; `gem`: a Gemini one."""
    install_deployments(
        Deployment(
            id="test:voice-http",
            model_name="voice",
            provider="openai",
            upstream_model="gpt-realtime",
            api_base=f"{openai_emulator.url}/v1",
            api_key=UPSTREAM_KEY,
        ),
        Deployment(
            id="test:gem",
            model_name="gem",
            provider="gemini",
            upstream_model="gemini-live-2.5-flash",
            api_base=openai_emulator.url,
            api_key=UPSTREAM_KEY,
        ),
    )
    return openai_emulator


def test_the_sdk_sets_up_a_call_and_gets_the_sdp_answer(  # type: ignore[no-untyped-def]
    call_model, live_ogem, make_key
) -> None:
    secret = make_key()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
    answer = client.realtime.calls.create(
        sdp=OFFER,
        session={"type": "realtime", "model": "voice", "instructions": "Be brief"},
    )
    text = answer.text
    assert text.startswith("v=0") and "m=audio 9" in text and "a=mid:1" in text
    assert answer.response.status_code == 201
    assert answer.response.headers["location"].startswith("/v1/realtime/calls/rtc_")
    [call] = call_model.calls
    assert call["sdp"] == OFFER
    # The upstream model and the deployment's key, not the client's.
    assert call["session"] == {
        "type": "realtime",
        "instructions": "Be brief",
        "model": "gpt-realtime",
    }
    assert call_model.requests[-1].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_a_browser_offer_with_a_client_secret_takes_the_secrets_model_and_session(  # type: ignore[no-untyped-def]
    call_model, live_ogem, make_key
) -> None:
    secret = make_key()
    minted = httpx.post(
        f"{live_ogem.url}/v1/realtime/client_secrets",
        headers={"Authorization": f"Bearer {secret}"},
        json={"session": {"type": "realtime", "model": "voice", "instructions": "Hi"}},
    ).json()["value"]
    answer = httpx.post(
        f"{live_ogem.url}/v1/realtime/calls",
        headers={"Authorization": f"Bearer {minted}", "Content-Type": "application/sdp"},
        content=OFFER,
    )
    assert answer.status_code == 201
    assert answer.headers["content-type"].startswith("application/sdp")
    [call] = call_model.calls
    assert call["session"] == {"type": "realtime", "instructions": "Hi", "model": "gpt-realtime"}
    # Another model than the secret's is refused.
    other = httpx.post(
        f"{live_ogem.url}/v1/realtime/calls?model=gem",
        headers={"Authorization": f"Bearer {minted}", "Content-Type": "application/sdp"},
        content=OFFER,
    )
    assert other.status_code == 403


def test_calls_are_refused_as_openai_refuses_them(  # type: ignore[no-untyped-def]
    call_model, live_ogem, make_key
) -> None:
    secret = make_key()
    url = f"{live_ogem.url}/v1/realtime/calls"
    sdp = {"Authorization": f"Bearer {secret}", "Content-Type": "application/sdp"}
    cases = [
        ({"Content-Type": "application/sdp"}, "?model=voice", OFFER, 401),
        (sdp, "", OFFER, 400),  # no model
        (sdp, "?model=gem", OFFER, 400),  # no OpenAI deployment: not passed to Gemini
        (sdp, "?model=nope", OFFER, 404),
        (sdp, "?model=voice", "hello", 400),  # not an SDP offer
        ({**sdp, "Content-Type": "text/plain"}, "?model=voice", OFFER, 400),
        # A multipart body Django's parser cannot read (no boundary): 400, not 500.
        ({**sdp, "Content-Type": "multipart/form-data"}, "?model=voice", OFFER, 400),
    ]
    for headers, query, body, status in cases:
        answer = httpx.post(url + query, headers=headers, content=body)
        assert answer.status_code == status, (query, answer.text)
        assert "error" in answer.json()
    assert call_model.calls == []
    assert httpx.post(url + "?model=voice", headers=sdp, content=OFFER).status_code == 201


def test_a_key_without_budget_left_cannot_set_up_a_call(  # type: ignore[no-untyped-def]
    call_model, live_ogem, make_key
) -> None:
    secret = make_key(max_budget=Decimal("0"))
    answer = httpx.post(
        f"{live_ogem.url}/v1/realtime/calls?model=voice",
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/sdp"},
        content=OFFER,
    )
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "budget_exceeded"
    assert call_model.calls == []
