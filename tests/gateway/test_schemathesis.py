"""schemathesis over /v1/openapi.json: no operation answers a 5xx (issue 14, point 15).

The document describes request bodies as open JSON objects (Ogem forwards fields it does not
know), so the fuzz first names the fields Ogem and the mock provider read, with any JSON value,
and the models the mock serves; everything else about each request is schemathesis' choice.
Size-like numbers (`n`, `dimensions`, `max_tokens`) are bounded by their own validation and tests.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fuzz import server_errors
from tests.live import LiveServer

pytestmark = pytest.mark.live

EXAMPLES = 20  # fuzzed cases per operation, besides the coverage phase's
ANY: dict[str, Any] = {}
TEXT = {"type": "string"}
# Positive cases mostly reach the mock; negative ones break these types.
CONTENT = {"anyOf": [TEXT, {"type": "array", "items": {"type": "object"}}]}
TEXTS = {"anyOf": [TEXT, {"type": "array", "items": TEXT}]}
BLOCK = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"enum": ["text", "image", "document", "tool_use", "tool_result", "thinking"]},
        "text": ANY,
        "source": ANY,
        "content": ANY,
        "input": ANY,
    },
}


def _chat(model: str) -> dict[str, Any]:
    message = {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"enum": ["system", "user", "assistant", "tool"]},
            "content": CONTENT,
            "tool_calls": ANY,
            "name": ANY,
        },
    }
    return {
        "model": {"enum": [model]},
        "messages": {"type": "array", "minItems": 1, "maxItems": 3, "items": message},
        **dict.fromkeys(
            (
                "stream",
                "stream_options",
                "stop",
                "tools",
                "tool_choice",
                "response_format",
                "user",
                "metadata",
                "mock_response",
                "store",
            ),
            ANY,
        ),
    }


def _messages(*, count_only: bool) -> dict[str, Any]:
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"enum": ["user", "assistant"]},
            "content": {"anyOf": [TEXT, {"type": "array", "items": BLOCK}]},
        },
    }
    fields: dict[str, Any] = {
        "model": {"enum": ["mock-chat"]},
        "messages": {"type": "array", "minItems": 1, "maxItems": 3, "items": message},
        "system": ANY,
        "tools": ANY,
    }
    if not count_only:
        fields["max_tokens"] = {"type": "integer", "minimum": 1, "maximum": 64}
        fields.update(dict.fromkeys(("tool_choice", "stop_sequences", "metadata", "thinking"), ANY))
    return fields


def _fields(*names: str, model: str = "mock-chat", **typed: Any) -> dict[str, Any]:
    return {"model": {"enum": [model]}, **dict.fromkeys(names, ANY), **typed}


def _files(*names: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"model": {"enum": ["mock-chat"]}}
    for name in names:
        fields[name] = {"type": "string", "format": "binary"}
    fields["prompt"] = {"type": "string"}
    return fields


# path → (required fields, fields)
BODIES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "/v1/chat/completions": (["model", "messages"], _chat("mock-chat")),
    "/v1/chat/completions/{completion_id}": (["metadata"], {"metadata": ANY}),
    "/v1/cost/estimate": (["model", "messages"], _chat("mock-chat")),
    "/v1/completions": (["model", "prompt"], _fields("stream", "stop", "user", prompt=TEXTS)),
    "/v1/embeddings": (
        ["model", "input"],
        _fields("encoding_format", model="mock-embed", input=TEXTS),
    ),
    "/v1/images/generations": (
        ["model", "prompt"],
        _fields("size", "response_format", prompt=TEXT),
    ),
    "/v1/audio/speech": (["model", "input"], _fields("voice", "response_format", input=TEXT)),
    "/v1/moderations": (["input"], _fields(input=TEXTS)),
    "/v1/rerank": (
        ["model", "query", "documents"],
        _fields("top_n", "return_documents", query=TEXT, documents={"type": "array"}),
    ),
    "/v1/messages": (["model", "messages", "max_tokens"], _messages(count_only=False)),
    "/v1/messages/count_tokens": (["model", "messages"], _messages(count_only=True)),
    "/v1/images/edits": (["model", "prompt", "image"], _files("image")),
    "/v1/images/variations": (["model", "image"], _files("image")),
    "/v1/audio/transcriptions": (["model", "file"], _files("file")),
    "/v1/audio/translations": (["model", "file"], _files("file")),
}


def test_v1_answers_no_server_error(live_ogem: LiveServer, master_key: str) -> None:
    document = httpx.get(f"{live_ogem.url}/v1/openapi.json").json()
    assert set(BODIES) <= set(document["paths"])
    for path, (required, fields) in BODIES.items():
        for media in document["paths"][path]["post"]["requestBody"]["content"].values():
            media["schema"] = {"type": "object", "required": required, "properties": fields}
    failures = server_errors(
        document=document,
        base_url=live_ogem.url,
        headers={"Authorization": f"Bearer {master_key}"},
        max_examples=EXAMPLES,
    )
    assert failures == []
