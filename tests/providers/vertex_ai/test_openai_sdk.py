"""End to end: the official `openai` SDK → a live Ogem → the Vertex AI emulator, and back.

Gemini and Claude models on Vertex, authenticated with a service account whose signed JWT the
emulator's token endpoint verifies. Each test checks what the emulator received and what the SDK
got.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jwt
import openai
import pytest

from providers.base import Deployment
from tests.emulators import anthropic_api
from tests.emulators.gemini_api import Reply, embedding_values, reply_error, reply_text
from tests.emulators.vertex_api import CLIENT_EMAIL, PROJECT, SCOPE, VertexEmulator
from tests.live import LiveServer
from tests.providers.gemini.media_server import PNG_BYTES, MediaServer
from tests.providers.openai_sdk import stream_collect
from tests.schemas import schema_validate

pytestmark = pytest.mark.live

GEMINI_PATH = (
    f"/v1/projects/{PROJECT}/locations/europe-west4/publishers/google/models/gemini-2.0-flash"
)
CLAUDE_PATH = (
    f"/v1/projects/{PROJECT}/locations/us-east5/publishers/anthropic/models/"
    "claude-3-5-haiku@20241022"
)
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client(live_ogem: LiveServer, master_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


@pytest.fixture
def models(
    vertex_gemini: Deployment, vertex_claude: Deployment, install_deployments: Callable[..., None]
) -> None:
    install_deployments(vertex_gemini, vertex_claude)


@pytest.fixture
def media_server() -> Iterator[MediaServer]:
    server = MediaServer().start()
    yield server
    server.stop()


# -- service-account authentication -----------------------------------------------------------


def test_gemini_plain_text_with_a_service_account_token(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script(reply_text("Hello from Vertex."))
    raw = client.chat.completions.with_raw_response.create(
        model="vertex-gemini", messages=[{"role": "user", "content": "Hi"}]
    )
    completion = raw.parse()
    token_request, model_request = vertex_emulator.requests
    assert token_request.path == "/token"
    claims = vertex_emulator.assertions[0]
    assert (claims["iss"], claims["aud"], claims["scope"]) == (
        CLIENT_EMAIL,
        "https://oauth2.googleapis.com/token",  # Google's audience, whatever the token URI
        SCOPE,
    )
    assert claims["exp"] - claims["iat"] == 3600
    assertion = token_request.body  # form-encoded: the raw text
    assert "assertion=" in assertion
    header = jwt.get_unverified_header(assertion.split("assertion=")[1].split("&")[0])
    assert header == {"alg": "RS256", "kid": "kid-emulator-1", "typ": "JWT"}
    assert model_request.path == f"{GEMINI_PATH}:generateContent"
    assert model_request.headers["authorization"] == "Bearer ya29.emulator-1"
    assert "x-goog-api-key" not in model_request.headers
    assert model_request.body == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    assert raw.headers["x-ogem-provider"] == "vertex_ai"
    assert completion.choices[0].message.content == "Hello from Vertex."
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 6)


def test_the_token_is_cached_until_close_to_its_expiry(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    for _ in range(3):
        client.chat.completions.create(
            model="vertex-gemini", messages=[{"role": "user", "content": "Hi"}]
        )
    assert len(vertex_emulator.assertions) == 1
    assert [r.headers["authorization"] for r in vertex_emulator.model_requests] == [
        "Bearer ya29.emulator-1"
    ] * 3

    from providers.vertex_ai.auth import tokens_forget

    tokens_forget()
    # A token within the refresh margin (300 s) of its expiry is replaced before it is used.
    vertex_emulator.token_lifetime = 240
    for _ in range(2):
        client.chat.completions.create(
            model="vertex-gemini", messages=[{"role": "user", "content": "Hi"}]
        )
    assert len(vertex_emulator.assertions) == 3
    assert [r.headers["authorization"] for r in vertex_emulator.model_requests[3:]] == [
        "Bearer ya29.emulator-2",
        "Bearer ya29.emulator-3",
    ]


def test_a_key_the_token_endpoint_refuses_is_an_upstream_error(
    client: openai.OpenAI,
    vertex_gemini: Deployment,
    service_account: dict[str, Any],
    install_deployments: Callable[..., None],
    vertex_emulator: VertexEmulator,
) -> None:
    from tests.providers.vertex_ai.conftest import _pem_pair

    other_key = _pem_pair()[0]
    credentials = {**service_account, "private_key": other_key}
    install_deployments(replace(vertex_gemini, params={"vertex_credentials": credentials}))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="vertex-gemini", messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_rejected_credentials"  # type: ignore[index]
    assert caught.value.body["message"] == (  # type: ignore[index]
        f"vertex_ai: the token endpoint refused the service account {CLIENT_EMAIL}: "
        "400 Invalid JWT Signature."
    )
    assert "PRIVATE KEY" not in str(caught.value.body)
    assert vertex_emulator.model_requests == []


# -- Gemini on Vertex -------------------------------------------------------------------------


def test_gemini_system_prompt_multi_turn_stop_and_json_mode(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script(reply_text('{"city": "Paris"}'))
    completion = client.chat.completions.create(
        model="vertex-gemini",
        messages=[
            {"role": "system", "content": "Answer in JSON."},
            {"role": "user", "content": "Capital of Italy?"},
            {"role": "assistant", "content": '{"city": "Rome"}'},
            {"role": "user", "content": "And of France?"},
        ],
        stop="}",
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "city",
                "schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "additionalProperties": False,
                },
            },
        },
    )
    assert vertex_emulator.model_requests[0].body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Capital of Italy?"}]},
            {"role": "model", "parts": [{"text": '{"city": "Rome"}'}]},
            {"role": "user", "parts": [{"text": "And of France?"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Answer in JSON."}]},
        "generationConfig": {
            "stopSequences": ["}"],
            "responseMimeType": "application/json",
            "responseSchema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    assert completion.choices[0].message.content == '{"city": "Paris"}'


def test_gemini_streamed_tool_call_and_its_result(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script(
        Reply(parts=[{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]),
        reply_text("Mild."),
    )
    question = {"role": "user", "content": "Weather in Paris?"}
    text, calls, finish, usage = stream_collect(
        client.chat.completions.create(
            model="vertex-gemini",
            messages=[question],
            tools=[WEATHER_TOOL],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert (text, finish) == ("", "tool_calls")
    assert calls[0]["name"] == "get_weather"
    assert calls[0]["arguments"] == '{"city":"Paris"}'
    assert usage is not None and usage.total_tokens == 16
    assert vertex_emulator.model_requests[0].path == f"{GEMINI_PATH}:streamGenerateContent"
    assert vertex_emulator.model_requests[0].query == {"alt": "sse"}

    answer = client.chat.completions.create(
        model="vertex-gemini",
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": calls[0]["id"],
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": calls[0]["arguments"]},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C"},
        ],
    )
    assert answer.choices[0].message.content == "Mild."
    assert vertex_emulator.model_requests[1].body["contents"][1:] == [
        {
            "role": "model",
            "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"content": "18C"}}}
            ],
        },
    ]


def test_gemini_image(client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator) -> None:
    client.chat.completions.create(
        model="vertex-gemini",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {
                        "type": "file",
                        "file": {"file_id": "gs://bucket/report.pdf", "format": "application/pdf"},
                    },
                ],
            }
        ],
    )
    assert vertex_emulator.model_requests[0].body["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://bucket/report.pdf"}},
    ]


def test_gemini_upstream_error_and_rate_limit(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script(
        reply_error(500, "Internal error encountered."),
        reply_error(429, "Quota exceeded for aiplatform.googleapis.com.", retry_delay="30s"),
    )
    with pytest.raises(openai.APIStatusError) as failed:
        client.chat.completions.create(
            model="vertex-gemini", messages=[{"role": "user", "content": "x"}]
        )
    assert failed.value.status_code == 502
    assert failed.value.body == {
        "message": "vertex_ai returned 500 INTERNAL: Internal error encountered.",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_error",
    }
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(
            model="vertex-gemini", messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.response.headers["retry-after"] == "30"
    assert limited.value.body["message"] == (  # type: ignore[index]
        "vertex_ai returned 429 RESOURCE_EXHAUSTED: Quota exceeded for aiplatform.googleapis.com."
    )


def test_text_embeddings_through_predict(
    client: openai.OpenAI,
    vertex_gemini: Deployment,
    install_deployments: Callable[..., None],
    vertex_emulator: VertexEmulator,
) -> None:
    install_deployments(
        replace(
            vertex_gemini,
            id="test:vertex-embed:0",
            model_name="vertex-embed",
            upstream_model="text-embedding-005",
            params={**vertex_gemini.params, "task_type": "RETRIEVAL_QUERY"},
        )
    )
    result = client.embeddings.create(
        model="vertex-embed",
        input=["hello big world", "bye"],
        dimensions=4,
        encoding_format="float",
    )
    request = vertex_emulator.model_requests[0]
    assert request.path == (
        f"/v1/projects/{PROJECT}/locations/europe-west4/publishers/google/models/"
        "text-embedding-005:predict"
    )
    assert request.body == {
        "instances": [
            {"content": "hello big world", "task_type": "RETRIEVAL_QUERY"},
            {"content": "bye", "task_type": "RETRIEVAL_QUERY"},
        ],
        "parameters": {"outputDimensionality": 4},
    }
    assert [d.embedding for d in result.data] == [
        embedding_values("hello big world", 4),
        embedding_values("bye", 4),
    ]
    assert result.usage.prompt_tokens == 4


# -- Claude on Vertex -------------------------------------------------------------------------


def test_claude_plain_text_through_raw_predict(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_claude(anthropic_api.reply_text("Bonjour."))
    completion = client.chat.completions.create(
        model="vertex-claude",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "In French?"},
        ],
        stop=["\n"],
    )
    request = vertex_emulator.model_requests[0]
    assert request.path == f"{CLAUDE_PATH}:rawPredict"
    assert request.headers["authorization"] == "Bearer ya29.emulator-1"
    assert request.body == {
        "anthropic_version": "vertex-2023-10-16",
        "max_tokens": 4096,
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "In French?"},
        ],
        "system": "Be brief.",
        "stop_sequences": ["\n"],
    }
    assert completion.choices[0].message.content == "Bonjour."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 19


def test_claude_streamed_tool_call_and_its_result(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_claude(
        anthropic_api.Reply(
            content=[
                {
                    "type": "tool_use",
                    "id": "toolu_V1",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                }
            ],
            stop_reason="tool_use",
        ),
        anthropic_api.reply_text("Sunny in Rome."),
    )
    question = {"role": "user", "content": "Weather in Rome?"}
    _, calls, finish, _ = stream_collect(
        client.chat.completions.create(
            model="vertex-claude", messages=[question], tools=[WEATHER_TOOL], stream=True
        )
    )
    assert calls == {0: {"id": "toolu_V1", "name": "get_weather", "arguments": '{"city":"Rome"}'}}
    assert finish == "tool_calls"
    first = vertex_emulator.model_requests[0]
    assert first.path == f"{CLAUDE_PATH}:streamRawPredict"
    assert first.body["stream"] is True
    assert "model" not in first.body
    answer = client.chat.completions.create(
        model="vertex-claude",
        tools=[WEATHER_TOOL],
        messages=[
            question,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_V1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_V1", "content": "25C"},
        ],
    )
    assert answer.choices[0].message.content == "Sunny in Rome."
    assert vertex_emulator.model_requests[1].body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_V1",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_V1", "content": "25C"}],
        },
    ]


def test_claude_image_url_is_downloaded_and_json_mode_is_a_forced_tool(
    client: openai.OpenAI,
    vertex_claude: Deployment,
    install_deployments: Callable[..., None],
    vertex_emulator: VertexEmulator,
    media_server: MediaServer,
) -> None:
    install_deployments(
        replace(vertex_claude, params={**vertex_claude.params, "allow_private_urls": True})
    )
    vertex_emulator.script_claude(
        anthropic_api.Reply(
            content=[
                {
                    "type": "tool_use",
                    "id": "toolu_J",
                    "name": "json_response",
                    "input": {"colour": "white"},
                }
            ],
            stop_reason="tool_use",
        )
    )
    completion = client.chat.completions.create(
        model="vertex-claude",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Colour?"},
                    {"type": "image_url", "image_url": {"url": f"{media_server.url}/to-pixel"}},
                ],
            }
        ],
        response_format={"type": "json_object"},
    )
    body = vertex_emulator.model_requests[0].body
    assert body["messages"][0]["content"][1] == {
        "type": "image",
        "source": {
            "type": "base64",
            "media_type": "image/png",
            "data": base64.b64encode(PNG_BYTES).decode(),
        },
    }
    assert body["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert media_server.paths == ["/to-pixel", "/pixel.png"]
    assert completion.choices[0].message.content == '{"colour":"white"}'
    assert completion.choices[0].finish_reason == "stop"


def test_claude_overload_and_quota_errors(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_claude(
        anthropic_api.reply_error(529, "overloaded_error", "Overloaded"),
        anthropic_api.reply_error(
            429, "rate_limit_error", "Too many requests", headers={"retry-after": "9"}
        ),
    )
    with pytest.raises(openai.InternalServerError) as overloaded:
        client.chat.completions.create(
            model="vertex-claude", messages=[{"role": "user", "content": "x"}]
        )
    assert overloaded.value.status_code == 503
    assert overloaded.value.body["message"] == (  # type: ignore[index]
        "vertex_ai returned 529 overloaded_error: Overloaded"
    )
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(
            model="vertex-claude", messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.response.headers["retry-after"] == "9"


def test_claude_mid_stream_overload_reaches_the_sdk(
    client: openai.OpenAI, models: None, vertex_emulator: VertexEmulator
) -> None:
    vertex_emulator.script_claude(
        anthropic_api.Reply(
            content=[{"type": "text", "text": "Partial answer"}], stream_error_after=5
        )
    )
    stream = client.chat.completions.create(
        model="vertex-claude", messages=[{"role": "user", "content": "x"}], stream=True
    )
    received = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert received == "Partial an"
    assert caught.value.message == "vertex_ai returned 529 overloaded_error: Overloaded"


def test_claude_answers_match_openais_schemas(
    live_ogem: LiveServer, master_key: str, models: None, vertex_emulator: VertexEmulator
) -> None:
    import httpx
    import orjson

    vertex_emulator.script_claude(anthropic_api.reply_text("Hello there."))
    response = httpx.post(
        f"{live_ogem.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {master_key}"},
        json={
            "model": "vertex-claude",
            "messages": [{"role": "user", "content": "Hi"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    frames = [f for f in response.text.split("\n\n") if f.startswith("data: {")]
    assert frames
    for frame in frames:
        schema_validate("CreateChatCompletionStreamResponse", orjson.loads(frame[6:]))
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in (orjson.loads(f[6:]) for f in frames)
        if c["choices"]
    )
    assert text == "Hello there."


# -- configuration ----------------------------------------------------------------------------


def test_configured_from_a_litellm_model_string_with_a_key_file(
    client: openai.OpenAI,
    vertex_emulator: VertexEmulator,
    service_account: dict[str, Any],
    install_deployments: Callable[..., None],
    tmp_path: Path,
) -> None:
    import orjson

    from gateway.config.loader import config_parse
    from gateway.config.problems import Problems

    key_file = tmp_path / "service-account.json"
    key_file.write_bytes(orjson.dumps(service_account))
    problems = Problems()
    config = config_parse(
        "model_list:\n"
        "  - model_name: vertex-litellm\n"
        "    litellm_params:\n"
        "      model: vertex_ai/gemini-2.0-flash\n"
        f"      api_base: {vertex_emulator.url}\n"
        f"      vertex_project: {PROJECT}\n"
        "      vertex_location: global\n"
        f"      vertex_credentials: {key_file}\n"
        "  - model_name: vertex-claude-litellm\n"
        "    litellm_params:\n"
        "      model: vertex_ai/claude-3-5-haiku@20241022\n"
        f"      api_base: {vertex_emulator.url}\n"
        "      vertex_location: us-east5\n"
        f"      vertex_credentials: {key_file}\n",
        source="litellm.yaml",
        problems=problems,
    )
    assert config is not None, problems.items
    install_deployments(*config.deployments)
    gemini = client.chat.completions.create(
        model="vertex-litellm", messages=[{"role": "user", "content": "Hi"}]
    )
    claude = client.chat.completions.create(
        model="vertex-claude-litellm", messages=[{"role": "user", "content": "Hi"}]
    )
    assert [r.path for r in vertex_emulator.model_requests] == [
        f"/v1/projects/{PROJECT}/locations/global/publishers/google/models/"
        "gemini-2.0-flash:generateContent",
        f"{CLAUDE_PATH}:rawPredict",
    ]
    assert gemini.choices[0].message.content == "Echo: Hi"
    assert claude.choices[0].message.content == "Echo: Hi"
    assert len(vertex_emulator.assertions) == 1  # one token serves both deployments
