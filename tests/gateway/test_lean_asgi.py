"""The lean /v1 ASGI handler (`gateway/asgi.py`) driven in process with scripted ASGI messages:
what a server may send that the live tests' uvicorn does not (granian's body, then an empty last
message), and the client leaving versus the server cancelling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest

from bench.cpu import _scope
from tests.emulators.fixtures import slow_mock

pytestmark = pytest.mark.django_db(transaction=True)

Receive = Callable[[], Awaitable[dict[str, Any]]]


def _request(key: str, model: str) -> tuple[dict[str, Any], bytes]:
    body = orjson.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    headers = [
        (b"authorization", f"Bearer {key}".encode()),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    return _scope("/v1/chat/completions", headers), body


class Client:
    """Records what the handler sends; `answered` is set once the response body is complete."""

    def __init__(self) -> None:
        self.status = 0
        self.body = b""
        self.answered = asyncio.Event()

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            return
        self.body += message.get("body", b"")
        if not message.get("more_body"):
            self.answered.set()


async def test_a_body_complete_at_its_content_length_is_served_before_the_last_message(
    master_key: str,
) -> None:
    from ogem_site.asgi import application

    scope, body = _request(master_key, "mock-chat")
    half = len(body) // 2
    last_message_released = asyncio.Event()
    client_gone = asyncio.Event()
    messages = [
        {"type": "http.request", "body": body[:half], "more_body": True},
        {"type": "http.request", "body": body[half:], "more_body": True},
    ]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        if not last_message_released.is_set():
            await last_message_released.wait()
            last_message_released.clear()
            return {"type": "http.request", "body": b"", "more_body": False}
        await client_gone.wait()
        return {"type": "http.disconnect"}

    client = Client()
    served = asyncio.ensure_future(application(scope, receive, client.send))
    # Served while the server still holds its empty last message: nothing waited for it.
    await asyncio.wait_for(client.answered.wait(), timeout=5)
    assert client.status == 200
    assert orjson.loads(client.body)["choices"][0]["message"]["content"]
    last_message_released.set()
    client_gone.set()
    await asyncio.wait_for(served, timeout=5)  # and its listener took the last message in stride


async def _slow_request(master_key: str, install_deployments) -> tuple[dict[str, Any], bytes]:  # type: ignore[no-untyped-def]
    install_deployments(slow_mock("slow-chat", latency_ms=3000))
    return _request(master_key, "slow-chat")


def _body_then_disconnect(body: bytes, *, after: Awaitable[Any]) -> Receive:
    """The whole body in one message, then a disconnect once `after` is done."""
    messages = iter([{"type": "http.request", "body": body, "more_body": False}])

    async def receive() -> dict[str, Any]:
        for message in messages:
            return message
        await after
        return {"type": "http.disconnect"}

    return receive


async def test_the_client_leaving_ends_the_work_quietly(master_key, install_deployments) -> None:  # type: ignore[no-untyped-def]
    from ogem_site.asgi import application

    scope, body = await _slow_request(master_key, install_deployments)
    client = Client()
    receive = _body_then_disconnect(body, after=asyncio.sleep(0.1))
    served = asyncio.ensure_future(application(scope, receive, client.send))
    await asyncio.wait_for(served, timeout=2)  # well before the upstream's 3 s
    assert not served.cancelled()
    assert client.status == 0  # nothing was sent to a client that left
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_server_cancelling_the_request_is_not_taken_for_the_client_leaving(
    master_key, install_deployments
) -> None:  # type: ignore[no-untyped-def]
    from ogem_site.asgi import application

    scope, body = await _slow_request(master_key, install_deployments)
    receive = _body_then_disconnect(body, after=asyncio.Event().wait())  # the client stays
    served = asyncio.ensure_future(application(scope, receive, Client().send))
    await asyncio.sleep(0.1)
    served.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(served, timeout=2)
