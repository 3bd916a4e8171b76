"""The Gemini emulator refuses what the real API refuses (so passing tests mean something)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulators.gemini_api import InvalidRequest, validate_generate_request

USER = {"role": "user", "parts": [{"text": "hi"}]}
CALL = {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]}


def _answer(*names: str) -> dict[str, Any]:
    return {
        "role": "user",
        "parts": [{"functionResponse": {"name": n, "response": {"ok": True}}} for n in names],
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"contents": [USER], "model": "x"}, 'Unknown name "model"'),
        ({"contents": []}, "contents is not specified"),
        ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
        (
            {"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {}}]}]},
            "exactly one",
        ),
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [{"inlineData": {"mimeType": "image/png", "data": "!!"}}],
                    }
                ]
            },
            "invalid base64",
        ),
        ({"contents": [USER, CALL, _answer("f", "f")]}, "number of function response parts"),
        ({"contents": [USER, _answer("f")]}, "immediately after a function call turn"),
        (
            {
                "contents": [USER],
                "tools": [
                    {
                        "functionDeclarations": [
                            {
                                "name": "f",
                                "parameters": {
                                    "type": "object",
                                    "properties": {"a": {"type": "string"}},
                                    "additionalProperties": False,
                                },
                            }
                        ]
                    }
                ],
            },
            'Unknown name "additionalProperties"',
        ),
        (
            {
                "contents": [USER],
                "tools": [
                    {
                        "functionDeclarations": [
                            {"name": "f", "parameters": {"type": "object", "properties": {}}}
                        ]
                    }
                ],
            },
            "should be non-empty for OBJECT type",
        ),
        (
            {"contents": [USER], "generationConfig": {"responseSchema": {"type": "object"}}},
            "response_mime_type",
        ),
        ({"contents": [USER], "generationConfig": {"temperature": 2.5}}, "temperature"),
        (
            {
                "contents": [USER],
                "safetySettings": [{"category": "HARM_X", "threshold": "BLOCK_NONE"}],
            },
            "category",
        ),
        (
            {"contents": [USER], "systemInstruction": {"parts": [{"inlineData": {}}]}},
            "only text parts",
        ),
    ],
)
def test_invalid_requests_are_refused(body: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        validate_generate_request(body)


def test_a_complete_tool_exchange_is_accepted() -> None:
    validate_generate_request({"contents": [USER, CALL, _answer("f"), USER]})
