"""The Anthropic-compatible ingress (`/v1/messages`) through the official `anthropic` SDK.

Against the offline `mock` model (any provider works behind it) and against the Anthropic
emulator (checking what reached the upstream after the round trip through the OpenAI shape).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import anthropic
import httpx
import openai
import orjson
import pytest

from keys.services import key_create
from providers.base import Deployment
from providers.mock.adapter import mock_token_count
from tests.emulators.anthropic_api import (
    API_KEY,
    AnthropicEmulator,
    Reply,
    anthropic_emulator_get,
    reply_error,
    reply_text,
)
from tests.factories import TeamFactory
from tests.gateway.test_streaming import Settlements, settlements  # noqa: F401 - a fixture
from tests.live import LiveServer, wait_for

pytestmark = pytest.mark.live

UPSTREAM = "claude-3-5-haiku-20241022"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture
def emulator() -> Iterator[AnthropicEmulator]:
    emulator = anthropic_emulator_get()
    emulator.reset()
    yield emulator
    emulator.reset()


@pytest.fixture
def claude(emulator: AnthropicEmulator, install_deployments: Callable[..., None]) -> str:
    deployment = Deployment(
        id="test:claude-ingress:0",
        model_name="claude-ingress",
        provider="anthropic",
        upstream_model=UPSTREAM,
        api_base=emulator.url,
        api_key=API_KEY,
    )
    install_deployments(deployment)
    return "claude-ingress"


@pytest.fixture
def client(live_ogem: LiveServer, master_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=master_key, max_retries=0)


@pytest.fixture
def messages_client(live_ogem: LiveServer, master_key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live_ogem.url, api_key=master_key, max_retries=0)


def test_mock_model_answers_like_chat_completions(
    messages_client: anthropic.Anthropic, client: openai.OpenAI
) -> None:
    prompt = "Hello there, mock"
    expected = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": prompt}]
    )
    raw = messages_client.messages.with_raw_response.create(
        model="mock-chat", max_tokens=100, messages=[{"role": "user", "content": prompt}]
    )
    message = raw.parse()
    assert raw.headers["x-ogem-provider"] == "mock"
    assert raw.headers["x-ogem-deployment"] == "builtin:mock-chat"
    assert message._request_id == raw.headers["x-request-id"]
    assert message.id.startswith("msg_")
    assert message.type == "message"
    assert message.role == "assistant"
    assert message.model == expected.model
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == expected.choices[0].message.content  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert expected.usage is not None
    assert message.usage.input_tokens == expected.usage.prompt_tokens
    assert message.usage.output_tokens == expected.usage.completion_tokens


def test_mock_model_streams_anthropic_events(
    messages_client: anthropic.Anthropic, client: openai.OpenAI
) -> None:
    prompt = "Stream me a reply"
    expected = client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": prompt}]
    )
    with messages_client.messages.stream(
        model="mock-chat", max_tokens=100, messages=[{"role": "user", "content": prompt}]
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop"
    assert kinds.count("content_block_start") == 1
    assert kinds.count("content_block_stop") == 1
    assert final.content[0].text == expected.choices[0].message.content  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert final.model == expected.model
    assert expected.usage is not None
    assert final.usage.input_tokens == expected.usage.prompt_tokens
    assert final.usage.output_tokens == expected.usage.completion_tokens


def test_virtual_key_in_x_api_key(live_ogem: LiveServer) -> None:
    secret = key_create(name="ingress", team=TeamFactory(), models=["mock-chat"]).secret
    sdk = anthropic.Anthropic(base_url=live_ogem.url, api_key=secret, max_retries=0)
    message = sdk.messages.create(
        model="mock-chat", max_tokens=20, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content[0].type == "text"
    with pytest.raises(anthropic.PermissionDeniedError) as caught:
        sdk.messages.create(
            model="mock-embed", max_tokens=20, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "permission_error",
            "message": "This key is not allowed to use the model `mock-embed`.",
        },
    }


def test_errors_use_anthropics_shape(live_ogem: LiveServer) -> None:
    bad = anthropic.Anthropic(base_url=live_ogem.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        bad.messages.create(
            model="mock-chat", max_tokens=20, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == 401
    assert caught.value.body == {
        "type": "error",
        "error": {
            "type": "authentication_error",
            "message": "Invalid, revoked or expired API key.",
        },
    }
    garbage = httpx.post(
        f"{live_ogem.url}/v1/messages",
        headers={"x-api-key": "sk-wrong"},
        content=b"{not json",
    )
    assert garbage.status_code == 401
    assert garbage.json()["type"] == "error"


def test_invalid_and_unknown_model(
    messages_client: anthropic.Anthropic, master_key: str, live_ogem: LiveServer
) -> None:
    response = httpx.post(
        f"{live_ogem.url}/v1/messages",
        headers={"x-api-key": master_key, "anthropic-version": "2023-06-01"},
        json={"model": "mock-chat", "messages": [{"role": "user", "content": "Hi"}]},
    )
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }
    with pytest.raises(anthropic.NotFoundError) as caught:
        messages_client.messages.create(
            model="no-such-model", max_tokens=20, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_emulator_round_trip_with_tools(
    messages_client: anthropic.Anthropic, claude: str, emulator: AnthropicEmulator
) -> None:
    emulator.script(
        Reply(
            content=[
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_01X",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
            stop_reason="tool_use",
            usage={"input_tokens": 50, "output_tokens": 20, "cache_read_input_tokens": 30},
        ),
        reply_text("It is 3C in Oslo."),
    )
    question = {"role": "user", "content": "Weather in Oslo?"}
    first = messages_client.messages.create(
        model=claude,
        max_tokens=300,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=[question],
        tools=[WEATHER],
        tool_choice={"type": "auto"},
        stop_sequences=["###"],
        metadata={"user_id": "u-7"},
    )
    assert emulator.bodies[0] == {
        "model": UPSTREAM,
        "max_tokens": 300,
        "messages": [{"role": "user", "content": "Weather in Oslo?"}],
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "stop_sequences": ["###"],
        "metadata": {"user_id": "u-7"},
        "tools": [WEATHER],
        "tool_choice": {"type": "auto"},
    }
    assert first.stop_reason == "tool_use"
    assert [b.model_dump(exclude_none=True) for b in first.content] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_01X", "name": "get_weather", "input": {"city": "Oslo"}},
    ]
    assert (first.usage.input_tokens, first.usage.cache_read_input_tokens) == (50, 30)
    assert first.usage.output_tokens == 20

    second = messages_client.messages.create(
        model=claude,
        max_tokens=300,
        messages=[
            question,
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_01X", "content": "3C"}],
            },
        ],
        tools=[WEATHER],
    )
    assert second.content[0].text == "It is 3C in Oslo."  # type: ignore[union-attr]
    assert emulator.bodies[1]["messages"] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_01X",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_01X", "content": "3C"}],
        },
    ]


def test_emulator_streamed_tool_use(
    messages_client: anthropic.Anthropic, claude: str, emulator: AnthropicEmulator
) -> None:
    emulator.script(
        Reply(
            content=[
                {"type": "text", "text": "On it."},
                {
                    "type": "tool_use",
                    "id": "toolu_01S",
                    "name": "get_weather",
                    "input": {"city": "Lima"},
                },
            ],
            stop_reason="tool_use",
            usage={"input_tokens": 33, "output_tokens": 12},
        )
    )
    with messages_client.messages.stream(
        model=claude,
        max_tokens=200,
        messages=[{"role": "user", "content": "Weather in Lima?"}],
        tools=[WEATHER],
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(texts) == "On it."
    assert emulator.bodies[0]["stream"] is True
    assert [b.model_dump(exclude_none=True) for b in final.content] == [
        {"type": "text", "text": "On it."},
        {"type": "tool_use", "id": "toolu_01S", "name": "get_weather", "input": {"city": "Lima"}},
    ]
    assert final.stop_reason == "tool_use"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (33, 12)


def test_upstream_rate_limit_and_mid_stream_error(
    messages_client: anthropic.Anthropic, claude: str, emulator: AnthropicEmulator
) -> None:
    emulator.script(
        reply_error(429, "rate_limit_error", "Too many requests", headers={"retry-after": "9"}),
        Reply(content=[{"type": "text", "text": "Half an answer"}], stream_error_after=4),
    )
    with pytest.raises(anthropic.RateLimitError) as limited:
        messages_client.messages.create(
            model=claude, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.response.headers["retry-after"] == "9"
    assert limited.value.body == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": "anthropic returned 429 rate_limit_error: Too many requests",
        },
    }
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        with messages_client.messages.stream(
            model=claude, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            for _ in stream:
                pass
    assert overloaded.value.body == {
        "type": "error",
        "error": {
            "type": "overloaded_error",
            "message": "anthropic returned 529 overloaded_error: Overloaded",
        },
    }


def test_count_tokens(
    messages_client: anthropic.Anthropic, claude: str, emulator: AnthropicEmulator
) -> None:
    messages = [{"role": "user", "content": "How many tokens is this, exactly?"}]
    upstream = messages_client.messages.count_tokens(model=claude, messages=messages)  # type: ignore[arg-type]
    received = emulator.requests[-1]
    assert received.path == "/v1/messages/count_tokens"
    assert received.body == {"model": UPSTREAM, "messages": messages}
    assert upstream.input_tokens == len(orjson.dumps(messages)) // 4
    approximated = messages_client.messages.count_tokens(model="mock-chat", messages=messages)  # type: ignore[arg-type]
    assert approximated.input_tokens == mock_token_count(messages[0]["content"])


def test_accounting_sees_anthropic_usage_with_cache_tokens(
    messages_client: anthropic.Anthropic,
    claude: str,
    emulator: AnthropicEmulator,
    settlements: Settlements,  # noqa: F811
) -> None:
    emulator.script(
        reply_text(
            "Cached answer.",
            usage={
                "input_tokens": 10,
                "output_tokens": 4,
                "cache_read_input_tokens": 200,
                "cache_creation_input_tokens": 50,
            },
        )
    )
    message = messages_client.messages.create(
        model=claude, max_tokens=50, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.usage.model_dump(exclude_none=True) == {
        "input_tokens": 10,
        "output_tokens": 4,
        "cache_read_input_tokens": 200,
        "cache_creation_input_tokens": 50,
    }
    wait_for(lambda: len(settlements) == 1, what="the request's settle")
    usage = settlements[0].usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (260, 4, 264)
    assert (usage.cached_tokens, usage.cache_creation_tokens) == (200, 50)
    assert settlements[0].deployment.id == "test:claude-ingress:0"


def test_client_disconnect_mid_stream_settles_once(
    live_ogem: LiveServer,
    master_key: str,
    install_deployments: Callable[..., None],
    settlements: Settlements,  # noqa: F811
) -> None:
    install_deployments(
        Deployment(
            id="test:slow-messages",
            model_name="slow-messages",
            provider="mock",
            upstream_model="slow-messages",
            params={"chunks": 20, "chunk_delay_ms": 200},
        )
    )
    with httpx.stream(
        "POST",
        f"{live_ogem.url}/v1/messages",
        headers={"x-api-key": master_key, "anthropic-version": "2023-06-01"},
        json={
            "model": "slow-messages",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "a b c"}],
        },
    ) as response:
        assert next(response.iter_lines()) == "event: message_start"
    # The stream's settle is the last thing its relay does (a settle of the request itself
    # would have come before the stream began): once it returned, none can follow.
    wait_for(lambda: settlements.ended == 1, what="the stream's settle to return")
    assert len(settlements) == 1
    assert settlements[0].cancelled is True
