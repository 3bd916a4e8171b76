"""The ASGI callable's types, shared by every pure ASGI wrapper (health, metrics, CORS, /v1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def asgi_respond(
    send: Send, *, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """A whole response from a pure ASGI wrapper: its start (with content-length, which a 204
    must not carry) and its body."""
    start = list(headers or ())
    if status != 204:
        start.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": body})
