"""End to end: the official `openai` SDK → a live Ogem → the Cohere v2 emulator, and back."""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.emulators.cohere_api import API_KEY, CohereEmulator, Reply, reply_error
from tests.live import LiveServer
from tests.providers.openai_sdk import assistant_turn, chat_schemas_check, stream_collect

pytestmark = pytest.mark.live

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
REPLY_ID = "c14c80c3-18eb-4519-9460-6c92edd8cfb4"


def test_plain_text(client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator) -> None:
    cohere_emulator.script(Reply(text="Hello! How can I help?"))
    raw = client.chat.completions.with_raw_response.create(
        model=command, messages=[{"role": "user", "content": "Hi"}]
    )
    completion = raw.parse()
    [received] = cohere_emulator.requests
    assert received.headers["authorization"] == f"Bearer {API_KEY}"
    assert received.body == {
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "Hi"}],
    }
    assert raw.headers["x-ogem-provider"] == "cohere"
    assert completion.id == f"chatcmpl-{REPLY_ID}"
    assert completion.model == "command-a-03-2025"
    assert completion.choices[0].message.content == "Hello! How can I help?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (60, 5)


def test_system_prompt_multi_turn_and_sampling(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(Reply(text="Paris."))
    completion = client.chat.completions.create(
        model=command,
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
        frequency_penalty=0.1,
    )
    assert cohere_emulator.bodies() == [
        {
            "model": "command-a-03-2025",
            "messages": [
                {"role": "system", "content": "You answer in one word."},
                {"role": "user", "content": "Capital of Italy?"},
                {"role": "assistant", "content": "Rome."},
                {"role": "user", "content": "And of France?"},
            ],
            "max_tokens": 50,
            "temperature": 0.3,
            "p": 0.9,
            "seed": 7,
            "frequency_penalty": 0.1,
        }
    ]
    assert completion.choices[0].message.content == "Paris."


def test_streamed_tool_call_and_its_result(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(
        Reply(
            tool_plan="I will check both.",
            tool_calls=[
                {
                    "id": "get_weather_a1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "get_weather_b2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
            finish_reason="TOOL_CALL",
            usage={"tokens": {"input_tokens": 40, "output_tokens": 30}},
        ),
        Reply(text="Rome is warmer."),
    )
    question = {"role": "user", "content": "Weather in Paris and Rome?"}
    stream = client.chat.completions.create(
        model=command,
        messages=[question],
        tools=[WEATHER_TOOL],
        tool_choice="required",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks: list[Any] = []
    _, calls, finish, usage = stream_collect(stream, chunks)
    plan = "".join(
        (choice.delta.model_extra or {}).get("reasoning_content") or ""
        for chunk in chunks
        for choice in chunk.choices
    )
    assert plan == "I will check both."
    assert calls == {
        0: {"id": "get_weather_a1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        1: {"id": "get_weather_b2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
    }
    assert finish == "tool_calls"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (40, 30, 70)
    first = cohere_emulator.bodies()[0]
    assert first["stream"] is True
    assert first["tools"] == [WEATHER_TOOL]
    assert first["tool_choice"] == "REQUIRED"

    answer = client.chat.completions.create(
        model=command,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            assistant_turn(None, calls),
            {"role": "tool", "tool_call_id": "get_weather_a1", "content": "18C, cloudy"},
            {"role": "tool", "tool_call_id": "get_weather_b2", "content": "24C, sunny"},
        ],
    )
    assert answer.choices[0].message.content == "Rome is warmer."
    assert cohere_emulator.bodies()[1]["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "get_weather_a1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "get_weather_b2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "get_weather_a1", "content": "18C, cloudy"},
        {"role": "tool", "tool_call_id": "get_weather_b2", "content": "24C, sunny"},
    ]


def test_documents_and_citations_are_kept(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    citation = {
        "start": 0,
        "end": 5,
        "text": "Tides",
        "sources": [{"type": "document", "id": "doc-1", "document": {"id": "doc-1", "text": "x"}}],
        "type": "TEXT_CONTENT",
    }
    reply = Reply(text="Tides follow the moon.", citations=[citation])
    cohere_emulator.script(reply, reply)
    documents = [{"id": "doc-1", "data": {"text": "Tides are caused by the moon."}}]
    completion = client.chat.completions.create(
        model=command,
        messages=[{"role": "user", "content": "Why tides?"}],
        extra_body={"documents": documents, "citation_options": {"mode": "ACCURATE"}},
    )
    body = cohere_emulator.bodies()[0]
    assert body["documents"] == documents
    assert body["citation_options"] == {"mode": "ACCURATE"}
    assert completion.choices[0].message.model_extra["citations"] == [citation]  # type: ignore[index]

    stream = client.chat.completions.create(
        model=command,
        messages=[{"role": "user", "content": "Why tides?"}],
        extra_body={"documents": documents},
        stream=True,
    )
    text = ""
    citations = []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            citations += (choice.delta.model_extra or {}).get("citations") or []
    assert text == "Tides follow the moon."
    assert citations == [citation]


def test_image_url_is_passed_to_cohere(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(Reply(text="A cat."))
    client.chat.completions.create(
        model=command,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is it?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                    },
                ],
            }
        ],
    )
    assert cohere_emulator.bodies()[0]["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is it?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
            ],
        }
    ]


def test_json_mode_with_a_schema(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    cohere_emulator.script(Reply(text='{"city": "Paris"}'))
    completion = client.chat.completions.create(
        model=command,
        messages=[{"role": "user", "content": "A city, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    assert cohere_emulator.bodies()[0]["response_format"] == {
        "type": "json_object",
        "json_schema": schema,
    }
    assert completion.choices[0].message.content == '{"city": "Paris"}'


def test_stop_sequence(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(Reply(text="1, 2, 3, ", finish_reason="STOP_SEQUENCE"))
    completion = client.chat.completions.create(
        model=command, messages=[{"role": "user", "content": "Count"}], stop="4"
    )
    assert cohere_emulator.bodies()[0]["stop_sequences"] == ["4"]
    assert completion.choices[0].finish_reason == "stop"


def test_upstream_error(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(reply_error(503, "service unavailable"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=command, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
    assert caught.value.body == {
        "message": "cohere returned 503: service unavailable",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_unavailable",
    }


def test_validation_error_keeps_the_upstream_message(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=command, messages=[{"role": "user", "content": "x"}], temperature=1.5
        )
    assert caught.value.body["message"] == (  # type: ignore[index]
        "cohere returned 400: invalid request: temperature must be between 0 and 1"
    )


def test_rate_limit(client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator) -> None:
    cohere_emulator.script(
        reply_error(
            429, "You are using a Trial key, which is limited", headers={"Retry-After": "9"}
        )
    )
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=command, messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["retry-after"] == "9"
    assert caught.value.body == {
        "message": "cohere returned 429: You are using a Trial key, which is limited",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_cut_stream_is_an_error(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    cohere_emulator.script(Reply(text="Hello there", stream_cut_after=3))
    stream = client.chat.completions.create(
        model=command, messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert caught.value.message == "cohere stream ended before message-end"


def test_embeddings_with_input_type(
    client: openai.OpenAI, command: str, cohere_emulator: CohereEmulator
) -> None:
    result = client.embeddings.create(
        model="cohere-embed",
        input=["alpha beta", "gamma"],
        dimensions=256,
        extra_body={"input_type": "search_query"},
    )
    assert cohere_emulator.bodies("/v2/embed") == [
        {
            "model": "embed-v4.0",
            "texts": ["alpha beta", "gamma"],
            "input_type": "search_query",
            "embedding_types": ["float"],
            "output_dimension": 256,
        }
    ]
    assert [len(d.embedding) for d in result.data] == [256, 256]
    assert result.usage.prompt_tokens == 3
    # The SDK asked for base64 and decoded it; the float answer holds the same values.
    floats = httpx.post(
        f"{client.base_url}embeddings",
        headers={"Authorization": f"Bearer {client.api_key}"},
        json={
            "model": "cohere-embed",
            "input": "gamma",
            "dimensions": 256,
            "encoding_format": "float",
        },
    ).json()["data"][0]["embedding"]
    assert [round(x, 5) for x in floats] == [round(x, 5) for x in result.data[1].embedding]
    encoded = httpx.post(
        f"{client.base_url}embeddings",
        headers={"Authorization": f"Bearer {client.api_key}"},
        json={
            "model": "cohere-embed",
            "input": "gamma",
            "dimensions": 256,
            "encoding_format": "base64",
        },
    ).json()["data"][0]["embedding"]
    assert list(struct.unpack("<256f", base64.b64decode(encoded))) == [
        struct.unpack("<f", struct.pack("<f", x))[0] for x in floats
    ]


def test_rerank(
    live_ogem: LiveServer, master_key: str, command: str, cohere_emulator: CohereEmulator
) -> None:
    response = httpx.post(
        f"{live_ogem.url}/v1/rerank",
        headers={"Authorization": f"Bearer {master_key}"},
        json={
            "model": "cohere-rerank",
            "query": "capital of france",
            "documents": ["Berlin is in Germany", {"text": "Paris is the capital of France"}],
            "top_n": 1,
            "return_documents": True,
        },
    )
    assert response.status_code == 200
    assert cohere_emulator.bodies("/v2/rerank") == [
        {
            "model": "rerank-v3.5",
            "query": "capital of france",
            "documents": ["Berlin is in Germany", "Paris is the capital of France"],
            "top_n": 1,
        }
    ]
    assert response.json() == {
        "id": "rerank-emulator",
        "model": "rerank-v3.5",
        "results": [
            {
                "index": 1,
                "relevance_score": 1.001,
                "document": {"text": "Paris is the capital of France"},
            }
        ],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    }


def test_configured_from_a_litellm_model_string(
    client: openai.OpenAI,
    cohere_emulator: CohereEmulator,
    install_deployments: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway.config.loader import config_parse
    from gateway.config.problems import Problems

    monkeypatch.setenv("COHERE_TEST_KEY", API_KEY)
    problems = Problems()
    config = config_parse(
        "model_list:\n"
        "  - model_name: command-litellm\n"
        "    litellm_params:\n"
        "      model: cohere/command-r-08-2024\n"
        f"      api_base: {cohere_emulator.url}\n"
        "      api_key: os.environ/COHERE_TEST_KEY\n",
        source="litellm.yaml",
        problems=problems,
    )
    assert config is not None, problems.items
    install_deployments(*config.deployments)
    completion = client.chat.completions.create(
        model="command-litellm", messages=[{"role": "user", "content": "Hi"}]
    )
    assert cohere_emulator.bodies() == [
        {"model": "command-r-08-2024", "messages": [{"role": "user", "content": "Hi"}]}
    ]
    assert completion.choices[0].message.content == "Echo: Hi"


def test_answers_match_openais_schemas(
    live_ogem: LiveServer, master_key: str, command: str, cohere_emulator: CohereEmulator
) -> None:
    reply = Reply(
        text="Calling.",
        tool_calls=[
            {
                "id": "get_weather_s",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Nice"}'},
            }
        ],
        finish_reason="TOOL_CALL",
    )
    cohere_emulator.script(reply, reply)
    request = {
        "model": command,
        "messages": [{"role": "user", "content": "Weather in Nice?"}],
        "tools": [WEATHER_TOOL],
    }
    # role, tool call opening, 3 argument pieces, 2 text pieces, finish, usage
    chat_schemas_check(base_url=live_ogem.url, key=master_key, request=request, frames=9)
