"""End to end: the official `openai` SDK → a live Ogem → the Bedrock emulator, and back.

The emulator verifies every request's SigV4 signature, so each passing test also proves the
request was signed correctly over the exact bytes and path that reached the socket.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from tests.emulators.bedrock_api import (
    ACCESS_KEY,
    PIXEL_PNG,
    REQUEST_ID,
    BedrockEmulator,
    Reply,
    reply_error,
    reply_text,
)
from tests.live import LiveServer
from tests.providers.bedrock.conftest import CLAUDE, bedrock_deployment
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
CONVERSE_PATH = "/model/us.anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"


def test_plain_text_is_signed_and_translated(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(
        reply_text(
            "Hello! How can I help?",
            usage={
                "inputTokens": 11,
                "outputTokens": 8,
                "totalTokens": 19,
                "cacheReadInputTokens": 100,
                "cacheWriteInputTokens": 20,
            },
        )
    )
    raw = client.chat.completions.with_raw_response.create(
        model=claude, messages=[{"role": "user", "content": "Hi"}]
    )
    completion = raw.parse()
    [received] = bedrock_emulator.requests
    assert received.path == CONVERSE_PATH
    assert received.access_key == ACCESS_KEY
    assert received.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"
    )
    assert "/us-west-2/bedrock/aws4_request" in received.headers["authorization"]
    assert received.body == {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    assert raw.headers["x-ogem-provider"] == "bedrock"
    assert completion.id == f"chatcmpl-{REQUEST_ID}"
    assert completion.model == CLAUDE
    assert completion.choices[0].message.content == "Hello! How can I help?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (131, 8)
    assert completion.usage.total_tokens == 139
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 100


def test_system_prompt_multi_turn_and_inference_config(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(reply_text("Paris."))
    completion = client.chat.completions.create(
        model=claude,
        messages=[
            {"role": "system", "content": "You answer in one word."},
            {"role": "user", "content": "Capital of Italy?"},
            {"role": "assistant", "content": "Rome."},
            {"role": "user", "content": "And of France?"},
        ],
        temperature=0.3,
        top_p=0.9,
        max_tokens=50,
        presence_penalty=0.5,
    )
    assert bedrock_emulator.bodies() == [
        {
            "messages": [
                {"role": "user", "content": [{"text": "Capital of Italy?"}]},
                {"role": "assistant", "content": [{"text": "Rome."}]},
                {"role": "user", "content": [{"text": "And of France?"}]},
            ],
            "system": [{"text": "You answer in one word."}],
            "inferenceConfig": {"maxTokens": 50, "temperature": 0.3, "topP": 0.9},
        }
    ]
    assert completion.choices[0].message.content == "Paris."


def test_streamed_tool_call_and_its_result(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(
        Reply(
            content=[
                {"text": "Checking."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_A",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
                {
                    "toolUse": {
                        "toolUseId": "tooluse_B",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    }
                },
            ],
            stop_reason="tool_use",
            usage={"inputTokens": 40, "outputTokens": 30, "totalTokens": 70},
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
    chunks: list[Any] = []
    text, calls, finish, usage = stream_collect(stream, chunks)
    assert {chunk.id for chunk in chunks} == {f"chatcmpl-{REQUEST_ID}"}
    assert text == "Checking."
    assert calls == {
        0: {"id": "tooluse_A", "name": "get_weather", "arguments": '{"city":"Paris"}'},
        1: {"id": "tooluse_B", "name": "get_weather", "arguments": '{"city":"Rome"}'},
    }
    assert finish == "tool_calls"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (40, 30, 70)
    assert bedrock_emulator.requests[0].path.endswith("/converse-stream")
    assert bedrock_emulator.requests[0].headers["accept"] == "application/vnd.amazon.eventstream"
    first = bedrock_emulator.bodies("converse-stream")[0]
    assert first["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Current weather in a city",
                    "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]},
                }
            }
        ],
        "toolChoice": {"auto": {}},
    }

    answer = client.chat.completions.create(
        model=claude,
        tools=[WEATHER_TOOL],
        messages=[
            question,
            assistant_turn(text, calls),
            {"role": "tool", "tool_call_id": "tooluse_A", "content": "18C, cloudy"},
            {"role": "tool", "tool_call_id": "tooluse_B", "content": "24C, sunny"},
        ],
    )
    assert answer.choices[0].message.content == "Rome is warmer."
    assert bedrock_emulator.bodies()[0]["messages"] == [
        {"role": "user", "content": [{"text": "Weather in Paris and Rome?"}]},
        {
            "role": "assistant",
            "content": [
                {"text": "Checking."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_A",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
                {
                    "toolUse": {
                        "toolUseId": "tooluse_B",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    }
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tooluse_A", "content": [{"text": "18C, cloudy"}]}},
                {"toolResult": {"toolUseId": "tooluse_B", "content": [{"text": "24C, sunny"}]}},
            ],
        },
    ]


def test_image_is_sent_as_bytes(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(reply_text("A red pixel."))
    pixel = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    completion = client.chat.completions.create(
        model=claude,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe it."},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{pixel}"}},
                ],
            }
        ],
    )
    assert bedrock_emulator.bodies()[0]["messages"] == [
        {
            "role": "user",
            "content": [
                {"text": "Describe it."},
                {"image": {"format": "png", "source": {"bytes": pixel}}},
            ],
        }
    ]
    assert completion.choices[0].message.content == "A red pixel."


def _image_request(url: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is it?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


def test_image_url_is_downloaded_through_the_guard_when_allowed(
    client: openai.OpenAI,
    bedrock_emulator: BedrockEmulator,
    install_deployments: Callable[..., None],
) -> None:
    install_deployments(bedrock_deployment(bedrock_emulator, allow_private_urls=True))
    bedrock_emulator.script(reply_text("A pixel."))
    completion = client.chat.completions.create(
        model="claude-bedrock",
        messages=_image_request(f"{bedrock_emulator.url}/images/pixel.png"),  # type: ignore[arg-type]
    )
    assert completion.choices[0].message.content == "A pixel."
    assert [r.path for r in bedrock_emulator.requests] == ["/images/pixel.png", CONVERSE_PATH]
    assert bedrock_emulator.bodies()[0]["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": base64.b64encode(PIXEL_PNG).decode()}}
    }


@pytest.mark.parametrize(
    ("allow_private", "url_of"),
    [
        (False, lambda emulator: f"{emulator.url}/images/pixel.png"),
        (True, lambda emulator: "http://169.254.169.254/latest/meta-data/x.png"),
    ],
)
def test_forbidden_image_urls_are_refused_before_any_call(
    client: openai.OpenAI,
    bedrock_emulator: BedrockEmulator,
    install_deployments: Callable[..., None],
    allow_private: bool,
    url_of: Callable[[BedrockEmulator], str],
) -> None:
    install_deployments(bedrock_deployment(bedrock_emulator, allow_private_urls=allow_private))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="claude-bedrock",
            messages=_image_request(url_of(bedrock_emulator)),  # type: ignore[arg-type]
        )
    assert "resolves to an address Ogem may not fetch from" in caught.value.body["message"]  # type: ignore[index]
    assert bedrock_emulator.requests == []


def test_json_mode_with_a_schema(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    bedrock_emulator.script(
        Reply(
            content=[
                {
                    "toolUse": {
                        "toolUseId": "tooluse_json",
                        "name": "json_response",
                        "input": {"city": "Paris", "population": 2102650},
                    }
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
    assert bedrock_emulator.bodies()[0]["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "json_response",
                    "description": "Respond with city JSON.",
                    "inputSchema": {"json": schema},
                }
            }
        ],
        "toolChoice": {"tool": {"name": "json_response"}},
    }
    message = completion.choices[0].message
    assert message.content == '{"city":"Paris","population":2102650}'
    assert message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"


def test_stop_sequence(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(reply_text("1, 2, 3, ", stop_reason="stop_sequence"))
    completion = client.chat.completions.create(
        model=claude, messages=[{"role": "user", "content": "Count to 9"}], stop=["4", "five"]
    )
    assert bedrock_emulator.bodies()[0]["inferenceConfig"] == {"stopSequences": ["4", "five"]}
    assert completion.choices[0].message.content == "1, 2, 3, "
    assert completion.choices[0].finish_reason == "stop"


def test_max_tokens_finish_reason_is_length(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(reply_text("Once upon", stop_reason="max_tokens"))
    completion = client.chat.completions.create(
        model=claude, messages=[{"role": "user", "content": "Story"}], max_completion_tokens=2
    )
    assert bedrock_emulator.bodies()[0]["inferenceConfig"] == {"maxTokens": 2}
    assert completion.choices[0].finish_reason == "length"


def test_upstream_error(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(
        reply_error(
            503, "ServiceUnavailableException", "Bedrock is unable to process your request."
        )
    )
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=claude, messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
    assert caught.value.body == {
        "message": "bedrock returned 503 ServiceUnavailableException: "
        "Bedrock is unable to process your request.",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_unavailable",
    }


def test_validation_error_keeps_the_upstream_message(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=claude, messages=[{"role": "user", "content": "x"}], temperature=1.5
        )
    assert caught.value.body["message"] == (  # type: ignore[index]
        "bedrock returned 400 ValidationException: "
        "inferenceConfig.temperature: must be between 0 and 1"
    )


def test_rate_limit(client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator) -> None:
    bedrock_emulator.script(
        reply_error(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
            headers={"Retry-After": "7"},
        )
    )
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model=claude, messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.body == {
        "message": "bedrock returned 429 ThrottlingException: "
        "Too many requests, please wait before trying again.",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }


def test_mid_stream_exception_reaches_the_sdk(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(
        Reply(
            content=[{"text": "Partial answer"}],
            stream_exception_after=3,
            exception="modelStreamErrorException",
            message="The model stopped.",
        )
    )
    stream = client.chat.completions.create(
        model=claude, messages=[{"role": "user", "content": "x"}], stream=True
    )
    received = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert received == "Partial an"
    assert caught.value.message == (
        "bedrock returned 424 ModelStreamErrorException: The model stopped."
    )


def test_corrupt_frame_is_an_upstream_error(
    client: openai.OpenAI, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    bedrock_emulator.script(Reply(content=[{"text": "Hello there"}], stream_corrupt_event=2))
    stream = client.chat.completions.create(
        model=claude, messages=[{"role": "user", "content": "x"}], stream=True
    )
    received = ""
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert received == "Hello"
    assert caught.value.message == "bedrock sent a corrupt event stream (message CRC mismatch)."


def test_wrong_secret_is_refused_by_the_signature_check(
    client: openai.OpenAI,
    bedrock_emulator: BedrockEmulator,
    install_deployments: Callable[..., None],
) -> None:
    install_deployments(
        bedrock_deployment(bedrock_emulator, aws_secret_access_key="not-the-secret")
    )
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="claude-bedrock", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 502
    assert caught.value.body == {
        "message": "bedrock returned 403 InvalidSignatureException: The request signature we "
        "calculated does not match the signature you provided.",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_rejected_credentials",
    }


def test_session_token_is_sent_and_signed(
    client: openai.OpenAI,
    bedrock_emulator: BedrockEmulator,
    install_deployments: Callable[..., None],
) -> None:
    bedrock_emulator.add_key("ASIATEMPORARY0000001", "temporary-secret", "session-token-1")
    install_deployments(
        bedrock_deployment(
            bedrock_emulator,
            aws_access_key_id="ASIATEMPORARY0000001",
            aws_secret_access_key="temporary-secret",
            aws_session_token="session-token-1",
        )
    )
    completion = client.chat.completions.create(
        model="claude-bedrock", messages=[{"role": "user", "content": "Hi"}]
    )
    assert completion.choices[0].message.content == "Echo: Hi"
    [received] = bedrock_emulator.requests
    assert received.access_key == "ASIATEMPORARY0000001"
    assert received.headers["x-amz-security-token"] == "session-token-1"
    assert "x-amz-security-token" in received.headers["authorization"]


def test_assumed_role_credentials_are_fetched_once_and_used(
    client: openai.OpenAI,
    bedrock_emulator: BedrockEmulator,
    install_deployments: Callable[..., None],
) -> None:
    from tests.emulators.bedrock_api import ROLE_ARN

    install_deployments(
        bedrock_deployment(
            bedrock_emulator,
            aws_role_name=ROLE_ARN,
            aws_session_name="ogem-test",
            aws_external_id="ext-42",
            aws_sts_endpoint=bedrock_emulator.url,
        )
    )
    for text in ("one", "two"):
        completion = client.chat.completions.create(
            model="claude-bedrock", messages=[{"role": "user", "content": text}]
        )
        assert completion.choices[0].message.content == f"Echo: {text}"
    assert [
        {k: v for k, v in form.items() if k != "Version"} for form in bedrock_emulator.assumed
    ] == [
        {
            "Action": "AssumeRole",
            "RoleArn": ROLE_ARN,
            "RoleSessionName": "ogem-test",
            "ExternalId": "ext-42",
        }
    ]
    sts, first, second = bedrock_emulator.requests
    assert sts.path == "/" and sts.access_key == ACCESS_KEY
    assert first.access_key == second.access_key == "ASIAEMULATOR00000001"
    assert first.headers["x-amz-security-token"] == "FwoGZXIvYXdzEMULATOR0001"


def test_standard_credential_chain_reads_the_environment(
    client: openai.OpenAI,
    bedrock_emulator: BedrockEmulator,
    install_deployments: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.emulators.bedrock_api import SECRET_KEY

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    deployment = bedrock_deployment(bedrock_emulator)
    deployment.params.pop("aws_access_key_id")
    deployment.params.pop("aws_secret_access_key")
    install_deployments(deployment)
    completion = client.chat.completions.create(
        model="claude-bedrock", messages=[{"role": "user", "content": "env"}]
    )
    assert completion.choices[0].message.content == "Echo: env"
    assert bedrock_emulator.requests[0].access_key == ACCESS_KEY


def test_inference_profile_arn_is_encoded_in_the_signed_path(
    client: openai.OpenAI,
    bedrock_emulator: BedrockEmulator,
    install_deployments: Callable[..., None],
) -> None:
    arn = (
        "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.meta.llama3-1-8b-instruct-v1:0"
    )
    install_deployments(bedrock_deployment(bedrock_emulator, model=f"converse/{arn}"))
    completion = client.chat.completions.create(
        model="claude-bedrock", messages=[{"role": "user", "content": "Hi"}]
    )
    assert completion.choices[0].message.content == "Echo: Hi"
    assert completion.model == arn
    assert bedrock_emulator.requests[0].path == (
        "/model/arn%3Aaws%3Abedrock%3Aus-west-2%3A123456789012%3Ainference-profile"
        "%2Fus.meta.llama3-1-8b-instruct-v1%3A0/converse"
    )


def test_titan_embeddings_via_invoke_model(
    client: openai.OpenAI,
    bedrock_emulator: BedrockEmulator,
    install_deployments: Callable[..., None],
) -> None:
    install_deployments(
        bedrock_deployment(bedrock_emulator, model="amazon.titan-embed-text-v2:0", name="titan")
    )
    result = client.embeddings.create(model="titan", input=["hello world", "bye"], dimensions=256)
    bodies = sorted(bedrock_emulator.bodies("invoke"), key=lambda b: b["inputText"])
    assert bodies == [
        {"inputText": "bye", "dimensions": 256},
        {"inputText": "hello world", "dimensions": 256},
    ]
    assert {r.path for r in bedrock_emulator.requests} == {
        "/model/amazon.titan-embed-text-v2%3A0/invoke"
    }
    assert [d.index for d in result.data] == [0, 1]
    assert [len(d.embedding) for d in result.data] == [256, 256]
    assert result.usage.prompt_tokens == 3
    # The SDK asked for base64; the floats survive the float32 round trip.
    raw = httpx.post(
        f"{client.base_url}embeddings",
        headers={"Authorization": f"Bearer {client.api_key}"},
        json={"model": "titan", "input": "bye", "dimensions": 256, "encoding_format": "base64"},
    ).json()
    floats = struct.unpack("<256f", base64.b64decode(raw["data"][0]["embedding"]))
    assert [round(f, 5) for f in floats] == [round(f, 5) for f in result.data[1].embedding]


def test_cohere_embeddings_via_invoke_model(
    client: openai.OpenAI,
    bedrock_emulator: BedrockEmulator,
    install_deployments: Callable[..., None],
) -> None:
    install_deployments(
        bedrock_deployment(bedrock_emulator, model="cohere.embed-english-v3", name="cohere-embed")
    )
    result = client.embeddings.create(
        model="cohere-embed",
        input=["alpha beta", "gamma"],
        encoding_format="float",
        extra_body={"input_type": "search_query"},
    )
    assert bedrock_emulator.bodies("invoke") == [
        {"texts": ["alpha beta", "gamma"], "input_type": "search_query"}
    ]
    assert [len(d.embedding) for d in result.data] == [8, 8]
    assert result.usage.prompt_tokens == 3


def test_configured_from_a_litellm_model_string(
    client: openai.OpenAI,
    bedrock_emulator: BedrockEmulator,
    install_deployments: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gateway.config.loader import config_parse
    from gateway.config.problems import Problems
    from tests.emulators.bedrock_api import SECRET_KEY

    monkeypatch.setenv("BEDROCK_TEST_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("BEDROCK_TEST_SECRET", SECRET_KEY)
    problems = Problems()
    config = config_parse(
        "model_list:\n"
        "  - model_name: claude-litellm\n"
        "    litellm_params:\n"
        f"      model: bedrock/{CLAUDE}\n"
        f"      api_base: {bedrock_emulator.url}\n"
        "      aws_access_key_id: os.environ/BEDROCK_TEST_KEY_ID\n"
        "      aws_secret_access_key: os.environ/BEDROCK_TEST_SECRET\n"
        "      aws_region_name: us-west-2\n"
        "      max_tokens: 321\n",
        source="litellm.yaml",
        problems=problems,
    )
    assert config is not None, problems.items
    install_deployments(*config.deployments)
    completion = client.chat.completions.create(
        model="claude-litellm", messages=[{"role": "user", "content": "Hi"}]
    )
    assert bedrock_emulator.requests[0].path == CONVERSE_PATH
    assert bedrock_emulator.bodies() == [
        {
            "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
            "inferenceConfig": {"maxTokens": 321},
        }
    ]
    assert completion.choices[0].message.content == "Echo: Hi"


def test_answers_match_openais_schemas(
    live_ogem: LiveServer, master_key: str, claude: str, bedrock_emulator: BedrockEmulator
) -> None:
    reply = Reply(
        content=[
            {"text": "Calling."},
            {
                "toolUse": {
                    "toolUseId": "tooluse_S",
                    "name": "get_weather",
                    "input": {"city": "Nice"},
                }
            },
        ],
        stop_reason="tool_use",
    )
    bedrock_emulator.script(reply, reply)
    request = {
        "model": claude,
        "messages": [{"role": "user", "content": "Weather in Nice?"}],
        "tools": [WEATHER_TOOL],
    }
    # role, 2 text pieces, tool call opening, 2 argument pieces, finish, usage
    chat_schemas_check(base_url=live_ogem.url, key=master_key, request=request, frames=8)


def test_refused_assume_role_is_an_upstream_credentials_error(
    client: openai.OpenAI,
    bedrock_emulator: BedrockEmulator,
    install_deployments: Callable[..., None],
) -> None:
    install_deployments(
        bedrock_deployment(
            bedrock_emulator,
            aws_role_name="arn:aws:iam::123456789012:role/not-trusted",
            aws_sts_endpoint=bedrock_emulator.url,
        )
    )
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="claude-bedrock", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 502
    assert caught.value.body == {
        "message": "bedrock: STS AssumeRole failed: AccessDenied "
        "Not authorized to perform sts:AssumeRole",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_rejected_credentials",
    }
    assert [r.path for r in bedrock_emulator.requests] == ["/"]
