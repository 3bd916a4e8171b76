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


_SCOPES = [
    # the common one: a JSON body, its length, a client and a server
    {"headers": [(b"content-type", b"application/json"), (b"content-length", b"13")]},
    # repeated headers joined, names with an underscore dropped, a charset, a query string
    {
        "headers": [
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"x_forwarded_for", b"spoofed"),
            (b"x-forwarded-for", b"10.0.0.2"),
            (b"content-type", b"application/json; charset=utf-8"),
            (b"x-latin", "caf\xe9".encode("latin1")),
        ],
        "query_string": b"api-version=2024-02-01&x=%C3%A9",
    },
    # no client, no server, a script prefix, lower-case method, a multipart body
    {
        "headers": [(b"content-type", b"multipart/form-data; boundary=xyz")],
        "client": None,
        "server": None,
        "root_path": "/ogem",
        "path": "/ogem/v1/files",
        "method": "post",
    },
    # a Content-Length Django cannot read: left for Django's own body
    {"headers": [(b"content-length", b"thirteen")]},
]


@pytest.mark.parametrize("extra", _SCOPES)
def test_the_lean_request_is_djangos_request(extra: dict[str, Any]) -> None:
    """`V1Request` builds what Django's ASGIRequest builds from the same scope: META, path, method,
    content type and parameters, encoding, and the same body."""
    import io

    from django.core.handlers.asgi import ASGIRequest

    from gateway.asgi import V1Request

    body = b'{"model":"m"}'
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "query_string": b"",
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
        **extra,
    }
    django_request = ASGIRequest(scope, io.BytesIO(body))
    script_name = scope.get("root_path", "")
    lean = V1Request(scope, io.BytesIO(body), script_name=script_name, body=body)
    assert lean.META == django_request.META
    assert list(lean.META) == list(django_request.META)
    for name in ("path", "path_info", "script_name", "method", "content_type", "encoding"):
        assert getattr(lean, name) == getattr(django_request, name), name
    assert lean.content_params == django_request.content_params
    assert lean.headers == django_request.headers
    assert lean.GET == django_request.GET
    if lean.META.get("CONTENT_LENGTH", "0").isdigit():
        assert lean.body == django_request.body == body
        assert lean.read() == body
    else:
        with pytest.raises(ValueError):
            django_request.body  # noqa: B018
        with pytest.raises(ValueError):
            lean.body  # noqa: B018


def test_a_body_over_the_upload_limit_is_refused_as_django_refuses_it(settings: Any) -> None:
    import io

    from django.core.exceptions import RequestDataTooBig

    from gateway.asgi import V1Request

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 8
    body = b'{"model":"m"}'
    for length in (str(len(body)).encode(), b"4"):  # the header says too much, or too little
        scope = _scope("/v1/chat/completions", [(b"content-length", length)])
        lean = V1Request(scope, io.BytesIO(body), script_name="", body=body)
        with pytest.raises(RequestDataTooBig):
            lean.body  # noqa: B018
