"""A trivial ASGI app for comparing ASGI servers: the server's cost, and nothing else's.

GET or POST /json: a small JSON body (a POST's body read first). GET /sse: 20 SSE events, one
ASGI message each, no pauses.
GET /sse-timed: 20 events 10 ms apart, to see how evenly the server relays them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bench.bodies import CHUNKS, completion_json

JSON = completion_json()
EVENT = b'data: {"choices":[{"index":0,"delta":{"content":"Hello! "}}]}\n\n'
DONE = b"data: [DONE]\n\n"
TIMED_INTERVAL = 0.01


async def application(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    # The request's body read, as any app that answers it must (Ogem does): granian's receive
    # is part of the server's cost (0.03-0.06 ms at concurrency 1 here, docs/benchmark.md).
    more = scope.get("method") == "POST"
    while more:
        message = await receive()
        more = message.get("more_body", False)
    if path == "/json":
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(JSON))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": JSON})
        return
    if path in {"/sse", "/sse-timed"}:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for _ in range(CHUNKS):
            if path == "/sse-timed":
                await asyncio.sleep(TIMED_INTERVAL)
            await send({"type": "http.response.body", "body": EVENT, "more_body": True})
        await send({"type": "http.response.body", "body": DONE})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})
