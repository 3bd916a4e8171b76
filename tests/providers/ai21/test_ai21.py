"""AI21 Jamba: translation (exact dicts) and end to end through a live Ogem with the `openai`
SDK, checking what the emulator received and what the SDK got back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import openai
import pytest

from gateway.config import config_load
from gateway.errors import InvalidRequestError
from providers.ai21.adapter import ai21_url
from providers.ai21.translate import StreamTranslator, chat_request_to_ai21
from providers.base import Deployment
from tests.emulators.ai21_api import API_KEY, AI21Emulator, Reply, ai21_emulator_get, tool_call
from tests.emulators.voyage_api import detail
from tests.schemas import schema_validate

DEPLOYMENT = Deployment(id="t", model_name="j", provider="ai21", upstream_model="jamba-mini")
PATH = "/studio/v1/chat/completions"
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
def ai21_emulator() -> Iterator[AI21Emulator]:
    emulator = ai21_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def jamba(
    ai21_emulator: AI21Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    install_deployments: Callable[..., None],
) -> str:
    monkeypatch.setenv("R2E_AI21_KEY", API_KEY)
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
model_list:
  - model_name: jamba
    litellm_params:
      model: ai21/jamba-mini
      api_base: {ai21_emulator.url}
      api_key: os.environ/R2E_AI21_KEY
"""
    )
    install_deployments(*config_load(str(path)).deployments)
    return "jamba"


@pytest.mark.parametrize(
    ("base", "url"),
    [
        ("", "https://api.ai21.com/studio/v1/chat/completions"),
        ("http://h:1", "http://h:1/studio/v1/chat/completions"),
        ("http://h:1/studio/v1/", "http://h:1/studio/v1/chat/completions"),
    ],
)
def test_url(base: str, url: str) -> None:
    assert ai21_url(base) == url


def test_request_translation() -> None:
    body = {
        "model": "j",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "auto",
        "max_completion_tokens": 100,
        "stop": ["END"],
        "user": "u",
        "seed": 3,
        "response_format": {"type": "json_object"},
    }
    assert chat_request_to_ai21(body=body, deployment=DEPLOYMENT, stream=True) == {
        "model": "jamba-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "a\nb"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ],
        "tools": [WEATHER_TOOL],
        "response_format": {"type": "json_object"},
        "max_tokens": 100,
        "stop": ["END"],
        "stream": True,
    }


@pytest.mark.parametrize(
    "extra",
    [
        {"tool_choice": "required"},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        {"max_tokens": 5000},
    ],
)
def test_request_refusals(extra: dict) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], **extra}
    with pytest.raises(InvalidRequestError):
        chat_request_to_ai21(body=body, deployment=DEPLOYMENT, stream=False)


def test_stream_translator_splits_usage_and_marks_tool_calls() -> None:
    translator = StreamTranslator(model="jamba-mini")
    call = tool_call("c1", "f", {})
    first = translator.feed(
        {"id": "x", "choices": [{"index": 0, "delta": {"tool_calls": [call]}}], "usage": None}
    )
    assert first[0]["choices"][0]["delta"]["tool_calls"] == [{"index": 0, **call}]
    last = translator.feed(
        {
            "id": "x",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }
    )
    assert [c["choices"] for c in last] == [
        [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "tool_calls"}],
        [],
    ]
    assert last[1]["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}


# -- end to end ---------------------------------------------------------------------------------


@pytest.mark.live
def test_plain_text(sdk: openai.OpenAI, jamba: str, ai21_emulator: AI21Emulator) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model=jamba, messages=[{"role": "user", "content": "Hi"}], user="end-user"
    )
    completion = raw.parse()
    assert ai21_emulator.bodies(PATH) == [
        {"model": "jamba-mini", "messages": [{"role": "user", "content": "Hi"}]}
    ]
    assert ai21_emulator.requests[0].headers["authorization"] == f"Bearer {API_KEY}"
    assert raw.headers["x-ogem-provider"] == "ai21"
    assert completion.id == "chat-ai21emulated"
    assert completion.model == "jamba-mini"
    assert completion.choices[0].message.content == "Hello from Jamba."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (10, 5)
    schema_validate("CreateChatCompletionResponse", raw.http_response.json())


@pytest.mark.live
def test_system_prompt_multi_turn_and_stop(
    sdk: openai.OpenAI, jamba: str, ai21_emulator: AI21Emulator
) -> None:
    ai21_emulator.script(Reply(content="Paris", finish_reason="stop"))
    completion = sdk.chat.completions.create(
        model=jamba,
        messages=[
            {"role": "system", "content": "One word."},
            {"role": "user", "content": "Capital of Italy?"},
            {"role": "assistant", "content": "Rome."},
            {"role": "user", "content": "And France?"},
        ],
        stop=["."],
        temperature=0.2,
        max_tokens=20,
    )
    assert ai21_emulator.bodies(PATH) == [
        {
            "model": "jamba-mini",
            "messages": [
                {"role": "system", "content": "One word."},
                {"role": "user", "content": "Capital of Italy?"},
                {"role": "assistant", "content": "Rome."},
                {"role": "user", "content": "And France?"},
            ],
            "max_tokens": 20,
            "temperature": 0.2,
            "stop": ["."],
        }
    ]
    assert completion.choices[0].message.content == "Paris"


@pytest.mark.live
def test_json_mode(sdk: openai.OpenAI, jamba: str, ai21_emulator: AI21Emulator) -> None:
    ai21_emulator.script(Reply(content='{"answer": 4}'))
    completion = sdk.chat.completions.create(
        model=jamba,
        messages=[{"role": "user", "content": "2+2 as JSON"}],
        response_format={"type": "json_object"},
    )
    assert ai21_emulator.bodies(PATH)[0]["response_format"] == {"type": "json_object"}
    assert completion.choices[0].message.content == '{"answer": 4}'


@pytest.mark.live
def test_streamed_text(sdk: openai.OpenAI, jamba: str, ai21_emulator: AI21Emulator) -> None:
    ai21_emulator.script(Reply(content="Streaming works."))
    stream = sdk.chat.completions.create(
        model=jamba,
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert ai21_emulator.bodies(PATH)[0]["stream"] is True
    assert "stream_options" not in ai21_emulator.bodies(PATH)[0]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Streaming works."
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15
    for chunk in chunks:
        schema_validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))


@pytest.mark.live
def test_streamed_tool_call_then_its_result(
    sdk: openai.OpenAI, jamba: str, ai21_emulator: AI21Emulator
) -> None:
    call = tool_call("call_7", "get_weather", {"city": "Oslo"})
    ai21_emulator.script(
        Reply(content=None, tool_calls=[call], finish_reason="stop"), Reply(content="Cold.")
    )
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    stream = sdk.chat.completions.create(
        model=jamba, messages=messages, tools=[WEATHER_TOOL], stream=True
    )
    chunks = [c for c in stream if c.choices]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.index, tc.id, tc.function.name, tc.function.arguments) for tc in calls] == [
        (0, "call_7", "get_weather", '{"city":"Oslo"}')
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    follow_up = sdk.chat.completions.create(
        model=jamba,
        tools=[WEATHER_TOOL],
        messages=[
            *messages,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_7",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_7", "content": "-3C"},
        ],
    )
    assert ai21_emulator.bodies(PATH)[1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                call | {"function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
            ],
        },
        {"role": "tool", "content": "-3C", "tool_call_id": "call_7"},
    ]
    assert ai21_emulator.bodies(PATH)[1]["tools"] == [WEATHER_TOOL]
    assert follow_up.choices[0].message.content == "Cold."


@pytest.mark.live
def test_non_streamed_tool_call(
    sdk: openai.OpenAI, jamba: str, ai21_emulator: AI21Emulator
) -> None:
    call = tool_call("call_1", "get_weather", {"city": "Rome"})
    ai21_emulator.script(Reply(content=None, tool_calls=[call], finish_reason="stop"))
    completion = sdk.chat.completions.create(
        model=jamba, messages=[{"role": "user", "content": "Rome?"}], tools=[WEATHER_TOOL]
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0].function.arguments == '{"city":"Rome"}'


@pytest.mark.live
def test_image_is_refused_before_the_upstream(
    sdk: openai.OpenAI, jamba: str, ai21_emulator: AI21Emulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model=jamba,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    ],
                }
            ],
        )
    assert "text only" in caught.value.body["message"]
    assert ai21_emulator.requests == []


@pytest.mark.live
def test_upstream_error_and_rate_limit(
    sdk: openai.OpenAI, jamba: str, ai21_emulator: AI21Emulator
) -> None:
    ai21_emulator.script(
        detail(422, "messages: conversation too long"),
        detail(429, "Too many requests", **{"Retry-After": "2"}),
        detail(500, "Internal server error"),
    )
    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.BadRequestError) as bad:
        sdk.chat.completions.create(model=jamba, messages=messages)
    assert bad.value.body["message"] == "ai21 returned 422: messages: conversation too long"
    with pytest.raises(openai.RateLimitError) as limited:
        sdk.chat.completions.create(model=jamba, messages=messages)
    assert limited.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.APIStatusError) as failed:
        sdk.chat.completions.create(model=jamba, messages=messages)
    assert failed.value.status_code == 502
    assert failed.value.body["type"] == "upstream_error"


@pytest.mark.live
def test_mid_stream_error_arrives_as_an_error_event(
    sdk: openai.OpenAI, jamba: str, ai21_emulator: AI21Emulator
) -> None:
    ai21_emulator.script(Reply(content="abcdefgh", stream_error_after=2))
    stream = sdk.chat.completions.create(
        model=jamba, messages=[{"role": "user", "content": "Hi"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        list(stream)
    assert "ai21 returned 502: Internal server error" in str(caught.value)


@pytest.mark.live
def test_tool_choice_none_sends_no_tools_so_none_is_called(
    sdk: openai.OpenAI, jamba: str, ai21_emulator: AI21Emulator
) -> None:
    # Jamba has no tool_choice field (the emulator refuses it like the API): without the tools
    # the model cannot call one.
    ai21_emulator.script(Reply(content="It is cold in Oslo."))
    completion = sdk.chat.completions.create(
        model=jamba,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
        tool_choice="none",
    )
    [received] = ai21_emulator.requests
    assert "tools" not in received.body
    assert "tool_choice" not in received.body
    assert completion.choices[0].message.content == "It is cold in Oslo."
    assert completion.choices[0].message.tool_calls is None
