"""The async HTTP clients every provider adapter shares (pooled per event loop).

`upstream_send` sends a request through the lean HTTP/1.1 client (providers/http11.py), or through
aiohttp when the deployment has a proxy, the body is multipart, or `OGEM_UPSTREAM_CLIENT=aiohttp`.

Why aiohttp and not httpx: measured on this 2-core machine, 4,000 POSTs
of a 300-byte JSON body to a local aiohttp.web upstream, 50 in flight, keep-alive pooled client:

    aiohttp 3.14  ClientSession         4,800-6,000 requests/s
    httpx 0.28    AsyncClient (h11)       ~385 requests/s

(`python -m providers.http` reruns the measurement.) httpx's per-request overhead dominates at
gateway rates, so the data plane uses aiohttp.

Timeouts come from the deployment: `connect` bounds the TCP/TLS connect, `first_byte` bounds
every wait for data from the upstream (the first byte included), `total` bounds the whole
exchange. A deployment's `proxy` is passed per request. The lean client was measured against
aiohttp the same way (its module docstring has the figures).

A deployment's `address_policy` (an organization's deployment) limits the addresses connected to
(providers/addresses.py): the lean client checks what it resolves; aiohttp gets a session per
policy whose resolver checks, and IP-literal hosts (which aiohttp does not resolve) are checked
before the request.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import functools
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from django.conf import settings
from yarl import URL

from providers.addresses import AddressPolicy, GuardedResolver
from providers.base import Timeouts
from providers.http11 import Http11Response, http11_request, pools_close, url_target

_sessions: dict[tuple[asyncio.AbstractEventLoop, AddressPolicy | None], aiohttp.ClientSession] = {}


def http_session(policy: AddressPolicy | None = None) -> aiohttp.ClientSession:
    """The pooled session of the running event loop for `policy` (created on first use)."""
    loop = asyncio.get_running_loop()
    session = _sessions.get((loop, policy))
    if session is None or session.closed:
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=0,
            keepalive_timeout=60,
            ttl_dns_cache=300,
            resolver=None if policy is None else GuardedResolver(policy=policy),
        )
        session = aiohttp.ClientSession(
            connector=connector,
            json_serialize=lambda value: orjson.dumps(value).decode(),
            auto_decompress=True,
            trust_env=False,
        )
        _sessions[(loop, policy)] = session
        for stale in [other for other in _sessions if other[0].is_closed()]:
            _connector_close(_sessions.pop(stale))
    return session


@atexit.register
def _sessions_close() -> None:
    """Drop pooled connections at exit (their loops may be gone: close the transports directly)."""
    for session in list(_sessions.values()):
        _connector_close(session)
    _sessions.clear()
    pools_close()


def _connector_close(session: aiohttp.ClientSession) -> None:
    connector = session.connector
    if connector is not None and not connector.closed:
        # TCPConnector.close() is a coroutine; its loop may be gone, so use the synchronous part.
        connector._close(abort_ssl=True)


@functools.lru_cache(maxsize=256)
def http_timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    # Cached: deployments share a handful of timeout sets, and ClientTimeout is immutable.
    return aiohttp.ClientTimeout(
        total=timeouts.total, sock_connect=timeouts.connect, sock_read=timeouts.first_byte
    )


UpstreamHTTPResponse = aiohttp.ClientResponse | Http11Response

# The W3C `traceparent` of the upstream call in flight, set by the gateway's tracing
# (gateway/tracing.py) for its request's task: a list of one item, which the tracing rewrites as
# the request goes from span to span (a list's item costs a tenth of setting the variable, which
# makes a new context each time); None, or a None item: none sent.
upstream_traceparent: contextvars.ContextVar[list[str | None] | None] = contextvars.ContextVar(
    "upstream_traceparent", default=None
)


async def upstream_send(
    *,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | aiohttp.FormData | None,
    timeouts: Timeouts,
    proxy: str | None,
    encoded: bool = False,
    policy: AddressPolicy | None = None,
) -> UpstreamHTTPResponse:
    """Send one upstream request; returns at the response's head (the caller reads and closes).
    `encoded`: the URL is already escaped, send it as it is (a signed request's). The lean client
    never re-escapes what is escaped, nor the characters a signed path holds. `policy`: the
    addresses it may connect to (None: any)."""
    traceparent = upstream_traceparent.get()
    if traceparent is not None and traceparent[0] is not None:
        headers = {**headers, "traceparent": traceparent[0]}
    if (
        proxy is None
        and (body is None or type(body) is bytes)
        and method != "HEAD"
        and settings.OGEM_UPSTREAM_CLIENT == "lean"
        and url_target(url) is not None
    ):
        return await http11_request(
            method,
            url,
            headers=headers,
            body=body,
            connect_timeout=timeouts.connect,
            read_timeout=timeouts.first_byte,
            total_timeout=timeouts.total,
            policy=policy,
        )
    if policy is not None:
        policy.check_literal(URL(url, encoded=encoded).raw_host or "")
    return await http_session(policy).request(
        method,
        URL(url, encoded=True) if encoded else url,
        data=body,
        headers=headers,
        timeout=http_timeout(timeouts),
        proxy=proxy,
        allow_redirects=False,
    )


async def http_clients_close() -> None:
    """Close the running loop's pooled connections (a loop that ends with its task)."""
    loop = asyncio.get_running_loop()
    pools_close(loop)
    for key in [key for key in _sessions if key[0] is loop]:
        await _sessions.pop(key).close()


@dataclass(slots=True)
class UploadFile:
    field: str
    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass(slots=True)
class UpstreamRequest:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None  # serialized with orjson when set
    content: bytes | None = None  # raw body, when json is None
    form: dict[str, str] = field(default_factory=dict)  # multipart fields (with files)
    files: list[UploadFile] = field(default_factory=list)
    encoded: bool = False  # the URL is escaped already: sent as it is (a signed request's)


def request_body(request: UpstreamRequest) -> bytes | aiohttp.FormData | None:
    if request.json is not None:
        request.headers.setdefault("Content-Type", "application/json")
        return orjson.dumps(request.json)
    if request.files or request.form:
        form = aiohttp.FormData(quote_fields=False)
        for name, value in request.form.items():
            form.add_field(name, value)
        for upload in request.files:
            form.add_field(
                upload.field,
                upload.content,
                filename=upload.filename,
                content_type=upload.content_type,
            )
        return form
    return request.content


async def _measure() -> None:  # pragma: no cover - a developer tool
    # A developer tool's imports, kept out of every server process.
    import time

    import httpx
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b'{"ok": true}', content_type="application/json")

    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}/"
    payload = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * 240 + b'"}]}'
    total, concurrency = 4000, 50

    async def run(send: object) -> float:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with semaphore:
                await send()  # type: ignore[operator]

        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(total)))
        return total / (time.perf_counter() - started)

    async with aiohttp.ClientSession() as session:

        async def aiohttp_send() -> None:
            async with session.post(url, data=payload) as response:
                await response.read()

        print(f"aiohttp: {await run(aiohttp_send):,.0f} requests/s")
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:

        async def httpx_send() -> None:
            response = await client.post(url, content=payload)
            response.read()

        print(f"httpx:   {await run(httpx_send):,.0f} requests/s")
    await runner.cleanup()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_measure())
