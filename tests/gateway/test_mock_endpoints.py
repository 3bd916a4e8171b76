"""Every /v1 endpoint through the live server and the official SDK, served by the mock provider."""

from __future__ import annotations

import base64
import io
import struct

import httpx
import openai
import pytest

from providers.mock.adapter import mock_token_count
from tests.schemas import schema_validate

HELLO = [{"role": "user", "content": "Hello, world!"}]


def test_chat_completion_is_deterministic_and_valid(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="mock-chat", messages=HELLO)
    body = raw.http_response.json()
    schema_validate("CreateChatCompletionResponse", body)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Mock reply to: Hello, world!"
    assert completion.choices[0].finish_reason == "stop"
    # "Hello , world !" is 4 tokens; "Mock reply to : Hello , world !" is 8.
    assert completion.usage.prompt_tokens == 4
    assert completion.usage.completion_tokens == 8
    assert completion.usage.total_tokens == 12
    assert raw.headers["x-ogem-provider"] == "mock"
    assert raw.headers["x-ogem-deployment"] == "builtin:mock-chat"


def test_chat_n_and_max_tokens(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="mock-chat", messages=HELLO, n=2, max_tokens=3, seed=7, stop=["zzz"]
    )
    assert [c.index for c in completion.choices] == [0, 1]
    assert completion.choices[1].message.content == "Mock reply to"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 6


def test_chat_mock_response_text(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="mock-chat", messages=HELLO, extra_body={"mock_response": "Fixed answer."}
    )
    assert completion.choices[0].message.content == "Fixed answer."
    assert completion.usage.completion_tokens == mock_token_count("Fixed answer.")


def test_chat_stream_chunks_and_done(live_ogem, master_key: str) -> None:
    with httpx.stream(
        "POST",
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={"model": "mock-chat", "messages": HELLO, "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert lines[-2].startswith(": x-ogem-overhead-ms=")
    events = [httpx.Response(200, content=line[6:]).json() for line in lines[:-2]]
    for event in events:
        schema_validate("CreateChatCompletionStreamResponse", event)
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events)
    assert text == "Mock reply to: Hello, world!"
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in e for e in events)  # not asked for: the usage chunk is dropped


def test_chat_stream_with_usage_via_sdk(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="mock-chat",
        messages=HELLO,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage.prompt_tokens == 4
    assert chunks[-1].usage.completion_tokens == 8
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock reply to: Hello, world!"


def test_legacy_completions(client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(model="mock-chat", prompt="Say hi")
    schema_validate("CreateCompletionResponse", raw.http_response.json())
    assert raw.parse().choices[0].text == "Mock reply to: Say hi"
    streamed = client.completions.create(model="mock-chat", prompt="Say hi", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "Mock reply to: Say hi"


def test_embeddings_float_base64_dimensions(client: openai.OpenAI) -> None:
    raw = client.embeddings.with_raw_response.create(
        model="mock-embed", input=["alpha", "beta"], encoding_format="float"
    )
    schema_validate("CreateEmbeddingResponse", raw.http_response.json())
    floats = raw.parse()
    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == 16
    assert floats.usage.prompt_tokens == 2
    again = client.embeddings.create(model="mock-embed", input="alpha", encoding_format="float")
    assert again.data[0].embedding == floats.data[0].embedding
    sized = client.embeddings.create(model="mock-embed", input="alpha", dimensions=8)
    assert len(sized.data[0].embedding) == 8
    encoded = httpx.post(
        str(client.base_url) + "embeddings",
        headers={"Authorization": f"Bearer {client.api_key}"},
        json={"model": "mock-embed", "input": "alpha", "encoding_format": "base64"},
    ).json()
    vector = struct.unpack("<16f", base64.b64decode(encoded["data"][0]["embedding"]))
    assert [round(v, 5) for v in vector] == [round(v, 5) for v in floats.data[0].embedding]


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    raw = client.models.with_raw_response.list()
    schema_validate("ListModelsResponse", raw.http_response.json())
    ids = [m.id for m in raw.parse().data]
    assert ids[:2] == ["mock-chat", "mock-embed"]
    model = client.models.retrieve("mock-embed")
    assert (model.id, model.owned_by) == ("mock-embed", "mock")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_images(client: openai.OpenAI) -> None:
    raw = client.images.with_raw_response.generate(model="mock-image", prompt="a cat", n=2)
    schema_validate("ImagesResponse", raw.http_response.json())
    assert len(raw.parse().data) == 2
    png = base64.b64decode(raw.parse().data[0].b64_json)
    assert png.startswith(b"\x89PNG")
    edited = client.images.edit(
        model="mock-image", image=("cat.png", png, "image/png"), prompt="a hat"
    )
    assert len(edited.data) == 1
    varied = client.images.create_variation(model="mock-image", image=("cat.png", png), n=3)
    assert len(varied.data) == 3


def test_audio(client: openai.OpenAI) -> None:
    audio = io.BytesIO(b"RIFF" + b"\x00" * 96)
    audio.name = "clip.wav"
    transcript = client.audio.transcriptions.create(model="mock-whisper", file=audio)
    assert transcript.text == "Mock transcription of 100 bytes."
    audio.seek(0)
    translated = client.audio.translations.create(model="mock-whisper", file=audio)
    assert translated.text == "Mock transcription of 100 bytes."
    audio.seek(0)
    plain = client.audio.transcriptions.create(
        model="mock-whisper", file=audio, response_format="text"
    )
    assert plain.strip() == "Mock transcription of 100 bytes."
    speech = client.audio.speech.with_raw_response.create(
        model="mock-tts", voice="alloy", input="Hello there, friend"
    )
    assert speech.headers["content-type"] == "audio/mpeg"
    assert speech.content.startswith(b"ID3MOCK")
    assert len(speech.content) == 7 + 32 * 2


def test_moderations(client: openai.OpenAI) -> None:
    raw = client.moderations.with_raw_response.create(
        model="mock-moderation", input=["fine", "violence"]
    )
    schema_validate("CreateModerationResponse", raw.http_response.json())
    results = raw.parse().results
    assert [r.flagged for r in results] == [False, True]
    defaulted = client.moderations.create(input="fine")  # no model: the moderation model
    assert defaulted.model == "mock-moderation"


def test_rerank(live_ogem, master_key: str) -> None:
    response = httpx.post(
        f"{live_ogem.url}/v1/rerank",
        headers={"Authorization": f"Bearer {master_key}"},
        json={
            "model": "mock-rerank",
            "query": "red apple",
            "documents": ["green pear", "red apple pie", "apple"],
            "top_n": 2,
            "return_documents": True,
        },
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["index"], r["relevance_score"]) for r in results] == [(1, 1.0), (2, 0.5)]
    assert results[0]["document"] == {"text": "red apple pie"}


def test_openapi_document(live_ogem) -> None:
    response = httpx.get(f"{live_ogem.url}/v1/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/audio/speech"} <= set(
        paths
    )
    # Generated clients name methods by operation id: two routes may not share one.
    operation_ids = [op["operationId"] for item in paths.values() for op in item.values()]
    assert sorted({o for o in operation_ids if operation_ids.count(o) > 1}) == []
