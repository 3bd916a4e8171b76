"""The static upstream answers nginx serves: one chat completion, and the same as 20 SSE chunks."""

from __future__ import annotations

import orjson

MODEL = "gpt-4o-mini"
CHUNKS = 20
REQUEST_JSON = orjson.dumps(
    {"model": "bench-chat", "messages": [{"role": "user", "content": "Say hello."}]}
)
REQUEST_STREAM = orjson.dumps(
    {
        "model": "bench-stream",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Say hello."}],
    }
)

# The Responses API on a model Ogem serves over chat, and the equivalent chat completion.
REQUEST_HOSTED_CHAT = orjson.dumps(
    {"model": "bench-hosted", "messages": [{"role": "user", "content": "Say hello."}]}
)
REQUEST_HOSTED_RESPONSE = orjson.dumps(
    {"model": "bench-hosted", "input": "Say hello.", "store": False}
)
REQUEST_HOSTED_RESPONSE_STORED = orjson.dumps({"model": "bench-hosted", "input": "Say hello."})


def request_unique(number: int) -> bytes:
    """REQUEST_JSON with a numbered prompt: a body the response cache has never seen."""
    return orjson.dumps(
        {"model": "bench-chat", "messages": [{"role": "user", "content": f"Say hello. #{number}"}]}
    )


def completion_json() -> bytes:
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello! " * CHUNKS},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": CHUNKS, "total_tokens": 30},
        }
    )


def completion_sse() -> bytes:
    events = []
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000}
    for index in range(CHUNKS):
        delta: dict[str, str] = {"content": "Hello! "}
        if index == 0:
            delta["role"] = "assistant"
        finish = "stop" if index == CHUNKS - 1 else None
        chunk = {
            **base,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
    usage = {
        **base,
        "model": MODEL,
        "choices": [],
        "usage": {"prompt_tokens": 10, "completion_tokens": CHUNKS, "total_tokens": 30},
    }
    events.append(b"data: " + orjson.dumps(usage) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return b"".join(events)
