"""What the providers' official-SDK tests share: a chat stream read into its text, tool calls,
finish reason and usage, the assistant turn that sends those tool calls back, and the check of
a chat request's answers against OpenAI's schemas."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.schemas import schema_validate


def stream_collect(
    stream: Any, chunks: list[Any] | None = None
) -> tuple[str, dict[int, dict[str, str]], str | None, Any]:
    """The streamed text, the tool calls by index (their deltas joined), the last finish reason
    and the usage chunk's usage; `chunks` receives every chunk, for what else a test checks."""
    text = ""
    calls: dict[int, dict[str, str]] = {}
    finish = None
    usage = None
    for chunk in stream:
        if chunks is not None:
            chunks.append(chunk)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                slot["id"] += call.id or ""
                slot["name"] += (call.function and call.function.name) or ""
                slot["arguments"] += (call.function and call.function.arguments) or ""
    return text, calls, finish, usage


def assistant_turn(content: str | None, calls: dict[int, dict[str, str]]) -> dict[str, Any]:
    """The assistant message that made these tool calls, as the next request sends it."""
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in calls.values()
        ],
    }


def chat_schemas_check(*, base_url: str, key: str, request: dict[str, Any], frames: int) -> None:
    """POST `request` to /v1/chat/completions whole, then streamed with usage: the answer and
    each of the `frames` chunks valid against OpenAI's schemas, the stream ended by [DONE]."""
    headers = {"Authorization": f"Bearer {key}"}
    url = f"{base_url}/v1/chat/completions"
    completion = httpx.post(url, headers=headers, json=request)
    assert completion.status_code == 200
    schema_validate("CreateChatCompletionResponse", completion.json())
    streamed = httpx.post(
        url,
        headers=headers,
        json={**request, "stream": True, "stream_options": {"include_usage": True}},
    )
    chunks = [f for f in streamed.text.split("\n\n") if f.startswith("data: {")]
    assert len(chunks) == frames
    for chunk in chunks:
        schema_validate("CreateChatCompletionStreamResponse", orjson.loads(chunk[6:]))
    assert streamed.text.endswith("data: [DONE]\n\n")
