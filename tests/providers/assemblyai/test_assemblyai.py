"""AssemblyAI behind /v1/audio/transcriptions: upload, job, poll, exports — end to end with the
official SDK, checking each upstream round trip and the answer in every response format."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from gateway.config import config_load
from providers.assemblyai.adapter import job_to_transcript, transcript_job
from providers.base import Deployment
from providers.transcripts import Segment, Word
from tests.emulators.assemblyai_api import (
    API_KEY,
    AssemblyAIEmulator,
    FailJob,
    aai_error,
    assemblyai_emulator_get,
)
from tests.schemas import schema_validate

AUDIO = ("call.mp3", b"Hello world. How are you today.", "audio/mpeg")


@pytest.fixture
def aai_emulator() -> Iterator[AssemblyAIEmulator]:
    emulator = assemblyai_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def universal(
    aai_emulator: AssemblyAIEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    install_deployments: Callable[..., None],
) -> str:
    monkeypatch.setenv("R2E_AAI_KEY", API_KEY)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
model_list:
  - model_name: universal
    litellm_params:
      model: assemblyai/universal
      api_base: {aai_emulator.url}
      api_key: os.environ/R2E_AAI_KEY
      poll_interval: 0.05
"""
    )
    install_deployments(*config_load(str(path)).deployments)
    return "universal"


def test_job_and_transcript_translation() -> None:
    deployment = Deployment(
        id="t",
        model_name="u",
        provider="assemblyai",
        upstream_model="slam-1",
        params={"transcript": {"speaker_labels": True}},
    )
    assert transcript_job(body={"language": "en"}, deployment=deployment, audio_url="u") == {
        "audio_url": "u",
        "punctuate": True,
        "format_text": True,
        "speech_model": "slam-1",
        "language_code": "en",
        "speaker_labels": True,
    }
    job = {
        "text": "Hi there.",
        "audio_duration": 2,
        "language_code": "en_us",
        "words": [{"text": "Hi", "start": 100, "end": 600}],
    }
    transcript = job_to_transcript(job, [{"text": "Hi there.", "start": 100, "end": 1200}])
    assert transcript.segments == [Segment(0.1, 1.2, "Hi there.")]
    assert transcript.words == [Word("Hi", 0.1, 0.6)]
    assert (transcript.text, transcript.duration, transcript.language) == (
        "Hi there.",
        2.0,
        "en_us",
    )


@pytest.mark.live
def test_json_upload_job_and_polls(
    sdk: openai.OpenAI, universal: str, aai_emulator: AssemblyAIEmulator
) -> None:
    raw = sdk.audio.transcriptions.with_raw_response.create(model=universal, file=AUDIO)
    assert [(r.method, r.path) for r in aai_emulator.requests] == [
        ("POST", "/v2/upload"),
        ("POST", "/v2/transcript"),
        ("GET", "/v2/transcript/job-2"),
        ("GET", "/v2/transcript/job-2"),
    ]
    upload, create = aai_emulator.requests[:2]
    assert upload.raw == AUDIO[1]
    assert upload.headers["authorization"] == API_KEY
    assert create.body == {
        "audio_url": f"{aai_emulator.url}/cdn/upload/up1",
        "punctuate": True,
        "format_text": True,
        "speech_model": "universal",
        "language_detection": True,
    }
    assert raw.http_response.json() == {
        "text": "Hello world. How are you today.",
        "usage": {"type": "duration", "seconds": 3},
    }
    assert raw.headers["x-ogem-provider"] == "assemblyai"
    schema_validate("CreateTranscriptionResponseJson", raw.http_response.json())


@pytest.mark.live
def test_text_srt_and_vtt_use_its_exports(
    sdk: openai.OpenAI, universal: str, aai_emulator: AssemblyAIEmulator
) -> None:
    text = sdk.audio.transcriptions.create(
        model=universal, file=AUDIO, response_format="text", language="en"
    )
    assert text == "Hello world. How are you today.\n"
    assert aai_emulator.requests[1].body["language_code"] == "en"
    srt = sdk.audio.transcriptions.create(model=universal, file=AUDIO, response_format="srt")
    assert srt == (
        "1\n00:00:00,000 --> 00:00:01,000\nHello world.\n\n"
        "2\n00:00:01,000 --> 00:00:03,000\nHow are you today.\n"
    )
    vtt = sdk.audio.transcriptions.create(model=universal, file=AUDIO, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nHello world.\n")
    paths = [r.path for r in aai_emulator.requests]
    assert paths.count("/v2/transcript/job-4/srt") == 1
    assert paths.count("/v2/transcript/job-6/vtt") == 1


@pytest.mark.live
def test_verbose_json_segments_from_sentences(
    sdk: openai.OpenAI, universal: str, aai_emulator: AssemblyAIEmulator
) -> None:
    raw = sdk.audio.transcriptions.with_raw_response.create(
        model=universal,
        file=AUDIO,
        response_format="verbose_json",
        timestamp_granularities=["segment", "word"],
    )
    body = raw.http_response.json()
    schema_validate("CreateTranscriptionResponseVerboseJson", body)
    assert (body["language"], body["duration"]) == ("en_us", 3.0)
    assert [(s["start"], s["end"], s["text"]) for s in body["segments"]] == [
        (0.0, 1.0, "Hello world."),
        (1.0, 3.0, "How are you today."),
    ]
    assert body["words"][-1] == {"word": "today.", "start": 2.5, "end": 3.0}


@pytest.mark.live
def test_failed_job_is_a_400_with_its_message(
    sdk: openai.OpenAI, universal: str, aai_emulator: AssemblyAIEmulator
) -> None:
    aai_emulator.script(FailJob("Transcoding failed. File does not appear to contain audio."))
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.audio.transcriptions.create(model=universal, file=AUDIO)
    assert caught.value.body["message"] == (
        "assemblyai could not transcribe the audio: "
        "Transcoding failed. File does not appear to contain audio."
    )


@pytest.mark.live
def test_upstream_error_and_rate_limit(
    sdk: openai.OpenAI, universal: str, aai_emulator: AssemblyAIEmulator
) -> None:
    aai_emulator.script(
        aai_error(429, "Too many concurrent requests", **{"Retry-After": "9"}),
        aai_error(500, "Internal server error"),
    )
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.audio.transcriptions.create(model=universal, file=AUDIO)
    assert limited.value.response.headers["retry-after"] == "9"
    assert limited.value.body["message"] == "assemblyai returned 429: Too many concurrent requests"
    with pytest.raises(openai.APIStatusError) as failed:
        sdk.audio.transcriptions.create(model=universal, file=AUDIO)
    assert failed.value.status_code == 502
    assert failed.value.body["message"] == "assemblyai returned 500: Internal server error"
