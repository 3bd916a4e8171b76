"""Deepgram behind /v1/audio/transcriptions: every response format, end to end with the SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from gateway.config import config_load
from providers.base import Deployment
from providers.deepgram.adapter import listen_url
from providers.transcripts import Segment, Transcript, transcript_srt, transcript_vtt
from tests.emulators.deepgram_api import (
    API_KEY,
    DeepgramEmulator,
    deepgram_emulator_get,
    dg_error,
)
from tests.schemas import schema_validate

AUDIO = ("speech.wav", b"Hello world. How are you today.", "audio/wav")
DEPLOYMENT = Deployment(id="t", model_name="d", provider="deepgram", upstream_model="nova-3")


@pytest.fixture
def deepgram_emulator() -> Iterator[DeepgramEmulator]:
    emulator = deepgram_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def nova(
    deepgram_emulator: DeepgramEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    install_deployments: Callable[..., None],
) -> str:
    monkeypatch.setenv("R2E_DEEPGRAM_KEY", API_KEY)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
model_list:
  - model_name: nova
    litellm_params:
      model: deepgram/nova-3
      api_base: {deepgram_emulator.url}
      api_key: os.environ/R2E_DEEPGRAM_KEY
"""
    )
    install_deployments(*config_load(str(path)).deployments)
    return "nova"


def test_listen_url() -> None:
    assert listen_url(deployment=DEPLOYMENT, body={"language": "de", "prompt": "Ogem"}) == (
        "https://api.deepgram.com/v1/listen?model=nova-3&smart_format=true&language=de&keyterm=Ogem"
    )
    with_query = Deployment(
        id="t",
        model_name="d",
        provider="deepgram",
        upstream_model="nova-2",
        api_base="http://h:1/v1",
        params={"query": {"diarize": True}},
    )
    assert listen_url(deployment=with_query, body={"response_format": "srt", "prompt": "x"}) == (
        "http://h:1/v1/listen?model=nova-2&smart_format=true&detect_language=true"
        "&utterances=true&diarize=true"
    )


def test_srt_and_vtt_rendering() -> None:
    transcript = Transcript(
        text="a b",
        duration=3725.25,
        segments=[Segment(0.0, 1.5, " a"), Segment(1.5, 3725.25, "b")],
    )
    assert transcript_srt(transcript) == (
        "1\n00:00:00,000 --> 00:00:01,500\na\n\n2\n00:00:01,500 --> 01:02:05,250\nb\n"
    )
    assert transcript_vtt(transcript) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.500\na\n\n00:00:01.500 --> 01:02:05.250\nb\n"
    )


@pytest.mark.live
def test_json(sdk: openai.OpenAI, nova: str, deepgram_emulator: DeepgramEmulator) -> None:
    raw = sdk.audio.transcriptions.with_raw_response.create(model=nova, file=AUDIO)
    result = raw.parse()
    (received,) = deepgram_emulator.requests
    assert received.query == {"model": "nova-3", "smart_format": "true", "detect_language": "true"}
    assert received.headers["authorization"] == f"Token {API_KEY}"
    assert received.headers["content-type"] == "audio/wav"
    assert received.raw == AUDIO[1]
    assert result.text == "Hello world. How are you today."
    assert raw.http_response.json() == {
        "text": "Hello world. How are you today.",
        "usage": {"type": "duration", "seconds": 3},
    }
    assert raw.headers["x-ogem-provider"] == "deepgram"
    schema_validate("CreateTranscriptionResponseJson", raw.http_response.json())


@pytest.mark.live
def test_text(sdk: openai.OpenAI, nova: str, deepgram_emulator: DeepgramEmulator) -> None:
    text = sdk.audio.transcriptions.create(
        model=nova, file=AUDIO, response_format="text", language="en"
    )
    assert deepgram_emulator.requests[0].query["language"] == "en"
    assert text == "Hello world. How are you today.\n"


@pytest.mark.live
def test_srt_and_vtt(sdk: openai.OpenAI, nova: str, deepgram_emulator: DeepgramEmulator) -> None:
    srt = sdk.audio.transcriptions.create(model=nova, file=AUDIO, response_format="srt")
    vtt = sdk.audio.transcriptions.create(model=nova, file=AUDIO, response_format="vtt")
    assert deepgram_emulator.requests[0].query["utterances"] == "true"
    assert srt == (
        "1\n00:00:00,000 --> 00:00:01,000\nHello world.\n\n"
        "2\n00:00:01,000 --> 00:00:03,000\nHow are you today.\n"
    )
    assert vtt == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello world.\n\n"
        "00:00:01.000 --> 00:00:03.000\nHow are you today.\n"
    )


@pytest.mark.live
def test_verbose_json_with_segments_and_words(
    sdk: openai.OpenAI, nova: str, deepgram_emulator: DeepgramEmulator
) -> None:
    raw = sdk.audio.transcriptions.with_raw_response.create(
        model=nova,
        file=AUDIO,
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    body = raw.http_response.json()
    schema_validate("CreateTranscriptionResponseVerboseJson", body)
    assert (body["language"], body["duration"], body["text"]) == (
        "en",
        3.0,
        "Hello world. How are you today.",
    )
    assert [(s["id"], s["start"], s["end"], s["text"]) for s in body["segments"]] == [
        (0, 0.0, 1.0, "Hello world."),
        (1, 1.0, 3.0, "How are you today."),
    ]
    assert body["words"][:2] == [
        {"word": "Hello", "start": 0.0, "end": 0.5},
        {"word": "world.", "start": 0.5, "end": 1.0},
    ]
    assert len(body["words"]) == 6


@pytest.mark.live
def test_upstream_error_and_rate_limit(
    sdk: openai.OpenAI, nova: str, deepgram_emulator: DeepgramEmulator
) -> None:
    deepgram_emulator.script(
        dg_error(400, "Bad Request", "Unsupported audio format"),
        dg_error(429, "TOO_MANY_REQUESTS", "Too many requests", **{"Retry-After": "5"}),
        dg_error(401, "INVALID_AUTH", f"Invalid credentials {API_KEY}."),
    )
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.audio.transcriptions.create(model=nova, file=AUDIO)
    assert bad.value.body["message"] == "deepgram returned 400: Unsupported audio format"
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.audio.transcriptions.create(model=nova, file=AUDIO)
    assert limited.value.response.headers["retry-after"] == "5"
    with pytest.raises(openai.APIStatusError) as rejected:
        sdk.audio.transcriptions.create(model=nova, file=AUDIO)
    assert rejected.value.status_code == 502
    assert rejected.value.body["message"] == (
        "deepgram returned 401: Invalid credentials [redacted]."
    )


@pytest.mark.live
def test_unknown_response_format_is_refused(
    sdk: openai.OpenAI, nova: str, deepgram_emulator: DeepgramEmulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.audio.transcriptions.create(model=nova, file=AUDIO, response_format="diarized_json")
    assert caught.value.body["param"] == "response_format"
    assert deepgram_emulator.requests == []
