"""Numeric and size-like parameters are checked before any provider sees them: OpenAI's 400
naming the parameter, for every endpoint and whichever provider serves the model."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from providers.mock.adapter import _embedding

HELLO = [{"role": "user", "content": "Hi"}]
CHAT = {"model": "mock-chat", "messages": HELLO}


def _post(live_ogem, key: str, path: str, **kwargs: Any) -> httpx.Response:  # type: ignore[no-untyped-def]
    return httpx.post(
        f"{live_ogem.url}/v1/{path}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("path", "body", "param", "code", "message"),
    [
        # Finding 4: `n: -1` made the mock report completion_tokens -5.
        (
            "chat/completions",
            {**CHAT, "n": -1},
            "n",
            "integer_below_min_value",
            "Invalid 'n': integer below minimum value. Expected a value >= 1, but got -1 instead.",
        ),
        (
            "chat/completions",
            {**CHAT, "n": 129},
            "n",
            "integer_above_max_value",
            "Invalid 'n': integer above maximum value. Expected a value <= 128, but got 129 "
            "instead.",
        ),
        (
            "chat/completions",
            {**CHAT, "n": "2"},
            "n",
            "invalid_type",
            "Invalid type for 'n': expected an integer, but got a string instead.",
        ),
        (
            "chat/completions",
            {**CHAT, "n": 1.5},
            "n",
            "invalid_type",
            "Invalid type for 'n': expected an integer, but got a decimal instead.",
        ),
        (
            "chat/completions",
            {**CHAT, "temperature": 2.5},
            "temperature",
            "decimal_above_max_value",
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got "
            "2.5 instead.",
        ),
        ("chat/completions", {**CHAT, "top_p": -0.1}, "top_p", "decimal_below_min_value", None),
        (
            "chat/completions",
            {**CHAT, "presence_penalty": True},
            "presence_penalty",
            "invalid_type",
            None,
        ),
        # Finding 9: size-like parameters.
        (
            "chat/completions",
            {**CHAT, "max_tokens": 10**12},
            "max_tokens",
            "integer_above_max_value",
            None,
        ),
        (
            "chat/completions",
            {**CHAT, "max_completion_tokens": 0},
            "max_completion_tokens",
            "integer_below_min_value",
            None,
        ),
        (
            "chat/completions",
            {**CHAT, "top_logprobs": 21},
            "top_logprobs",
            "integer_above_max_value",
            None,
        ),
        (
            "chat/completions",
            {**CHAT, "logit_bias": {str(i): 1 for i in range(1025)}},
            "logit_bias",
            "object_above_max_properties",
            None,
        ),
        (
            "chat/completions",
            {**CHAT, "logit_bias": {"50256": -101}},
            "logit_bias.50256",
            "decimal_below_min_value",
            None,
        ),
        (
            "chat/completions",
            {**CHAT, "stop": ["x"] * 17},
            "stop",
            "array_above_max_length",
            "Invalid 'stop': array too long. Expected an array with maximum length 16, but got "
            "an array with length 17 instead.",
        ),
        # The body's structure check (gateway/body.py) answers for the shape of `stop`.
        ("chat/completions", {**CHAT, "stop": 5}, "stop", None, None),
        (
            "chat/completions",
            {**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}] * 129},
            "tools",
            "array_above_max_length",
            None,
        ),
        (
            "completions",
            {"model": "mock-chat", "prompt": "Hi", "best_of": 21},
            "best_of",
            "integer_above_max_value",
            None,
        ),
        (
            "completions",
            {"model": "mock-chat", "prompt": ["a"] * 2049},
            "prompt",
            "array_above_max_length",
            None,
        ),
        (
            "embeddings",
            {"model": "mock-embed", "input": "alpha", "dimensions": 100_000_000},
            "dimensions",
            "integer_above_max_value",
            "Invalid 'dimensions': integer above maximum value. Expected a value <= 8192, but "
            "got 100000000 instead.",
        ),
        (
            "embeddings",
            {"model": "mock-embed", "input": "alpha", "dimensions": 0},
            "dimensions",
            "integer_below_min_value",
            None,
        ),
        (
            "embeddings",
            {"model": "mock-embed", "input": ["a"] * 2049},
            "input",
            "array_above_max_length",
            None,
        ),
        (
            "images/generations",
            {"model": "mock-image", "prompt": "a cat", "n": 11},
            "n",
            "integer_above_max_value",
            None,
        ),
        (
            "images/generations",
            {"model": "mock-image", "prompt": "a cat", "size": "99999x99999"},
            "size",
            "invalid_value",
            None,
        ),
        (
            "audio/speech",
            {"model": "mock-tts", "input": "hi", "voice": "alloy", "speed": 10},
            "speed",
            "decimal_above_max_value",
            None,
        ),
        (
            "audio/speech",
            {"model": "mock-tts", "input": "x" * 4097, "voice": "alloy"},
            "input",
            "string_above_max_length",
            None,
        ),
        (
            "moderations",
            {"model": "mock-moderation", "input": ["a"] * 2049},
            "input",
            "array_above_max_length",
            None,
        ),
        (
            "rerank",
            {"model": "mock-rerank", "query": "q", "documents": ["a", "b"], "top_n": -1},
            "top_n",
            "integer_below_min_value",
            None,
        ),
    ],
)
def test_out_of_bounds_parameters_are_400(
    live_ogem, master_key: str, path: str, body: dict, param: str, code: str, message: str | None
) -> None:  # type: ignore[no-untyped-def]
    response = _post(live_ogem, master_key, path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    if message is not None:
        assert error["message"] == message


def test_multipart_numbers_are_checked(live_ogem, master_key: str) -> None:
    image = ("image.png", b"\x89PNG\r\n\x1a\n", "image/png")
    response = _post(
        live_ogem,
        master_key,
        "images/edits",
        data={"model": "mock-image", "prompt": "p", "n": "-1"},
        files={"image": image},
    )
    assert response.status_code == 400
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (
        "n",
        "integer_below_min_value",
    )
    response = _post(
        live_ogem,
        master_key,
        "audio/transcriptions",
        data={"model": "mock-whisper", "temperature": "hot"},
        files={"file": ("a.wav", b"RIFF", "audio/wav")},
    )
    assert response.status_code == 400
    assert (response.json()["error"]["param"], response.json()["error"]["code"]) == (
        "temperature",
        "invalid_type",
    )


def test_the_anthropic_ingress_is_checked_the_same_way(live_ogem, master_key: str) -> None:
    response = _post(
        live_ogem,
        master_key,
        "messages",
        json={"model": "mock-chat", "max_tokens": 10**12, "messages": HELLO},
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in response.json()["error"]["message"]


def test_parameters_within_bounds_are_served(sdk: openai.OpenAI) -> None:
    chat = sdk.chat.completions.create(
        model="mock-chat",
        messages=HELLO,
        n=128,
        temperature=2,
        top_p=0,
        max_tokens=1_000_000,
        stop=["\n"] * 4,
        logit_bias={"50256": -100},
        seed=-(2**63),
    )
    assert len(chat.choices) == 128
    assert chat.usage is not None and chat.usage.completion_tokens == 128 * 5
    embedded = sdk.embeddings.create(
        model="mock-embed", input=["alpha", "beta"], dimensions=8192, encoding_format="float"
    )
    # The mock's vectors are built block by block: the largest size extends the default one.
    assert [len(item.embedding) for item in embedded.data] == [8192, 8192]
    assert embedded.data[0].embedding[:16] == _embedding("alpha", 16)
    assert embedded.data[1].embedding == _embedding("beta", 8192)
