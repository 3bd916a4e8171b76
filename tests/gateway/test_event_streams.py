"""`stream: true` on /v1/images/generations, /v1/images/edits and /v1/audio/transcriptions,
through the live server and the official SDK: OpenAI's typed events (`image_generation.*`,
`image_edit.*`, `transcript.text.*`) from the mock provider, relayed from an upstream that streams
them (the OpenAI emulator) and made from the complete answer of one that does not (Azure, and
OpenAI's whisper-1), with usage charged as for a complete answer."""

from __future__ import annotations

import base64
import io
import time
from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import RequestLog
from billing.services import usage_drain
from providers.base import Deployment
from providers.mock.adapter import _PNG
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import IMAGE_B64, PARTIAL_B64, OpenAIEmulator
from tests.live import LiveServer

MOCK_PNG = base64.b64encode(_PNG).decode()
INPUT_PRICE = Decimal("0.000005")
OUTPUT_PRICE = Decimal("0.00004")
SECOND_PRICE = Decimal("0.0001")
AUDIO = b"OggS" + bytes(range(256)) * 4


def _audio() -> io.BytesIO:
    audio = io.BytesIO(AUDIO)
    audio.name = "speech.ogg"
    return audio


@pytest.fixture
def upstream(openai_emulator: OpenAIEmulator, install_deployments) -> OpenAIEmulator:  # type: ignore[no-untyped-def]
    prices = {
        "input_cost_per_token": float(INPUT_PRICE),
        "output_cost_per_token": float(OUTPUT_PRICE),
    }
    install_deployments(
        Deployment(
            id="test:gpt-image",
            model_name="gpt-image",
            provider="openai",
            upstream_model="gpt-image-1",
            api_base=f"{openai_emulator.url}/v1",
            api_key=UPSTREAM_KEY,
            params=prices,
        ),
        Deployment(
            id="test:transcribe",
            model_name="transcribe",
            provider="openai",
            upstream_model="gpt-4o-transcribe",
            api_base=f"{openai_emulator.url}/v1",
            api_key=UPSTREAM_KEY,
            params=prices,
        ),
        Deployment(
            id="test:whisper",
            model_name="whisper",
            provider="openai",
            upstream_model="whisper-1",
            api_base=f"{openai_emulator.url}/v1",
            api_key=UPSTREAM_KEY,
            params={"input_cost_per_second": float(SECOND_PRICE)},
        ),
        Deployment(
            id="test:azure-image",
            model_name="azure-image",
            provider="azure",
            upstream_model="dall-e-3",
            api_base=openai_emulator.url,
            api_key=UPSTREAM_KEY,
            api_version="2024-10-21",
            params={"deployment": "images"},
        ),
    )
    return openai_emulator


def _row(model: str) -> RequestLog:
    """The request's log row, once its usage event was drained (a stream settles after its
    last byte)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        usage_drain()
        row = RequestLog.objects.filter(model=model).first()
        if row is not None:
            return row
        time.sleep(0.02)
    raise AssertionError(f"no request log for {model}")


def test_mock_image_generation_streams_partials_then_completed(client: openai.OpenAI) -> None:
    events = list(
        client.images.generate(
            model="mock-image", prompt="a cat in a hat", stream=True, partial_images=2, n=2
        )
    )
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ] * 2
    assert [getattr(e, "partial_image_index", None) for e in events[:3]] == [0, 1, None]
    assert all(e.b64_json == MOCK_PNG for e in events)
    completed = events[2]
    assert (completed.size, completed.quality, completed.output_format) == ("auto", "auto", "png")
    assert completed.usage.input_tokens == 5  # "a cat in a hat"
    assert completed.usage.input_tokens_details.text_tokens == 5


def test_mock_image_edit_and_transcription_stream(client: openai.OpenAI) -> None:
    edited = list(
        client.images.edit(
            model="mock-image",
            image=("cat.png", _PNG, "image/png"),
            prompt="add a hat",
            stream=True,
            partial_images=1,
        )
    )
    assert [e.type for e in edited] == ["image_edit.partial_image", "image_edit.completed"]
    assert edited[1].b64_json == MOCK_PNG
    transcript = list(
        client.audio.transcriptions.create(model="mock-whisper", file=_audio(), stream=True)
    )
    assert [e.type for e in transcript] == ["transcript.text.delta"] * 5 + ["transcript.text.done"]
    assert "".join(e.delta for e in transcript[:-1]) == "Mock transcription of 1028 bytes."
    assert transcript[-1].text == "Mock transcription of 1028 bytes."


def test_stream_wire_format(live_ogem: LiveServer, master_key: str) -> None:
    """Each event as `event: <type>` and `data:`, then Ogem's overhead comment; no [DONE]."""
    with httpx.stream(
        "POST",
        f"{live_ogem.url}/v1/images/generations",
        headers={"Authorization": f"Bearer {master_key}"},
        json={"model": "mock-image", "prompt": "a cat", "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-ogem-provider"] == "mock"
        lines = [line for line in response.iter_lines() if line]
    assert lines[0] == "event: image_generation.completed"
    assert lines[1].startswith('data: {"type":"image_generation.completed"')
    assert lines[2].startswith(": x-ogem-overhead-ms=")
    assert len(lines) == 3


def test_openai_image_stream_is_relayed_and_charged(sdk: openai.OpenAI, upstream) -> None:  # type: ignore[no-untyped-def]
    events = list(
        sdk.images.generate(model="gpt-image", prompt="a red fox", stream=True, partial_images=2)
    )
    assert upstream.last.json["stream"] is True
    assert upstream.last.json["partial_images"] == 2
    assert upstream.last.json["model"] == "gpt-image-1"
    assert [e.type for e in events] == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]
    assert [e.b64_json for e in events] == [PARTIAL_B64, PARTIAL_B64, IMAGE_B64]
    assert events[2].usage.output_tokens == 272
    row = _row("gpt-image")
    assert row.stream is True
    assert (row.prompt_tokens, row.completion_tokens) == (3, 272)
    assert row.cost == 3 * INPUT_PRICE + 272 * OUTPUT_PRICE


def test_openai_image_edit_stream_is_relayed(sdk: openai.OpenAI, upstream) -> None:  # type: ignore[no-untyped-def]
    events = list(
        sdk.images.edit(
            model="gpt-image",
            image=("in.png", b"\x89PNGdata"),
            prompt="a hat",
            stream=True,
            partial_images=1,
        )
    )
    assert upstream.last.form["stream"] == "true"
    assert upstream.last.files["image"] == ("in.png", b"\x89PNGdata")
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    assert events[1].b64_json == IMAGE_B64


def test_openai_transcript_stream_is_relayed_and_charged(sdk: openai.OpenAI, upstream) -> None:  # type: ignore[no-untyped-def]
    events = list(sdk.audio.transcriptions.create(model="transcribe", file=_audio(), stream=True))
    assert upstream.last.form["stream"] == "true"
    assert upstream.last.files["file"] == ("speech.ogg", AUDIO)
    text = "Heard 1028 bytes from speech.ogg."
    assert [e.type for e in events] == ["transcript.text.delta"] * 5 + ["transcript.text.done"]
    assert "".join(e.delta for e in events[:-1]) == text
    done = events[-1]
    assert done.text == text
    assert (done.usage.input_tokens, done.usage.output_tokens) == (20, 8)
    row = _row("transcribe")
    assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (20, 8, 28)
    assert row.cost == 20 * INPUT_PRICE + 8 * OUTPUT_PRICE


def test_upstreams_that_answer_in_full_become_events(sdk: openai.OpenAI, upstream) -> None:  # type: ignore[no-untyped-def]
    # whisper-1: OpenAI ignores `stream` and answers JSON.
    events = list(sdk.audio.transcriptions.create(model="whisper", file=_audio(), stream=True))
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert events[-1].text == "Heard 1028 bytes from speech.ogg."
    assert "".join(e.delta for e in events[:-1]) == events[-1].text
    assert _row("whisper").cost == 3 * SECOND_PRICE  # its usage: {"type": "duration", ...}
    # Azure's adapter does not stream images: asked without `stream`, relayed as events.
    images = list(sdk.images.generate(model="azure-image", prompt="a cat", n=2, stream=True))
    assert "stream" not in upstream.last.json
    assert upstream.last.path == "/openai/deployments/images/images/generations"
    assert [e.type for e in images] == ["image_generation.completed"] * 2
    assert images[0].b64_json == IMAGE_B64
    assert images[0].usage.total_tokens == 0


def test_upstream_error_before_the_stream_keeps_its_status(sdk: openai.OpenAI, upstream) -> None:  # type: ignore[no-untyped-def]
    upstream.inject(status=429)
    with pytest.raises(openai.RateLimitError):
        list(sdk.images.generate(model="gpt-image", prompt="a cat", stream=True))


def test_stream_cut_midway_ends_with_error_event(sdk: openai.OpenAI, upstream) -> None:  # type: ignore[no-untyped-def]
    upstream.inject(cut_after_chunks=1)
    stream = sdk.images.generate(model="gpt-image", prompt="a cat", stream=True, partial_images=2)
    with pytest.raises(openai.APIError, match=r"ended (the stream|its response) early"):
        list(stream)


def test_a_transcription_billed_by_the_second_is_charged_for_its_seconds(
    sdk: openai.OpenAI,
    upstream,  # type: ignore[no-untyped-def]
) -> None:
    transcript = sdk.audio.transcriptions.create(model="whisper", file=_audio())
    assert transcript.text == "Heard 1028 bytes from speech.ogg."
    row = _row("whisper")
    assert row.stream is False
    assert row.cost == 3 * SECOND_PRICE  # whisper-1's usage: {"type": "duration", "seconds": 3}
