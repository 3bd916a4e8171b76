"""The guard stage's stream wrapper on chunk shapes the emulator does not send: text in the
finishing chunk, several choices, a stream that ends without a finishing chunk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from gateway.context import Caller, RequestContext
from gateway.guardrails.masking import Masker
from gateway.guardrails.stage import GuardPlan, guard_chunks
from providers.base import Endpoint


def _chunk(*choices: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": list(choices),
    }


def _run(
    chunks: list[dict[str, Any]], *, endpoint: Endpoint = Endpoint.CHAT
) -> list[dict[str, Any]]:
    masker = Masker()
    assert masker.placeholder("EMAIL_ADDRESS", "jane@example.com") == "<EMAIL_ADDRESS_1>"
    plan = GuardPlan(masker=masker, restore=True)
    ctx = RequestContext(request_id="r", endpoint=endpoint, caller=Caller())

    async def upstream() -> AsyncIterator[dict[str, Any]]:
        for chunk in chunks:
            yield chunk

    async def collect() -> list[dict[str, Any]]:
        return [chunk async for chunk in guard_chunks(ctx, plan, upstream())]

    return asyncio.run(collect())


def _texts(chunks: list[dict[str, Any]], index: int) -> str:
    out = ""
    for chunk in chunks:
        for choice in chunk["choices"]:
            if choice["index"] == index:
                out += (choice.get("delta") or {}).get("content") or choice.get("text") or ""
    return out


def test_text_in_the_finishing_chunk_keeps_its_order() -> None:
    chunks = _run(
        [
            _chunk({"index": 0, "delta": {"content": "Hi <EMAIL_AD"}, "finish_reason": None}),
            _chunk({"index": 0, "delta": {"content": "DRESS_1> ok <EM"}, "finish_reason": "stop"}),
        ]
    )
    assert _texts(chunks, 0) == "Hi jane@example.com ok <EM"


def test_choices_are_restored_each_on_its_own() -> None:
    chunks = _run(
        [
            _chunk(
                {"index": 0, "delta": {"content": "a <EMAIL_"}, "finish_reason": None},
                {"index": 1, "delta": {"content": "b <EMAIL_ADDRESS"}, "finish_reason": None},
            ),
            _chunk(
                {"index": 1, "delta": {"content": "_1>"}, "finish_reason": None},
                {"index": 0, "delta": {"content": "ADDRESS_1>!"}, "finish_reason": None},
            ),
        ]
    )
    assert _texts(chunks, 0) == "a jane@example.com!"
    assert _texts(chunks, 1) == "b jane@example.com"


def test_a_stream_without_a_finishing_chunk_gets_what_was_held() -> None:
    chunks = _run(
        [
            {
                "id": "x",
                "object": "text_completion",
                "choices": [{"index": 0, "text": "to <EMAIL_ADDRESS_1"}],
            }
        ],
        endpoint=Endpoint.COMPLETIONS,
    )
    assert _texts(chunks, 0) == "to <EMAIL_ADDRESS_1"
    assert chunks[-1]["choices"] == [
        {"index": 0, "text": "<EMAIL_ADDRESS_1", "finish_reason": None}
    ]
