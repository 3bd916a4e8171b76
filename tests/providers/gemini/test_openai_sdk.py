"""End to end: the official `openai` SDK → a live Ogem → the Gemini API emulator, and back.

Each test checks what the emulator received (Gemini's wire format) and what the SDK got.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable, Iterator
from dataclasses import replace

import openai
import pytest

from providers.base import Deployment
from tests.emulators.gemini_api import (
    API_KEY,
    GeminiEmulator,
    Reply,
    embedding_values,
    reply_error,
    reply_text,
)
from tests.live import LiveServer
from tests.providers.gemini.media_server import PNG_BYTES, MediaServer
from tests.providers.openai_sdk import assistant_turn, chat_schemas_check, stream_collect

pytestmark = pytest.mark.live

UPSTREAM = "gemini-2.0-flash"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
    },
}
GEMINI_WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def gemini(gemini_deployment: Deployment, install_deployments: Callable[..., None]) -> str:
    install_deployments(gemini_deployment)
    return "gemini"


@pytest.fixture
def client(live_ogem: LiveServer, master_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


@pytest.fixture
def media_server() -> Iterator[MediaServer]:
    server = MediaServer().start()
    yield server
    server.stop()


def test_plain_text(client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator) -> None:
    gemini_emulator.script(
        reply_text(
            "Hello! How can I help?",
            usage={
                "promptTokenCount": 120,
                "cachedContentTokenCount": 100,
                "candidatesTokenCount": 8,
                "thoughtsTokenCount": 5,
                "totalTokenCount": 133,
            },
        )
    )
    raw = client.chat.completions.with_raw_response.create(
        model=gemini, messages=[{"role": "user", "content": "Hi"}], user="end-user-1"
    )
    completion = raw.parse()
    received = gemini_emulator.requests[0]
    assert received.path == f"/v1beta/models/{UPSTREAM}:generateContent"
    assert received.headers["x-goog-api-key"] == API_KEY
    assert received.body == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}
    assert raw.headers["x-ogem-provider"] == "gemini"
    assert completion.id == "chatcmpl-resp-emulator-1"
    assert completion.model == UPSTREAM
    assert completion.choices[0].message.content == "Hello! How can I help?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (120, 13)
    assert completion.usage.total_tokens == 133
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 100
    assert completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 5


def test_system_prompt_and_multi_turn_history(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    gemini_emulator.script(reply_text("Paris."))
    completion = client.chat.completions.create(
        model=gemini,
        messages=[
            {"role": "system", "content": "You answer in one word."},
            {"role": "user", "content": "Capital of Italy?"},
            {"role": "assistant", "content": "Rome."},
            {"role": "user", "content": "And of France?"},
        ],
        temperature=0.3,
        top_p=0.9,
        max_tokens=50,
        seed=7,
    )
    assert gemini_emulator.bodies == [
        {
            "contents": [
                {"role": "user", "parts": [{"text": "Capital of Italy?"}]},
                {"role": "model", "parts": [{"text": "Rome."}]},
                {"role": "user", "parts": [{"text": "And of France?"}]},
            ],
            "systemInstruction": {"parts": [{"text": "You answer in one word."}]},
            "generationConfig": {
                "maxOutputTokens": 50,
                "temperature": 0.3,
                "topP": 0.9,
                "seed": 7,
            },
        }
    ]
    assert completion.choices[0].message.content == "Paris."


def test_streamed_tool_call_and_its_result(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    gemini_emulator.script(
        Reply(
            parts=[
                {"text": "Checking both."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Rome"}},
                    "thoughtSignature": "c2lnLXJvbWU=",
                },
            ],
            usage={"promptTokenCount": 40, "candidatesTokenCount": 30, "totalTokenCount": 70},
        ),
        reply_text("Rome is warmer."),
    )
    question = {"role": "user", "content": "Weather in Paris and Rome?"}
    stream = client.chat.completions.create(
        model=gemini,
        messages=[question],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        stream=True,
        stream_options={"include_usage": True},
    )
    text, calls, finish, usage = stream_collect(stream)
    assert text == "Checking both."
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_weather"]
    assert [c["arguments"] for c in calls.values()] == ['{"city":"Paris"}', '{"city":"Rome"}']
    assert calls[0]["id"].startswith("call_") and "__thought__" not in calls[0]["id"]
    assert calls[1]["id"].endswith("__thought__c2lnLXJvbWU=")
    assert finish == "tool_calls"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (40, 30, 70)
    first = gemini_emulator.requests[0]
    assert first.path == f"/v1beta/models/{UPSTREAM}:streamGenerateContent"
    assert first.query == {"alt": "sse"}
    assert first.body["tools"] == [{"functionDeclarations": [GEMINI_WEATHER]}]
    assert first.body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}

    answer = client.chat.completions.create(
        model=gemini,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            assistant_turn(text, calls),
            {"role": "tool", "tool_call_id": calls[0]["id"], "content": "18C, cloudy"},
            {"role": "tool", "tool_call_id": calls[1]["id"], "content": '{"temp": 24}'},
        ],
    )
    assert answer.choices[0].message.content == "Rome is warmer."
    assert gemini_emulator.bodies[1]["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "model",
            "parts": [
                {"text": "Checking both."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Rome"}},
                    "thoughtSignature": "c2lnLXJvbWU=",
                },
            ],
        },
        {
            "role": "user",
            "parts": [
                {
                    "functionResponse": {
                        "name": "get_weather",
                        "response": {"content": "18C, cloudy"},
                    }
                },
                {"functionResponse": {"name": "get_weather", "response": {"temp": 24}}},
            ],
        },
    ]


def test_non_streamed_tool_call_names_a_function(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    gemini_emulator.script(
        Reply(parts=[{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}])
    )
    completion = client.chat.completions.create(
        model=gemini,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert gemini_emulator.bodies[0]["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    message = completion.choices[0].message
    assert message.content is None
    assert message.tool_calls is not None
    assert message.tool_calls[0].function.name == "get_weather"
    assert message.tool_calls[0].function.arguments == '{"city":"Oslo"}'
    assert completion.choices[0].finish_reason == "tool_calls"


def test_images_inline_file_uri_and_a_downloaded_url(
    client: openai.OpenAI,
    gemini_deployment: Deployment,
    install_deployments: Callable[..., None],
    gemini_emulator: GeminiEmulator,
    media_server: MediaServer,
) -> None:
    install_deployments(replace(gemini_deployment, params={"allow_private_urls": True}))
    gemini_emulator.script(reply_text("Three images."))
    completion = client.chat.completions.create(
        model="gemini",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe them."},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"},
                    },
                    {"type": "image_url", "image_url": {"url": "gs://bucket/cat.png"}},
                    {"type": "image_url", "image_url": {"url": f"{media_server.url}/pixel.png"}},
                ],
            }
        ],
    )
    assert gemini_emulator.bodies[0]["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "Describe them."},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
                {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/cat.png"}},
                {
                    "inlineData": {
                        "mimeType": "image/png",
                        "data": base64.b64encode(PNG_BYTES).decode(),
                    }
                },
            ],
        }
    ]
    assert media_server.paths == ["/pixel.png"]
    assert completion.choices[0].message.content == "Three images."


def test_an_image_url_on_a_private_address_is_refused(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator, media_server: MediaServer
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=gemini,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": f"{media_server.url}/pixel.png"},
                        }
                    ],
                }
            ],
        )
    assert caught.value.body["message"] == (  # type: ignore[index]
        "The URL's host '127.0.0.1' resolves to an address Ogem may not fetch from."
    )
    assert media_server.paths == []
    assert gemini_emulator.requests == []


def test_json_mode_with_a_schema_in_geminis_subset(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "population": {"type": "integer"},
            "country": {"$ref": "#/$defs/country"},
            "mayor": {"type": ["string", "null"]},
        },
        "required": ["city", "population"],
        "additionalProperties": False,
        "$defs": {
            "country": {
                "type": "object",
                "properties": {"code": {"type": "string", "enum": ["FR", "IT"]}},
                "additionalProperties": False,
            }
        },
    }
    gemini_emulator.script(reply_text('{"city": "Paris", "population": 2102650}'))
    completion = client.chat.completions.create(
        model=gemini,
        messages=[{"role": "user", "content": "Largest French city, as JSON."}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "city", "schema": schema, "strict": True},
        },
    )
    assert gemini_emulator.bodies[0]["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "population": {"type": "integer"},
                "country": {
                    "type": "object",
                    "properties": {"code": {"type": "string", "enum": ["FR", "IT"]}},
                },
                "mayor": {"type": "string", "nullable": True},
            },
            "required": ["city", "population"],
        },
    }
    assert completion.choices[0].message.content == '{"city": "Paris", "population": 2102650}'

    client.chat.completions.create(
        model=gemini,
        messages=[{"role": "user", "content": "JSON please."}],
        response_format={"type": "json_object"},
    )
    assert gemini_emulator.bodies[1]["generationConfig"] == {"responseMimeType": "application/json"}


def test_stop_sequence_and_max_tokens_finish(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    gemini_emulator.script(reply_text("1, 2, 3, "), reply_text("1, 2", finish_reason="MAX_TOKENS"))
    completion = client.chat.completions.create(
        model=gemini, messages=[{"role": "user", "content": "Count to 9"}], stop=["4", "five"]
    )
    assert gemini_emulator.bodies[0]["generationConfig"] == {"stopSequences": ["4", "five"]}
    assert completion.choices[0].message.content == "1, 2, 3, "
    assert completion.choices[0].finish_reason == "stop"
    truncated = client.chat.completions.create(
        model=gemini, messages=[{"role": "user", "content": "Count"}], max_completion_tokens=3
    )
    assert gemini_emulator.bodies[1]["generationConfig"] == {"maxOutputTokens": 3}
    assert truncated.choices[0].finish_reason == "length"


def test_safety_settings_come_from_the_deployment_only(
    client: openai.OpenAI,
    gemini_deployment: Deployment,
    install_deployments: Callable[..., None],
    gemini_emulator: GeminiEmulator,
) -> None:
    settings = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    install_deployments(
        gemini_deployment,
        replace(
            gemini_deployment,
            id="test:gemini-safe:0",
            model_name="gemini-safe",
            params={"safety_settings": settings},
        ),
    )
    gemini_emulator.script(reply_text("ok"), reply_text("", finish_reason="SAFETY"))
    client.chat.completions.create(model="gemini", messages=[{"role": "user", "content": "a"}])
    blocked = client.chat.completions.create(
        model="gemini-safe", messages=[{"role": "user", "content": "b"}]
    )
    assert "safetySettings" not in gemini_emulator.bodies[0]
    assert gemini_emulator.bodies[1]["safetySettings"] == settings
    assert blocked.choices[0].finish_reason == "content_filter"


def test_upstream_error(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    gemini_emulator.script(reply_error(503, "The model is overloaded. Please try again later."))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=gemini, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
    assert caught.value.body == {
        "message": "gemini returned 503 UNAVAILABLE: The model is overloaded. Please try again "
        "later.",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_unavailable",
    }


def test_invalid_request_keeps_the_upstream_message(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=gemini,
            messages=[{"role": "user", "content": "x"}],
            stop=["a", "b", "c", "d", "e", "f"],
        )
    assert caught.value.body["message"] == (  # type: ignore[index]
        "gemini returned 400 INVALID_ARGUMENT: "
        "generation_config.stop_sequences: at most 5 stop sequences"
    )


def test_a_refused_api_key_is_an_upstream_error(
    client: openai.OpenAI,
    gemini_deployment: Deployment,
    install_deployments: Callable[..., None],
    gemini_emulator: GeminiEmulator,
) -> None:
    install_deployments(replace(gemini_deployment, api_key="AIzaSy-wrong"))
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gemini", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 400
    assert "AIzaSy-wrong" not in str(caught.value.body)


def test_rate_limit(client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator) -> None:
    gemini_emulator.script(
        reply_error(429, "Resource has been exhausted (e.g. check quota).", retry_delay="16.2s")
    )
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=gemini, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "17"
    assert caught.value.body == {
        "message": "gemini returned 429 RESOURCE_EXHAUSTED: "
        "Resource has been exhausted (e.g. check quota).",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_mid_stream_error_reaches_the_sdk(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    gemini_emulator.script(reply_text("Partial answer here", stream_error_after=2))
    stream = client.chat.completions.create(
        model=gemini, messages=[{"role": "user", "content": "x"}], stream=True
    )
    received = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert received == "Partial answ"
    assert caught.value.message == "gemini returned 503 UNAVAILABLE: The model is overloaded."


def test_a_stream_cut_before_its_finish_is_an_error(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    gemini_emulator.script(reply_text("Partial answer here", stream_cut_after=2))
    stream = client.chat.completions.create(
        model=gemini, messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert caught.value.message == "gemini stream ended before a finish reason"


def test_thinking_is_returned_as_reasoning_content(
    client: openai.OpenAI, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    gemini_emulator.script(
        Reply(parts=[{"text": "2 and 2 make 4.", "thought": True}, {"text": "4"}])
    )
    completion = client.chat.completions.create(
        model=gemini, messages=[{"role": "user", "content": "2+2?"}], reasoning_effort="low"
    )
    assert gemini_emulator.bodies[0]["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}
    }
    message = completion.choices[0].message
    assert message.content == "4"
    assert message.model_extra["reasoning_content"] == "2 and 2 make 4."  # type: ignore[index]


def test_embeddings_single_and_batch(
    client: openai.OpenAI, gemini_emulator: GeminiEmulator, install_deployments: Callable[..., None]
) -> None:
    install_deployments(
        Deployment(
            id="test:gemini-embed:0",
            model_name="gemini-embed",
            provider="gemini",
            upstream_model="text-embedding-004",
            api_base=gemini_emulator.url,
            api_key=API_KEY,
            params={"task_type": "RETRIEVAL_DOCUMENT"},
        )
    )
    single = client.embeddings.create(model="gemini-embed", input="hello world")
    batch = client.embeddings.create(
        model="gemini-embed", input=["one", "two"], dimensions=4, encoding_format="float"
    )
    assert [(r.path, r.body) for r in gemini_emulator.requests] == [
        (
            "/v1beta/models/text-embedding-004:embedContent",
            {"content": {"parts": [{"text": "hello world"}]}, "taskType": "RETRIEVAL_DOCUMENT"},
        ),
        (
            "/v1beta/models/text-embedding-004:batchEmbedContents",
            {
                "requests": [
                    {
                        "model": "models/text-embedding-004",
                        "content": {"parts": [{"text": text}]},
                        "taskType": "RETRIEVAL_DOCUMENT",
                        "outputDimensionality": 4,
                    }
                    for text in ("one", "two")
                ]
            },
        ),
    ]
    # The SDK asked for base64 by default and decoded it: float32 precision.
    expected = list(struct.unpack("<8f", struct.pack("<8f", *embedding_values("hello world"))))
    assert single.data[0].embedding == expected
    assert single.usage.prompt_tokens == 3
    assert [d.embedding for d in batch.data] == [
        embedding_values("one", 4),
        embedding_values("two", 4),
    ]
    assert [d.index for d in batch.data] == [0, 1]
    assert batch.usage.prompt_tokens == 2


def test_configured_from_a_litellm_model_string(
    client: openai.OpenAI,
    gemini_emulator: GeminiEmulator,
    install_deployments: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway.config.loader import config_parse
    from gateway.config.problems import Problems

    monkeypatch.setenv("GEMINI_EMULATOR_KEY", API_KEY)
    problems = Problems()
    config = config_parse(
        "model_list:\n"
        "  - model_name: gemini-litellm\n"
        "    litellm_params:\n"
        f"      model: gemini/{UPSTREAM}\n"
        f"      api_base: {gemini_emulator.url}\n"
        "      api_key: os.environ/GEMINI_EMULATOR_KEY\n"
        "      safety_settings:\n"
        "        - category: HARM_CATEGORY_DANGEROUS_CONTENT\n"
        "          threshold: BLOCK_NONE\n",
        source="litellm.yaml",
        problems=problems,
    )
    assert config is not None, problems.items
    install_deployments(*config.deployments)
    completion = client.chat.completions.create(
        model="gemini-litellm", messages=[{"role": "user", "content": "Hi"}]
    )
    assert gemini_emulator.bodies == [
        {
            "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
            "safetySettings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_NONE"}
            ],
        }
    ]
    assert completion.choices[0].message.content == "Echo: Hi"


def test_answers_match_openais_schemas(
    live_ogem: LiveServer, master_key: str, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    reply = Reply(
        parts=[
            {"text": "Hmm.", "thought": True},
            {"text": "Calling."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Nice"}}},
        ],
        usage={"promptTokenCount": 9, "candidatesTokenCount": 9, "totalTokenCount": 18},
    )
    gemini_emulator.script(reply, reply)
    request = {
        "model": gemini,
        "messages": [{"role": "user", "content": "Weather in Nice?"}],
        "tools": [WEATHER_TOOL],
    }
    # role+reasoning, "Callin", "g.", the tool call, the finish, the usage.
    chat_schemas_check(base_url=live_ogem.url, key=master_key, request=request, frames=6)


def test_the_anthropic_sdk_reaches_gemini_through_v1_messages(
    live_ogem: LiveServer, master_key: str, gemini: str, gemini_emulator: GeminiEmulator
) -> None:
    import anthropic

    gemini_emulator.script(
        reply_text("Bonjour."),
        Reply(parts=[{"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}}]),
    )
    client = anthropic.Anthropic(base_url=live_ogem.url, api_key=master_key, max_retries=0)
    message = client.messages.create(
        model=gemini,
        max_tokens=64,
        system="Answer in French.",
        messages=[{"role": "user", "content": "Hello"}],
    )
    assert gemini_emulator.bodies[0] == {
        "contents": [{"role": "user", "parts": [{"text": "Hello"}]}],
        "systemInstruction": {"parts": [{"text": "Answer in French."}]},
        "generationConfig": {"maxOutputTokens": 64},
    }
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Bonjour."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 6)

    with client.messages.stream(
        model=gemini,
        max_tokens=64,
        messages=[{"role": "user", "content": "Weather in Lyon?"}],
        tools=[
            {
                "name": "get_weather",
                "description": "Current weather in a city",
                "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
            }
        ],
    ) as stream:
        final = stream.get_final_message()
    assert gemini_emulator.bodies[1]["tools"] == [{"functionDeclarations": [GEMINI_WEATHER]}]
    tool_use = final.content[-1]
    assert tool_use.type == "tool_use"
    assert (tool_use.name, tool_use.input) == ("get_weather", {"city": "Lyon"})  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"
