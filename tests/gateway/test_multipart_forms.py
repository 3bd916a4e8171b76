"""Multipart /v1 endpoints take their fields as OpenAI does: form fields arrive as strings, and the
image endpoints default their model when the request names none."""

from __future__ import annotations

import base64
import io

import httpx
import openai

from tests.schemas import schema_validate


def _png(client: openai.OpenAI) -> bytes:
    generated = client.images.generate(model="mock-image", prompt="a cat")
    return base64.b64decode(generated.data[0].b64_json)


def test_form_fields_arrive_as_strings_and_are_read_as_typed(client: openai.OpenAI) -> None:
    png = _png(client)
    edited = client.images.edit(
        model="mock-image", image=("cat.png", png, "image/png"), prompt="a hat", n=2, stream=False
    )
    assert len(edited.data) == 2
    audio = io.BytesIO(b"RIFF" + b"\x00" * 96)
    audio.name = "clip.wav"
    transcript = client.audio.transcriptions.create(
        model="mock-whisper", file=audio, temperature=0.2, stream=False
    )
    assert transcript.text == "Mock transcription of 100 bytes."


def test_form_booleans_and_numbers_are_checked(live_ogem, master_key: str) -> None:
    headers = {"Authorization": f"Bearer {master_key}"}
    files = {"file": ("clip.wav", b"RIFF" + b"\x00" * 96, "audio/wav")}
    for field, value, param in (
        ("stream", "maybe", "stream"),
        ("temperature", "hot", "temperature"),
    ):
        response = httpx.post(
            f"{live_ogem.url}/v1/audio/transcriptions",
            headers=headers,
            data={"model": "mock-whisper", field: value},
            files=files,
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


def test_image_endpoints_default_their_model(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(prompt="a cat")
    schema_validate("ImagesResponse", raw.http_response.json())
    assert raw.headers["x-ogem-provider"] == "mock"
    png = base64.b64decode(raw.parse().data[0].b64_json)
    edited = client.images.edit(image=("cat.png", png, "image/png"), prompt="a hat")
    assert len(edited.data) == 1
    varied = client.images.create_variation(image=("cat.png", png), n=2)
    assert len(varied.data) == 2
