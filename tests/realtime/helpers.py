"""Shared steps of the Realtime tests: raw WebSocket clients and reading the request log."""

from __future__ import annotations

import json
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.live import LiveServer


def ws_url(live: LiveServer, query: str = "model=voice") -> str:
    return live.url.replace("http://", "ws://") + f"/v1/realtime?{query}"


def raw_connect(
    live: LiveServer,
    *,
    key: str | None = None,
    query: str = "model=voice",
    headers: dict[str, str] | None = None,
    subprotocols: list[str] | None = None,
) -> ClientConnection:
    """A plain WebSocket client (what a browser or a hand-written client does)."""
    sent = dict(headers or {})
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    return connect(
        ws_url(live, query),
        additional_headers=sent,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        open_timeout=10,
        max_size=None,
    )


def send(ws: ClientConnection, event: dict[str, Any]) -> None:
    ws.send(json.dumps(event))


def events_until(ws: ClientConnection, kind: str, *, timeout: float = 10) -> list[dict[str, Any]]:
    """Every event received up to and including the first of type `kind`."""
    seen = []
    while True:
        event = json.loads(ws.recv(timeout=timeout))
        seen.append(event)
        if event["type"] == kind:
            return seen


def user_text(text: str) -> dict[str, Any]:
    return {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        },
    }


def realtime_logs(*, key_id: int | None = None) -> list[Any]:
    """The request log's Realtime rows (of one key), oldest first, once the usage is drained."""
    from billing.models import RequestLog
    from billing.services import usage_drain

    usage_drain()
    rows = RequestLog.objects.filter(endpoint="realtime")
    if key_id is not None:
        rows = rows.filter(key_id=key_id)
    return list(rows.order_by("created_at", "id"))


def key_of(secret: str) -> Any:
    """The VirtualKey row of a secret `make_key` returned."""
    from keys.models import VirtualKey
    from ogem_site.hashing import secret_prefix

    return VirtualKey.objects.get(prefix=secret_prefix(secret))
