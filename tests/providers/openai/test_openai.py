"""The openai provider against the local OpenAI emulator, driven through Ogem with the SDK."""

from __future__ import annotations

import io

import httpx
import openai
import pytest

from providers.base import Deployment, Timeouts
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.schemas import schema_validate

HELLO = [{"role": "user", "content": "Hello there"}]


@pytest.fixture
def upstream(openai_emulator, install_deployments):  # type: ignore[no-untyped-def]
    base = f"{openai_emulator.url}/v1"
    install_deployments(
        Deployment(
            id="test:gpt",
            model_name="gpt",
            provider="openai",
            upstream_model="gpt-4o-mini",
            api_base=base,
            api_key=UPSTREAM_KEY,
            params={"organization": "org-123"},
        ),
        Deployment(
            id="test:gpt-impatient",
            model_name="gpt-impatient",
            provider="openai",
            upstream_model="gpt-4o-mini",
            api_base=base,
            api_key=UPSTREAM_KEY,
            timeouts=Timeouts(connect=1, first_byte=0.3, total=5),
        ),
        Deployment(
            id="test:gpt-badkey",
            model_name="gpt-badkey",
            provider="openai",
            upstream_model="gpt-4o-mini",
            api_base=base,
            api_key="sk-wrong-upstream-secret",
        ),
        Deployment(
            id="test:gpt-down",
            model_name="gpt-down",
            provider="openai",
            upstream_model="gpt-4o-mini",
            api_base="http://127.0.0.1:9/v1",
            api_key=UPSTREAM_KEY,
        ),
    )
    return openai_emulator


def test_chat_relays_and_passes_unknown_fields(sdk: openai.OpenAI, upstream) -> None:  # type: ignore[no-untyped-def]
    raw = sdk.chat.completions.with_raw_response.create(
        model="gpt",
        messages=HELLO,
        temperature=0.2,
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        tool_choice="auto",
        parallel_tool_calls=True,
        response_format={"type": "json_object"},
        extra_body={"brand_new_param": {"x": 1}, "metadata": {"tags": ["a"], "team": "x"}},
    )
    body = raw.http_response.json()
    schema_validate("CreateChatCompletionResponse", body)
    assert body["emulator_extra"] == {"kept": True}  # extra response fields kept
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "lookup"
    sent = upstream.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.headers["openai-organization"] == "org-123"
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["brand_new_param"] == {"x": 1}
    assert sent.json["metadata"] == {"team": "x"}  # Ogem's tags stay with Ogem
    assert sent.json["parallel_tool_calls"] is True
    assert raw.headers["x-ogem-provider"] == "openai"
    assert raw.headers["x-ogem-deployment"] == "test:gpt"


def test_stream_asks_for_usage_and_hides_it(sdk: openai.OpenAI, upstream) -> None:  # type: ignore[no-untyped-def]
    chunks = list(sdk.chat.completions.create(model="gpt", messages=HELLO, stream=True))
    assert upstream.last.json["stream_options"] == {"include_usage": True}
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == (
        "Emulated reply to: Hello there"
    )
    for chunk in chunks:
        schema_validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    with_usage = list(
        sdk.chat.completions.create(
            model="gpt", messages=HELLO, stream=True, stream_options={"include_usage": True}
        )
    )
    assert with_usage[-1].usage.total_tokens == 2 + 6


def test_completions_and_embeddings(sdk: openai.OpenAI, upstream) -> None:  # type: ignore[no-untyped-def]
    completion = sdk.completions.create(model="gpt", prompt="Say hi")
    assert completion.choices[0].text == "Emulated reply to: Say hi"
    streamed = sdk.completions.create(model="gpt", prompt="Say hi", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "Emulated reply to: Say hi"
    raw = sdk.embeddings.with_raw_response.create(
        model="gpt", input=["a", "bb"], dimensions=3, encoding_format="float"
    )
    schema_validate("CreateEmbeddingResponse", raw.http_response.json())
    assert upstream.last.json == {
        "model": "gpt-4o-mini",
        "input": ["a", "bb"],
        "dimensions": 3,
        "encoding_format": "float",
    }
    assert len(raw.parse().data[1].embedding) == 3


def test_images_audio_moderations(sdk: openai.OpenAI, upstream) -> None:  # type: ignore[no-untyped-def]
    generated = sdk.images.generate(model="gpt", prompt="a cat", n=2)
    assert len(generated.data) == 2
    edited = sdk.images.edit(model="gpt", image=("in.png", b"\x89PNGdata"), prompt="hat")
    assert len(edited.data) == 1
    assert upstream.last.files["image"] == ("in.png", b"\x89PNGdata")
    assert upstream.last.form["model"] == "gpt-4o-mini"
    assert upstream.last.form["prompt"] == "hat"
    audio = io.BytesIO(b"OggS" + bytes(range(256)) * 4)
    audio.name = "speech.ogg"
    transcript = sdk.audio.transcriptions.create(model="gpt", file=audio, language="en")
    assert transcript.text == "Heard 1028 bytes from speech.ogg."
    assert upstream.last.files["file"][1] == b"OggS" + bytes(range(256)) * 4
    assert upstream.last.form["language"] == "en"
    speech = sdk.audio.speech.with_raw_response.create(model="gpt", voice="alloy", input="ab")
    assert speech.content == b"ID3" + b"ab" * 1000
    assert speech.headers["content-type"] == "audio/mpeg"
    moderation = sdk.moderations.create(model="gpt", input="fine")
    assert moderation.results[0].flagged is False


@pytest.mark.parametrize(
    ("status", "exception", "ogem_status", "error_type"),
    [
        (400, openai.BadRequestError, 400, "invalid_request_error"),
        (404, openai.NotFoundError, 404, "not_found_error"),
        (429, openai.RateLimitError, 429, "rate_limit_error"),
        (500, openai.InternalServerError, 502, "upstream_error"),
        (503, openai.InternalServerError, 503, "upstream_error"),
    ],
)
def test_upstream_errors_are_mapped(
    sdk, upstream, status, exception, ogem_status, error_type
) -> None:  # type: ignore[no-untyped-def]
    upstream.inject(status=status, headers={"Retry-After": "7"})
    with pytest.raises(exception) as caught:
        sdk.chat.completions.create(model="gpt", messages=HELLO)
    assert caught.value.status_code == ogem_status
    assert caught.value.body["type"] == error_type
    assert "openai" in caught.value.body["message"]
    if status == 429:
        assert caught.value.response.headers["retry-after"] == "7"


def test_upstream_credentials_refused_never_leak(sdk, upstream) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="gpt-badkey", messages=HELLO)
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "upstream_error"
    assert "sk-wrong-upstream-secret" not in caught.value.response.text


def test_timeout_and_unreachable(sdk, upstream) -> None:  # type: ignore[no-untyped-def]
    upstream.inject(first_byte_delay=1.0)
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="gpt-impatient", messages=HELLO)
    assert caught.value.status_code == 504
    assert caught.value.body["code"] == "upstream_timeout"
    with pytest.raises(openai.APIStatusError) as down:
        sdk.chat.completions.create(model="gpt-down", messages=HELLO)
    assert down.value.status_code == 503
    assert down.value.body["type"] == "upstream_error"


def test_stream_cut_midway_ends_with_error_event(live_ogem, master_key, upstream) -> None:  # type: ignore[no-untyped-def]
    upstream.inject(cut_after_chunks=2)
    response = httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={"model": "gpt", "messages": HELLO, "stream": True},
    )
    assert response.status_code == 200
    events = [line for line in response.text.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    error = httpx.Response(200, content=events[-2][6:]).json()["error"]
    assert error["type"] == "upstream_error"
    assert "openai" in error["message"]
    assert len(events) == 4  # two relayed chunks, the error event, [DONE]


def test_vision_audio_parts_and_json_schema_pass_through(sdk: openai.OpenAI, upstream) -> None:  # type: ignore[no-untyped-def]
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "low"},
                },
                {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            ],
        }
    ]
    schema = {"name": "answer", "schema": {"type": "object"}, "strict": True}
    sdk.chat.completions.create(
        model="gpt",
        messages=messages,
        response_format={"type": "json_schema", "json_schema": schema},
        logprobs=True,
        top_logprobs=2,
        seed=3,
        stop=["\n"],
    )
    sent = upstream.last.json
    assert sent["messages"] == messages
    assert sent["response_format"] == {"type": "json_schema", "json_schema": schema}
    assert (sent["logprobs"], sent["top_logprobs"], sent["seed"], sent["stop"]) == (
        True,
        2,
        3,
        ["\n"],
    )


def test_deployment_proxy_is_used(sdk: openai.OpenAI, openai_emulator, install_deployments) -> None:  # type: ignore[no-untyped-def]
    install_deployments(
        Deployment(
            id="test:proxied",
            model_name="proxied",
            provider="openai",
            upstream_model="gpt-4o-mini",
            api_base="http://upstream.invalid/v1",
            api_key=UPSTREAM_KEY,
            proxy=openai_emulator.url,  # the emulator stands in for the forward proxy
        )
    )
    completion = sdk.chat.completions.create(model="proxied", messages=HELLO)
    assert completion.choices[0].message.content == "Emulated reply to: Hello there"
    assert openai_emulator.last.headers["host"] == "upstream.invalid"
