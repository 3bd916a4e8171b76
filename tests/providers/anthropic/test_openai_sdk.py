"""End to end: the official `openai` SDK → a live Ogem → the Anthropic emulator, and back.

Each test checks what the emulator received (Anthropic's wire format) and what the SDK got.
"""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from providers.base import Deployment
from tests.emulators.anthropic_api import (
    API_KEY,
    AnthropicEmulator,
    Reply,
    reply_error,
    reply_text,
)
from tests.live import LiveServer
from tests.providers.openai_sdk import assistant_turn, chat_schemas_check, stream_collect

pytestmark = pytest.mark.live

UPSTREAM = "claude-3-5-haiku-20241022"
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
def claude(claude_deployment: Deployment, install_deployments: Callable[..., None]) -> str:
    """The emulator-backed deployment, installed as model `claude` for the live server."""
    install_deployments(claude_deployment)
    return "claude"


@pytest.fixture
def client(live_ogem: LiveServer, master_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


def test_plain_text(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.script(
        reply_text(
            "Hello! How can I help?",
            usage={
                "input_tokens": 11,
                "output_tokens": 8,
                "cache_read_input_tokens": 100,
                "cache_creation_input_tokens": 20,
            },
        )
    )
    raw = client.chat.completions.with_raw_response.create(
        model=claude, messages=[{"role": "user", "content": "Hi"}], user="end-user-1"
    )
    completion = raw.parse()
    assert anthropic_emulator.bodies == [
        {
            "model": UPSTREAM,
            "max_tokens": 4096,
            "messages": [{"role": "user", "content": "Hi"}],
            "metadata": {"user_id": "end-user-1"},
        }
    ]
    assert raw.headers["x-ogem-provider"] == "anthropic"
    assert raw.headers["x-ogem-deployment"] == "test:claude:0"
    assert completion.id == "chatcmpl-msg_01EmulatorReply"
    assert completion.object == "chat.completion"
    assert completion.model == UPSTREAM
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Hello! How can I help?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (131, 8)
    assert completion.usage.total_tokens == 139
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 100
    assert completion.usage.prompt_tokens_details.model_extra == {"cache_creation_tokens": 20}


def test_system_prompt_and_multi_turn_history(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.script(reply_text("Paris."))
    completion = client.chat.completions.create(
        model=claude,
        messages=[
            {"role": "system", "content": "You answer in one word."},
            {"role": "user", "content": "Capital of Italy?"},
            {"role": "assistant", "content": "Rome."},
            {"role": "user", "content": "And of France?"},
        ],
        temperature=0.3,
        max_tokens=50,
    )
    assert anthropic_emulator.bodies == [
        {
            "model": UPSTREAM,
            "max_tokens": 50,
            "messages": [
                {"role": "user", "content": "Capital of Italy?"},
                {"role": "assistant", "content": "Rome."},
                {"role": "user", "content": "And of France?"},
            ],
            "system": "You answer in one word.",
            "temperature": 0.3,
        }
    ]
    assert completion.choices[0].message.content == "Paris."


def test_streamed_tool_call_and_its_result(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.script(
        Reply(
            content=[
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_01B",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
            stop_reason="tool_use",
            usage={"input_tokens": 40, "output_tokens": 30},
        ),
        reply_text("Rome is warmer."),
    )
    question = {"role": "user", "content": "Weather in Paris and Rome?"}
    stream = client.chat.completions.create(
        model=claude,
        messages=[question],
        tools=[WEATHER_TOOL],
        tool_choice="auto",
        stream=True,
        stream_options={"include_usage": True},
    )
    text, calls, finish, usage = stream_collect(stream)
    assert text == "Checking."
    assert calls == {
        0: {"id": "toolu_01A", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        1: {"id": "toolu_01B", "name": "get_weather", "arguments": '{"city":"Rome"}'},
    }
    assert finish == "tool_calls"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (40, 30, 70)
    first = anthropic_emulator.bodies[0]
    assert first["stream"] is True
    assert first["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather in a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        }
    ]
    assert first["tool_choice"] == {"type": "auto"}

    answer = client.chat.completions.create(
        model=claude,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            assistant_turn(text, calls),
            {"role": "tool", "tool_call_id": "toolu_01A", "content": "18C, cloudy"},
            {"role": "tool", "tool_call_id": "toolu_01B", "content": "24C, sunny"},
        ],
    )
    assert answer.choices[0].message.content == "Rome is warmer."
    assert anthropic_emulator.bodies[1]["messages"] == [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_01A",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_01B",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "18C, cloudy"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "24C, sunny"},
            ],
        },
    ]


def test_image_inputs(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.script(reply_text("A red pixel and a cat."))
    completion = client.chat.completions.create(
        model=claude,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe both."},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://images.example.com/cat.jpg", "detail": "low"},
                    },
                ],
            }
        ],
    )
    assert anthropic_emulator.bodies[0]["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe both."},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
                {
                    "type": "image",
                    "source": {"type": "url", "url": "https://images.example.com/cat.jpg"},
                },
            ],
        }
    ]
    assert completion.choices[0].message.content == "A red pixel and a cat."


def test_json_mode_with_a_schema(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    anthropic_emulator.script(
        Reply(
            content=[
                {
                    "type": "tool_use",
                    "id": "toolu_json",
                    "name": "json_response",
                    "input": {"city": "Paris", "population": 2102650},
                }
            ],
            stop_reason="tool_use",
        )
    )
    completion = client.chat.completions.create(
        model=claude,
        messages=[{"role": "user", "content": "Largest French city, as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )
    body = anthropic_emulator.bodies[0]
    assert body["tools"] == [
        {"name": "json_response", "description": "Respond with city JSON.", "input_schema": schema}
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "json_response"}
    message = completion.choices[0].message
    assert message.content == '{"city":"Paris","population":2102650}'
    assert message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"


def test_stop_sequence(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.script(
        reply_text("1, 2, 3, ", stop_reason="stop_sequence", stop_sequence="4")
    )
    completion = client.chat.completions.create(
        model=claude, messages=[{"role": "user", "content": "Count to 9"}], stop=["4", "five"]
    )
    assert anthropic_emulator.bodies[0]["stop_sequences"] == ["4", "five"]
    assert completion.choices[0].message.content == "1, 2, 3, "
    assert completion.choices[0].finish_reason == "stop"


def test_upstream_error(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.script(reply_error(529, "overloaded_error", "Overloaded"))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=claude, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
    assert caught.value.body == {
        "message": "anthropic returned 529 overloaded_error: Overloaded",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_unavailable",
    }


def test_invalid_request_keeps_the_upstream_message(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=claude, messages=[{"role": "user", "content": "x"}], temperature=1.5
        )
    assert caught.value.status_code == 400
    assert caught.value.body["message"] == (  # type: ignore[index]
        "anthropic returned 400 invalid_request_error: "
        "temperature: Input should be less than or equal to 1"
    )


def test_rate_limit(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.script(
        reply_error(
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
            headers={"retry-after": "12"},
        )
    )
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=claude, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "12"
    assert caught.value.body == {
        "message": "anthropic returned 429 rate_limit_error: "
        "Number of requests has exceeded your rate limit",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_mid_stream_overload_reaches_the_sdk(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.script(
        Reply(content=[{"type": "text", "text": "Partial answer"}], stream_error_after=5)
    )
    stream = client.chat.completions.create(
        model=claude, messages=[{"role": "user", "content": "x"}], stream=True
    )
    received = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert received == "Partial answer"[:10]
    assert caught.value.message == "anthropic returned 529 overloaded_error: Overloaded"


def test_thinking_is_returned_as_reasoning_content(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.script(
        Reply(
            content=[
                {"type": "thinking", "thinking": "2 and 2 make 4.", "signature": "EqQBCgIYAhIM"},
                {"type": "text", "text": "4"},
            ]
        )
    )
    completion = client.chat.completions.create(
        model=claude, messages=[{"role": "user", "content": "2+2?"}], reasoning_effort="low"
    )
    assert anthropic_emulator.bodies[0]["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    message = completion.choices[0].message
    assert message.content == "4"
    assert message.model_extra["reasoning_content"] == "2 and 2 make 4."  # type: ignore[index]
    assert message.model_extra["thinking_blocks"] == [  # type: ignore[index]
        {"type": "thinking", "thinking": "2 and 2 make 4.", "signature": "EqQBCgIYAhIM"}
    ]


def test_prompt_caching_marks_and_a_pdf_reach_anthropic(
    client: openai.OpenAI, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    anthropic_emulator.script(
        reply_text(
            "Summary.",
            usage={"input_tokens": 5, "output_tokens": 2, "cache_creation_input_tokens": 1500},
        )
    )
    ephemeral = {"type": "ephemeral"}
    completion = client.chat.completions.create(
        model=claude,
        messages=[
            {
                "role": "system",
                "content": [
                    {
                        "type": "text",
                        "text": "A long, stable instruction.",
                        "cache_control": ephemeral,
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "file",
                        "file": {
                            "filename": "report.pdf",
                            "file_data": "data:application/pdf;base64,JVBERi0xLjQ=",
                        },
                    },
                    {"type": "text", "text": "Summarize."},
                ],
            },
        ],  # type: ignore[list-item]
        tools=[{**WEATHER_TOOL, "cache_control": ephemeral}],  # type: ignore[list-item]
    )
    body = anthropic_emulator.bodies[0]
    assert body["system"] == [
        {"type": "text", "text": "A long, stable instruction.", "cache_control": ephemeral}
    ]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "document",
                    "title": "report.pdf",
                    "source": {
                        "type": "base64",
                        "media_type": "application/pdf",
                        "data": "JVBERi0xLjQ=",
                    },
                },
                {"type": "text", "text": "Summarize."},
            ],
        }
    ]
    assert body["tools"][0]["cache_control"] == ephemeral
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 1505
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert completion.usage.prompt_tokens_details.model_extra == {"cache_creation_tokens": 1500}


def test_configured_from_a_litellm_model_string(
    client: openai.OpenAI,
    anthropic_emulator: AnthropicEmulator,
    install_deployments: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway.config.loader import config_parse
    from gateway.config.problems import Problems

    monkeypatch.setenv("ANTHROPIC_EMULATOR_KEY", API_KEY)
    problems = Problems()
    config = config_parse(
        "model_list:\n"
        "  - model_name: claude-litellm\n"
        "    litellm_params:\n"
        f"      model: anthropic/{UPSTREAM}\n"
        f"      api_base: {anthropic_emulator.url}\n"
        "      api_key: os.environ/ANTHROPIC_EMULATOR_KEY\n"
        "      max_tokens: 1234\n",
        source="litellm.yaml",
        problems=problems,
    )
    assert config is not None, problems.items
    install_deployments(*config.deployments)
    completion = client.chat.completions.create(
        model="claude-litellm", messages=[{"role": "user", "content": "Hi"}]
    )
    assert anthropic_emulator.bodies == [
        {"model": UPSTREAM, "max_tokens": 1234, "messages": [{"role": "user", "content": "Hi"}]}
    ]
    assert completion.choices[0].message.content == "Echo: Hi"


def test_answers_match_openais_schemas(
    live_ogem: LiveServer, master_key: str, claude: str, anthropic_emulator: AnthropicEmulator
) -> None:
    reply = Reply(
        content=[
            {"type": "thinking", "thinking": "Hmm.", "signature": "c2ln"},
            {"type": "text", "text": "Calling."},
            {"type": "tool_use", "id": "toolu_S", "name": "get_weather", "input": {"city": "Nice"}},
        ],
        stop_reason="tool_use",
        usage={"input_tokens": 9, "output_tokens": 9, "cache_read_input_tokens": 3},
    )
    anthropic_emulator.script(reply, reply)
    request = {
        "model": claude,
        "messages": [{"role": "user", "content": "Weather in Nice?"}],
        "tools": [WEATHER_TOOL],
    }
    chat_schemas_check(base_url=live_ogem.url, key=master_key, request=request, frames=10)
