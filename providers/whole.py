"""Chat completions of upstreams that answer whole (no stream): the answer, and a stream made of
it for a client that asked for one (the text as one chunk, then the finishing chunk with the
usage the answer had)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any


def chat_completion(
    *, text: str, model: str, identity: str, usage: dict[str, int] | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:  # fmt: skip
    answer: dict[str, Any] = {
        "id": identity,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
    }
    if usage is not None:
        answer["usage"] = usage
    return answer


def chat_chunk(
    *, identity: str, model: str, delta: dict[str, Any], finish: str | None
) -> dict[str, Any]:
    return {
        "id": identity,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


async def answer_as_stream(answer: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    identity, model = answer["id"], answer["model"]
    choice = answer["choices"][0]
    yield chat_chunk(
        identity=identity,
        model=model,
        delta={"role": "assistant", "content": choice["message"]["content"]},
        finish=None,
    )
    last = chat_chunk(identity=identity, model=model, delta={}, finish=choice["finish_reason"])
    if answer.get("usage"):
        last["usage"] = answer["usage"]
    yield last
