"""The emulator refuses what the real Messages API refuses, so end-to-end tests mean something."""

from __future__ import annotations

import httpx
import pytest

from tests.emulators.anthropic_api import API_KEY, AnthropicEmulator

HEADERS = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01"}
VALID = {"model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]}


def post(emulator: AnthropicEmulator, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{emulator.url}/v1/messages", json=body, headers=headers or HEADERS)


def test_valid_request_gets_a_message(anthropic_emulator: AnthropicEmulator) -> None:
    response = post(anthropic_emulator, VALID)
    assert response.status_code == 200
    assert response.json() == {
        "id": "msg_01EmulatorReply",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": "Echo: Hi"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 7},
    }


def test_headers_are_required(anthropic_emulator: AnthropicEmulator) -> None:
    no_key = post(anthropic_emulator, VALID, {"anthropic-version": "2023-06-01"})
    assert no_key.status_code == 401
    assert no_key.json()["error"] == {
        "type": "authentication_error",
        "message": "invalid x-api-key",
    }
    no_version = post(anthropic_emulator, VALID, {"x-api-key": API_KEY})
    assert no_version.status_code == 400
    assert no_version.json()["error"]["message"] == "anthropic-version: header is required"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"messages": []}, "messages: at least one message is required"),
        ({"frequency_penalty": 0.1}, "frequency_penalty: Extra inputs are not permitted"),
        (
            {"messages": [{"role": "assistant", "content": "Hi"}]},
            'messages: roles must alternate between "user" and "assistant", starting with "user"',
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
            'messages: roles must alternate between "user" and "assistant", starting with "user"',
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages.0.content.0.type: Input tag 'image_url' found using 'type' does not match",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "toolu_x", "content": "r"}
                        ],
                    }
                ]
            },
            "messages.0.content: unexpected `tool_use_id` found in `tool_result` blocks: toolu_x."
            " Each `tool_result` block must have a corresponding `tool_use` block in the previous"
            " message.",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {
                        "role": "assistant",
                        "content": [
                            {"type": "tool_use", "id": "toolu_y", "name": "f", "input": {}}
                        ],
                    },
                    {"role": "user", "content": "no result"},
                ]
            },
            "messages.2: `tool_use` ids were found without `tool_result` blocks immediately after:"
            " toolu_y",
        ),
        (
            {"thinking": {"type": "enabled", "budget_tokens": 2048}},
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
    ],
)
def test_invalid_requests_are_refused_like_the_real_api(
    anthropic_emulator: AnthropicEmulator, change: dict, message: str
) -> None:
    body = {**VALID, **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = post(anthropic_emulator, body)
    assert response.status_code == 400
    assert response.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": message},
        "request_id": "req_emulator",
    }


def test_stream_uses_anthropics_sse_framing(anthropic_emulator: AnthropicEmulator) -> None:
    response = post(anthropic_emulator, {**VALID, "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    frames = response.text.split("\n\n")
    assert frames[0].startswith('event: message_start\ndata: {"type":"message_start"')
    assert frames[1] == 'event: ping\ndata: {"type":"ping"}'
    assert frames[-2] == 'event: message_stop\ndata: {"type":"message_stop"}'
    assert frames[-1] == ""
