"""Bad input on /v1 answers 400 in the right error shape, never 500 (issue 14 point 15).

Each case below was a 500 on af9939d: a nesting too deep to forward, shapes the translations to
Gemini and Anthropic did not expect, malformed `/v1/messages` blocks, too many multipart fields,
and mock parameters of the wrong type. Upstreams are the local emulators; none is ever called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest

from providers.base import Deployment
from tests.emulators.anthropic_api import API_KEY as ANTHROPIC_KEY
from tests.emulators.anthropic_api import AnthropicEmulator, anthropic_emulator_get
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.gemini_api import API_KEY as GEMINI_KEY
from tests.emulators.gemini_api import GeminiEmulator, gemini_emulator_get
from tests.emulators.openai_api import OpenAIEmulator
from tests.live import LiveServer

pytestmark = pytest.mark.live

HELLO = [{"role": "user", "content": "hi"}]
TRANSLATION = "a field has an unexpected type or shape."


def _compatible(openai_emulator: OpenAIEmulator) -> Deployment:
    return Deployment(
        id="test:compatible",
        model_name="compatible",
        provider="openai_compatible",
        upstream_model="gpt-4o-mini",
        api_base=f"{openai_emulator.url}/v1",
        api_key=UPSTREAM_KEY,
    )


@pytest.fixture
def upstreams(
    openai_emulator: OpenAIEmulator, install_deployments: Callable[..., None]
) -> Iterator[tuple[OpenAIEmulator, AnthropicEmulator, GeminiEmulator]]:
    claude, gemini = anthropic_emulator_get(), gemini_emulator_get()
    claude.reset()
    gemini.reset()
    install_deployments(
        _compatible(openai_emulator),
        Deployment(
            id="test:claude",
            model_name="claude",
            provider="anthropic",
            upstream_model="claude-3-5-haiku-20241022",
            api_base=claude.url,
            api_key=ANTHROPIC_KEY,
        ),
        Deployment(
            id="test:gemini",
            model_name="gemini",
            provider="gemini",
            upstream_model="gemini-2.0-flash",
            api_base=gemini.url,
            api_key=GEMINI_KEY,
        ),
    )
    yield openai_emulator, claude, gemini
    assert openai_emulator.requests == []
    assert claude.requests == []
    assert gemini.requests == []
    claude.reset()
    gemini.reset()


@pytest.fixture
def client(live_ogem: LiveServer, master_key: str) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {master_key}"}
    with httpx.Client(base_url=live_ogem.url, headers=headers, timeout=30) as client:
        yield client


def _openai_error(
    response: httpx.Response, message: str, *, param: str | None, code: str | None = None
) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": code,
        }
    }


def _nested(depth: int) -> bytes:
    return b"[" * depth + b'"x"' + b"]" * depth


def test_deep_nesting_is_refused_before_any_upstream(client: httpx.Client, upstreams) -> None:  # type: ignore[no-untyped-def]
    for depth, where in ((1000, b'"extra": '), (300, b'"messages": [{"role": "user", "content": ')):
        closing = b"}]" if b"messages" in where else b""
        head = b'{"model": "compatible", '
        rest = b"" if b"messages" in where else b', "messages": [{"role": "user", "content": "hi"}]'
        raw = head + where + _nested(depth) + closing + rest + b"}"
        response = client.post(
            "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
        )
        _openai_error(
            response, "The JSON body nests deeper than 128 levels.", param=None, code="invalid_json"
        )


def test_nesting_within_the_limit_is_forwarded(
    client: httpx.Client, openai_emulator, install_deployments
) -> None:  # type: ignore[no-untyped-def]
    install_deployments(_compatible(openai_emulator))
    raw = b'{"model": "compatible", "messages": [{"role": "user", "content": "hi"}], "extra": '
    raw += _nested(126) + b"}"
    response = client.post(
        "/v1/chat/completions", content=raw, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    extra: Any = openai_emulator.last.json["extra"]
    depth = 0
    while isinstance(extra, list):
        extra, depth = extra[0], depth + 1
    assert (depth, extra) == (126, "x")


@pytest.mark.parametrize("model", ["gemini", "claude", "compatible", "mock-chat"])
@pytest.mark.parametrize(
    ("field", "value", "message", "param"),
    [
        ("tools", "x", "`tools` must be an array of objects.", "tools"),
        ("tools", [1], "`tools` must be an array of objects.", "tools"),
        ("stop", 5, "`stop` must be a string or an array of strings.", "stop"),
        ("stop", ["a", 5], "`stop` must be a string or an array of strings.", "stop"),
        ("tool_choice", 5, "`tool_choice` must be a string or an object.", "tool_choice"),
        ("response_format", "json", "`response_format` must be an object.", "response_format"),
        (
            "messages",
            [{"role": "user", "content": 5}],
            "`messages[0].content` must be a string or an array of objects.",
            "messages[0].content",
        ),
        (
            "messages",
            [{"role": "user", "content": ["hi", 1]}],
            "`messages[0].content` must be a string or an array of objects.",
            "messages[0].content",
        ),
        (
            "messages",
            [{"role": "assistant", "tool_calls": [1]}, *HELLO],
            "`messages[0].tool_calls` must be an array of objects.",
            "messages[0].tool_calls",
        ),
    ],
)
def test_chat_fields_of_the_wrong_shape(  # type: ignore[no-untyped-def]
    client: httpx.Client, upstreams, model: str, field: str, value: Any, message: str, param: str
) -> None:
    body = {"model": model, "messages": HELLO, field: value}
    _openai_error(client.post("/v1/chat/completions", json=body), message, param=param)


@pytest.mark.parametrize(
    ("model", "provider"), [("gemini", "gemini"), ("claude", "anthropic"), ("mock-chat", "mock")]
)
def test_a_translation_that_fails_on_the_body_is_a_400(  # type: ignore[no-untyped-def]
    client: httpx.Client, upstreams, model: str, provider: str
) -> None:
    # Well-formed at the top, but not what a translation can read: the safety net answers 400.
    call = {"role": "assistant", "tool_calls": [{"id": "call_1", "function": 5}]}
    bodies = {
        "gemini": {"messages": [call, *HELLO]},
        "claude": {"messages": [call, *HELLO]},
        "mock-chat": {"mock_response": {"error": {"status": "x"}}},
    }
    body = {"model": model, "messages": HELLO, **bodies[model]}
    _openai_error(
        client.post("/v1/chat/completions", json=body),
        f"The request could not be translated for provider {provider}: {TRANSLATION}",
        param=None,
    )


@pytest.mark.parametrize(
    ("path", "body", "message", "param"),
    [
        (
            "/v1/embeddings",
            {"model": "mock-embed", "input": 5},
            "`input` must be a string, an array of strings, or token arrays.",
            "input",
        ),
        (
            "/v1/embeddings",
            {"model": "mock-embed", "input": [{}]},
            "`input` must be a string, an array of strings, or token arrays.",
            "input",
        ),
        (
            "/v1/embeddings",
            {"model": "mock-embed", "input": "x", "dimensions": "x"},
            "Invalid type for 'dimensions': expected an integer, but got a string instead.",
            "dimensions",
        ),
        (
            "/v1/completions",
            {"model": "mock-chat", "prompt": {"a": 1}},
            "`prompt` must be a string, an array of strings, or token arrays.",
            "prompt",
        ),
        (
            "/v1/rerank",
            {"model": "mock-chat", "query": "q", "documents": [1]},
            "`documents` must hold strings or objects.",
            "documents",
        ),
        (
            "/v1/rerank",
            {"model": "mock-chat", "query": 5, "documents": ["a"]},
            "`query` must be a string.",
            "query",
        ),
        (
            "/v1/images/generations",
            {"model": "mock-chat", "prompt": "p", "n": "x"},
            "Invalid type for 'n': expected an integer, but got a string instead.",
            "n",
        ),
        (
            "/v1/images/generations",
            {"model": "mock-chat", "prompt": 5},
            "`prompt` must be a string.",
            "prompt",
        ),
        (
            "/v1/audio/speech",
            {"model": "mock-chat", "input": ["x"]},
            "`input` must be a string.",
            "input",
        ),
        (
            "/v1/moderations",
            {"model": "mock-chat", "input": 5},
            "`input` must be a string or an array.",
            "input",
        ),
        (
            "/v1/chat/completions",
            {"model": "mock-chat", "messages": HELLO, "mock_response": {"error": {"status": "x"}}},
            f"The request could not be translated for provider mock: {TRANSLATION}",
            None,
        ),
    ],
)
def test_mock_parameters_of_the_wrong_type(  # type: ignore[no-untyped-def]
    client: httpx.Client, path: str, body: dict[str, Any], message: str, param: str | None
) -> None:
    # Numeric parameters are gateway/params.py's, which answers with OpenAI's codes.
    code = "invalid_type" if message.startswith("Invalid type") else None
    _openai_error(client.post(path, json=body), message, param=param, code=code)


def test_mock_stream_with_a_body_it_cannot_read(client: httpx.Client) -> None:
    body = {
        "model": "mock-chat",
        "messages": HELLO,
        "stream": True,
        "mock_response": {"error": {"status": "x"}},
    }
    _openai_error(
        client.post("/v1/chat/completions", json=body),
        f"The request could not be translated for provider mock: {TRANSLATION}",
        param=None,
    )


def test_too_many_multipart_fields(client: httpx.Client) -> None:
    data = {f"field{i}": "x" for i in range(1500)}
    data.update(model="mock-chat", prompt="a cat")
    files = {"image": ("cat.png", b"\x89PNG\r\n\x1a\n", "image/png")}
    _openai_error(
        client.post("/v1/images/edits", data=data, files=files),
        "The multipart body has too many fields or files.",
        param=None,
        code="too_many_fields",
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": [{"role": "user", "content": [1]}]}, "messages: must be an array of objects"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages: must be an array of objects"),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "text", "text": 5}]}]},
            "messages: a text block's `text` must be a string",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages: a text block's `text` must be a string",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result", "content": 5}]}]},
            "messages: must be an array of objects",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": "x"}]}]},
            "image.source: must be an object",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image", "source": {"type": "url"}}]}
                ]
            },
            "Unsupported image source type 'url'.",
        ),
        ({"system": [1], "messages": HELLO}, "system: must be an array of objects"),
        ({"system": 5, "messages": HELLO}, "system: must be a string or an array of text blocks"),
        ({"tools": [1], "messages": HELLO}, "tools: must be an array of objects"),
        ({"tools": "x", "messages": HELLO}, "tools: must be an array of objects"),
        ({"stop_sequences": 5, "messages": HELLO}, "stop_sequences: must be an array of strings"),
        ({"metadata": [1], "messages": HELLO}, "metadata: must be an object"),
        ({"thinking": 5, "messages": HELLO}, "thinking: must be an object"),
        (
            {"thinking": {"type": "enabled", "budget_tokens": "x"}, "messages": HELLO},
            "thinking.budget_tokens: must be an integer",
        ),
    ],
)
def test_malformed_messages_blocks(
    client: httpx.Client, body: dict[str, Any], message: str
) -> None:
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        payload = {"model": "mock-chat", "max_tokens": 16, **body}
        response = client.post(path, content=orjson.dumps(payload))
        assert response.status_code == 400, (path, response.text)
        assert response.json() == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": message},
        }
