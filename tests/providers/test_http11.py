"""The lean upstream HTTP/1.1 client (`providers/http11.py`) against a scripted server on a real
socket: framing, keep-alive, timeouts, failures mapped as aiohttp's, and the client choice."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from django.test import override_settings

from providers.base import Timeouts
from providers.http import upstream_send
from providers.http11 import Http11Response, http11_request, url_target

Reply = Callable[["Exchange"], Awaitable[None]]


@dataclass
class Exchange:
    head: bytes
    body: bytes
    connection: int
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


@dataclass
class Server:
    """Answers each request with `reply`; records what arrived and on which connection."""

    reply: Reply
    exchanges: list[Exchange] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    server: asyncio.AbstractServer | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        connection = self.connections
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                exchange = Exchange(head=head, body=body, connection=connection, writer=writer)
                self.exchanges.append(exchange)
                await self.reply(exchange)
                if writer.is_closing():
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions"


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Reply], Awaitable[Server]]]:
    started: list[Server] = []

    async def start(reply: Reply) -> Server:
        server = Server(reply=reply)
        server.server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
        server.port = server.server.sockets[0].getsockname()[1]
        started.append(server)
        return server

    yield start
    for server in started:
        server.server.close()  # type: ignore[union-attr]


def _response(body: bytes, *, headers: str = "Content-Type: application/json\r\n") -> bytes:
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (
        headers.encode(),
        len(body),
        body,
    )


async def _ok(exchange: Exchange) -> None:
    await exchange.send(_response(b'{"ok": true}'))


async def _request(url: str, **overrides: object) -> Http11Response:
    options: dict = {
        "headers": {"Content-Type": "application/json", "Authorization": "Bearer k"},
        "body": b'{"model": "m"}',
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "total_timeout": 5.0,
        **overrides,
    }
    return await http11_request("POST", url, **options)  # type: ignore[arg-type]


async def test_a_request_is_one_head_and_body_and_its_connection_is_reused(serve) -> None:
    server = await serve(_ok)
    for _ in range(3):
        response = await _request(server.url)
        assert response.status == 200
        assert response.headers["content-type"] == "application/json"
        assert await response.read() == b'{"ok": true}'
        response.close()
    assert server.connections == 1
    first = server.exchanges[0]
    assert first.head.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    lines = first.head.decode().split("\r\n")
    assert f"Host: 127.0.0.1:{server.port}" in lines
    assert "Content-Length: 14" in lines
    assert "Authorization: Bearer k" in lines
    assert "Accept-Encoding: gzip, deflate" in lines
    assert first.body == b'{"model": "m"}'


async def test_a_chunked_gzip_stream_is_read_as_it_arrives(serve) -> None:
    second_part = asyncio.Event()

    def chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    async def stream(exchange: Exchange) -> None:
        compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
        first = compressor.compress(b"data: one\n\n") + compressor.flush(zlib.Z_SYNC_FLUSH)
        await exchange.send(head + chunk(first))
        await second_part.wait()
        rest = compressor.compress(b"data: two\n\n") + compressor.flush()
        await exchange.send(chunk(rest) + b"0\r\n\r\n")

    server = await serve(stream)
    response = await _request(server.url)
    assert await response.content.readany() == b"data: one\n\n"  # before the rest is sent
    second_part.set()
    assert await response.content.readany() == b"data: two\n\n"
    assert await response.content.readany() == b""
    response.close()
    again = await _request(server.url, body=None)  # the finished stream's connection is reused
    second_part.set()
    await again.read()
    again.close()
    assert server.connections == 1


async def test_a_body_delimited_by_the_close_is_complete_and_not_reused(serve) -> None:
    async def until_close(exchange: Exchange) -> None:
        await exchange.send(b"HTTP/1.1 200 OK\r\nContent-Encoding: deflate\r\n\r\n")
        await exchange.send(zlib.compress(b'{"raw": "deflate"}'))
        exchange.writer.close()

    server = await serve(until_close)
    for _ in range(2):
        response = await _request(server.url)
        assert await response.read() == b'{"raw": "deflate"}'
        response.close()
    assert server.connections == 2


async def test_connection_close_and_an_idle_close_by_the_server_open_a_new_connection(
    serve,
) -> None:
    async def then_close(exchange: Exchange) -> None:
        if exchange.connection == 1:
            await exchange.send(_response(b"{}", headers="Connection: close\r\n"))
        else:
            await exchange.send(_response(b"{}"))
            exchange.writer.close()  # an idle timeout on the server's side, after the answer

    server = await serve(then_close)
    for _ in range(3):
        response = await _request(server.url)
        assert await response.read() == b"{}"
        response.close()
        await asyncio.sleep(0.05)  # the server's close reaches the client
    assert server.connections == 3


async def test_timeouts_raise_timeout_error_and_drop_the_connection(serve) -> None:
    async def silent(exchange: Exchange) -> None:
        await asyncio.sleep(1)

    server = await serve(silent)
    with pytest.raises(TimeoutError):
        await _request(server.url, read_timeout=0.1)

    async def trickle(exchange: Exchange) -> None:
        await exchange.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(20):
            await exchange.send(b"2\r\nok\r\n")
            await asyncio.sleep(0.05)

    slow = await serve(trickle)
    response = await _request(slow.url, read_timeout=1.0, total_timeout=0.3)
    with pytest.raises(TimeoutError):  # every read is quick, the whole is not
        while await response.content.readany():
            pass
    response.close()
    follow_up = await _request(slow.url, total_timeout=5.0)
    follow_up.close()
    assert slow.connections == 2


async def test_failures_raise_what_aiohttp_raises(serve) -> None:
    async def reset(exchange: Exchange) -> None:
        exchange.writer.transport.abort()

    async def cut(exchange: Exchange) -> None:
        await exchange.send(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial')
        exchange.writer.close()

    async def garbage(exchange: Exchange) -> None:
        await exchange.send(b"NOT HTTP AT ALL\r\n\r\n")

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await _request((await serve(reset)).url)
    response = await _request((await serve(cut)).url)
    with pytest.raises(aiohttp.ClientPayloadError):
        await response.read()
    response.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        await _request((await serve(garbage)).url)
    refused = await serve(_ok)
    refused.server.close()  # type: ignore[union-attr]
    await refused.server.wait_closed()  # type: ignore[union-attr]
    with pytest.raises(OSError):
        await _request(refused.url)


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(serve) -> None:
    server = await serve(_ok)
    with pytest.raises(aiohttp.ClientConnectionError):
        await _request(server.url, headers={"X-Evil": "a\r\nX-Injected: 1"})
    assert server.exchanges == []


async def test_a_cancelled_request_does_not_return_its_connection_to_the_pool(serve) -> None:
    async def slow_then_ok(exchange: Exchange) -> None:
        if exchange.connection == 1:
            await asyncio.sleep(0.3)
        await exchange.send(_response(b"{}"))

    server = await serve(slow_then_ok)
    pending = asyncio.ensure_future(_request(server.url))
    await asyncio.sleep(0.05)
    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    response = await _request(server.url)
    assert await response.read() == b"{}"
    response.close()
    assert server.connections == 2  # the late answer on connection 1 was never read as this one's


def test_url_targets_are_escaped_as_yarl_would_and_keep_their_escapes() -> None:
    key, target, host = url_target(
        "https://example.com/openai/deployments/my model/chat?a=b c&x=%2F"
    )
    assert key == ("example.com", 443, True, None)  # no address policy: any address
    assert target == b"/openai/deployments/my%20model/chat?a=b%20c&x=%2F"
    assert host == "example.com"
    assert url_target("http://[::1]:8080")[1:] == (b"/", "[::1]:8080")
    assert url_target("ftp://example.com/") is None
    assert url_target("http://user:pw@example.com/") is None


async def test_upstream_send_leaves_proxies_multipart_and_the_opt_out_to_aiohttp(serve) -> None:
    server = await serve(_ok)
    timeouts = Timeouts(connect=2, first_byte=2, total=5)

    async def send(body: object, **settings: str) -> type:
        with override_settings(**settings):
            response = await upstream_send(
                method="POST", url=server.url, headers={}, body=body, timeouts=timeouts, proxy=None
            )
        await response.read()
        response.close()
        return type(response)

    assert await send(b"{}") is Http11Response
    assert await send(b"{}", OGEM_UPSTREAM_CLIENT="aiohttp") is aiohttp.ClientResponse
    form = aiohttp.FormData()
    form.add_field("file", b"bytes", filename="a.wav")
    assert await send(form) is aiohttp.ClientResponse


async def test_connections_left_idle_by_a_burst_are_closed_by_a_later_sweep(serve) -> None:
    from providers import http11

    server = await serve(_ok)
    burst = await asyncio.gather(*(_request(server.url) for _ in range(5)))
    for response in burst:
        await response.read()
        response.close()
    assert server.connections == 5
    pool = http11.pool_for(asyncio.get_running_loop())
    key = http11.url_target(server.url)[0]
    assert len(pool.idle[key]) == 5
    # Steady traffic reuses only the most recent connection; past the idle time a release sweeps.
    before = asyncio.get_running_loop().time()
    for connection in pool.idle[key][:-1]:
        connection.idle_since -= http11.IDLE_SECONDS
    pool.swept -= http11.IDLE_SECONDS
    response = await _request(server.url)
    await response.read()
    response.close()
    assert pool.swept >= before  # the release swept
    assert len(pool.idle[key]) == 1
    assert server.connections == 5


async def test_a_body_larger_than_the_pause_threshold_is_read_whole(serve) -> None:
    from providers import http11

    big = b"x" * (3 * http11.PAUSE_ABOVE)

    async def large(exchange: Exchange) -> None:
        await exchange.send(_response(big))

    server = await serve(large)
    response = await _request(server.url)
    assert await response.read() == big  # reading does not pause while the whole body is wanted
    response.close()
    streamed = await _request(server.url)
    received = b""
    while chunk := await streamed.content.readany():
        received += chunk
    streamed.close()
    assert received == big


async def test_a_response_finished_while_paused_leaves_a_readable_connection(
    serve, monkeypatch
) -> None:
    from providers import http11

    monkeypatch.setattr(http11, "PAUSE_ABOVE", 10)  # a 100-byte body pauses reading at once
    body = b"z" * 100
    server = await serve(lambda exchange: exchange.send(_response(body)))
    unread = await _request(server.url)
    await asyncio.sleep(0.05)  # head, body and end arrive in one read: complete, and paused
    unread.close()  # complete though unread: back to the pool
    follow_up = await _request(server.url, read_timeout=1.0)
    assert await follow_up.read() == body
    follow_up.close()
    assert server.connections == 1
