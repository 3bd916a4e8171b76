"""A lean HTTP/1.1 client for upstream calls: asyncio protocols, httptools' parser, pooled
keep-alive connections per event loop.

Why not aiohttp for every call: measured on the 2-core build machine (one POST of a chat
completion to the bench's nginx at a time, client pinned to its own core), aiohttp's
`ClientSession.request` + `read()` took 172 µs a round trip and 125 µs of CPU; the same request
written on an asyncio `Protocol` took 78 µs and 33 µs. At concurrency 1 that difference is most of
what Ogem adds to a request after its own Python, and it is CPU at every concurrency.

What it does: HTTP and HTTPS (the default TLS context, certificates verified), request head and
body written in one `write`, responses with Content-Length, chunked, or delimited by the
connection's close, gzip and deflate bodies decoded (the only encodings it asks for), streamed
bodies read as they arrive (reading pauses above 1 MiB unread), `Connection: close` and HTTP/1.0
honoured, idle connections kept 60 s. Timeouts as aiohttp's `ClientTimeout(sock_connect,
sock_read, total)`: `connect` bounds the TCP/TLS connect, `first_byte` every wait for data, `total`
the whole exchange (a body read included); a timeout raises `TimeoutError` and drops the
connection. Failures raise what aiohttp raises, so callers map them the same way: a connection
lost before the response's head `ServerDisconnectedError`, during its body `ClientPayloadError`,
a malformed response `ClientConnectionError`, a refused connect `OSError`.

With an address policy (an organization's deployment), the one DNS lookup of a connect is made
here, its addresses checked (providers/addresses.py) and only an allowed address connected to;
a refused host raises `AddressRefusedError` before anything is sent. Pools are kept per policy.

What it leaves to aiohttp (providers/http.py chooses): proxies and multipart bodies.
A request is never retried here; the router retries by its own policy.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import zlib
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
import httptools
from multidict import CIMultiDict

from providers.addresses import AddressPolicy, addresses_resolve

IDLE_SECONDS = 60.0
PAUSE_ABOVE = 1 << 20  # unread body bytes before the socket stops being read
USER_AGENT = "Ogem"

PoolKey = tuple[str, int, bool, AddressPolicy | None]  # host, port, TLS, address policy


class _Connection(asyncio.Protocol):
    """One upstream connection; it carries one exchange at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.response: Http11Response | None = None
        self.lost = False
        self.idle_since = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes while idle: nothing may follow a finished response
            self.abort()
            return
        response.feed(data)

    def eof_received(self) -> bool:
        return False  # close our side too: an upstream that stops sending is done

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.response is not None:
            self.response.connection_ended(exc)

    def reusable(self, now: float) -> bool:
        """Idle, still open, and not idle for too long."""
        return not self.lost and now - self.idle_since < IDLE_SECONDS

    def abort(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.abort()


class Http11Response:
    """What callers use of aiohttp's ClientResponse: `status`, `headers`, `read()`, `close()`
    and `content.readany()`."""

    def __init__(self, connection: _Connection, pool: _Pool, key: PoolKey, read_timeout: float,
                 deadline: float) -> None:  # fmt: skip
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()
        self.content = self  # aiohttp's StreamReader role: readany()
        self._connection = connection
        self._pool = pool
        self._key = key
        self._read_timeout = read_timeout
        self._deadline = deadline
        self._parser = httptools.HttpResponseParser(self)
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._head_done = False
        self._interim = False
        self._chunks: list[bytes] = []
        self._unread = 0
        self._paused = False
        self._reading_all = False  # read(): the whole body is wanted, never pause
        self._complete = False
        self._until_close = False
        self._keep_alive = False
        self._decoder: Any = None
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    # ---- httptools' callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue and friends: the real head follows
            self._interim = True
            self._raw_headers = []
            return
        self.status = status
        headers = self.headers
        for name, value in self._raw_headers:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        self._raw_headers = []
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._decoder = _DeflateDecoder()
        self._until_close = (
            "Content-Length" not in headers
            and "chunked" not in headers.get("Transfer-Encoding", "").lower()
            and status not in (204, 304)
        )
        self._keep_alive = self._parser.should_keep_alive() and not self._until_close
        self._head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self._decoder is not None:
            try:
                body = self._decoder.decompress(body)
            except zlib.error as exc:
                self._fail(aiohttp.ClientPayloadError(f"Undecodable response body: {exc}"))
                return
        if body:
            self._chunks.append(body)
            self._unread += len(body)
            if self._unread > PAUSE_ABOVE and not self._paused and not self._reading_all:
                self._paused = True
                self._connection.transport.pause_reading()  # type: ignore[union-attr]
            self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self._finish()

    # ---- fed by the connection -----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._complete:  # bytes after the response: this connection cannot be trusted again
            self._keep_alive = False
            self._connection.abort()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(aiohttp.ClientConnectionError(f"Malformed response from upstream: {exc}"))

    def connection_ended(self, exc: Exception | None) -> None:
        if self._complete or self._error is not None:
            return
        if self._head_done and self._until_close and exc is None:
            self._finish()  # the close delimits the body
        elif self._head_done:
            self._fail(aiohttp.ClientPayloadError(f"Response payload is not completed: {exc!r}"))
        else:
            self._fail(aiohttp.ServerDisconnectedError())

    # ---- for callers ---------------------------------------------------------------------------

    async def read(self) -> bytes:
        """The whole (decoded) body."""
        self._reading_all = True
        if self._paused:  # a stream read partly, then read whole
            self._paused = False
            self._connection.transport.resume_reading()  # type: ignore[union-attr]
        while not self._complete:
            await self._wait()
        body = b"".join(self._chunks)
        self._chunks = []
        return body

    async def readany(self) -> bytes:
        """What has arrived (waiting for something); b"" once the body is complete."""
        while not self._chunks:
            if self._complete:
                return b""
            await self._wait()
        chunks, self._chunks = self._chunks, []
        self._unread = 0
        if self._paused:
            self._paused = False
            self._connection.transport.resume_reading()  # type: ignore[union-attr]
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def close(self) -> None:
        """Back to the pool if the exchange finished cleanly, else the connection is dropped."""
        if self._closed:
            return
        self._closed = True
        connection = self._connection
        connection.response = None
        if self._complete and self._keep_alive and self._error is None and not connection.lost:
            if self._paused:  # finished while paused: the next exchange must be read
                connection.transport.resume_reading()  # type: ignore[union-attr]
            self._pool.release(self._key, connection)
        else:
            connection.abort()

    # ---- internals -----------------------------------------------------------------------------

    async def head(self) -> None:
        while not self._head_done:
            await self._wait()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_at(min(loop.time() + self._read_timeout, self._deadline), self._time_out)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _time_out(self) -> None:
        self._fail(TimeoutError("The upstream did not answer in time."))

    def _finish(self) -> None:
        if self._decoder is not None:
            tail = self._decoder.flush()
            if tail:
                self._chunks.append(tail)
        self._complete = True
        self._wake()

    def _fail(self, error: BaseException) -> None:
        if self._error is None and not self._complete:
            self._error = error
        self._connection.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _DeflateDecoder:
    """`Content-Encoding: deflate` is zlib-wrapped by the standard and raw by some servers."""

    def __init__(self) -> None:
        self._inner: Any = None
        self._first = b""

    def decompress(self, data: bytes) -> bytes:
        if self._inner is None:
            self._first += data
            if len(self._first) < 2:
                return b""
            header = int.from_bytes(self._first[:2], "big")  # RFC 1950: CM 8, header % 31 == 0
            wrapped = (self._first[0] & 0x0F) == 8 and header % 31 == 0
            self._inner = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
            data, self._first = self._first, b""
        return self._inner.decompress(data)

    def flush(self) -> bytes:
        if self._inner is None:
            return b""
        return self._inner.flush()


class _Pool:
    """Idle keep-alive connections of one event loop, per (host, port, TLS, address policy)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.idle: dict[PoolKey, list[_Connection]] = {}
        self.swept = loop.time()

    async def acquire(self, key: PoolKey, *, connect_timeout: float,
                      deadline: float) -> _Connection:  # fmt: skip
        idle = self.idle.get(key)
        if idle:
            now = self.loop.time()
            while idle:
                connection = idle.pop()
                if connection.reusable(now):
                    return connection
                connection.abort()
        host, port, tls, policy = key
        async with asyncio.timeout_at(min(self.loop.time() + connect_timeout, deadline)):
            if policy is None:
                return await self._connect(host, port, host=host, tls=tls)
            # Resolve once and check every address, then connect to the checked addresses in
            # turn (create_connection does not look an IP literal up again).
            error: OSError | None = None
            for address, address_port in await addresses_resolve(host, port, policy=policy):
                try:
                    return await self._connect(address, address_port, host=host, tls=tls)
                except OSError as exc:
                    error = exc
            raise error or OSError(f"{host} has no address")

    async def _connect(self, address: str, port: int, *, host: str, tls: bool) -> _Connection:
        _, connection = await self.loop.create_connection(
            _Connection,
            address,
            port,
            ssl=_tls_context() if tls else None,
            server_hostname=host if tls else None,
        )
        return connection

    def release(self, key: PoolKey, connection: _Connection) -> None:
        now = connection.idle_since = self.loop.time()
        self.idle.setdefault(key, []).append(connection)
        if now - self.swept > IDLE_SECONDS / 2:
            self.sweep(now)

    def sweep(self, now: float) -> None:
        """Close what idled too long or was closed by the server: the most recent connection is
        reused first, so after a burst the older ones would otherwise stay open for good."""
        self.swept = now
        for key, connections in list(self.idle.items()):
            kept = []
            for connection in connections:
                if connection.reusable(now):
                    kept.append(connection)
                else:
                    connection.abort()
            if kept:
                self.idle[key] = kept
            else:
                del self.idle[key]

    def close(self) -> None:
        for connections in self.idle.values():
            for connection in connections:
                try:
                    connection.abort()
                except RuntimeError:  # its loop is closed: the socket goes with the transport
                    pass
        self.idle.clear()


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


# Characters a request target may carry as they are (RFC 3986's reserved and unreserved ones, and
# "%" so that what is already escaped stays so); anything else is percent-encoded, as yarl does.
_TARGET_SAFE = "/:@!$&'()*+,;=-._~%?"


@functools.lru_cache(maxsize=1024)
def url_target(url: str, policy: AddressPolicy | None = None) -> tuple[PoolKey, bytes, str] | None:
    """(pool key, request target, Host header) of an http(s) URL connected to under `policy`;
    None for anything this client does not serve."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return None
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    host = parts.hostname
    host_header = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host_header = f"{host_header}:{port}"
    target = quote(parts.path or "/", safe=_TARGET_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_TARGET_SAFE)
    return (host, port, tls, policy), target.encode("ascii"), host_header


_pools: dict[asyncio.AbstractEventLoop, _Pool] = {}


def pool_for(loop: asyncio.AbstractEventLoop) -> _Pool:
    pool = _pools.get(loop)
    if pool is None:
        pool = _pools[loop] = _Pool(loop)
        for stale in [other for other in _pools if other.is_closed()]:
            _pools.pop(stale).close()
    return pool


def pools_close(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Close the idle connections of `loop`'s pool (every pool when None)."""
    for key in [loop] if loop is not None else list(_pools):
        pool = _pools.pop(key, None)
        if pool is not None:
            pool.close()


async def http11_request(
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    body: bytes | None,
    connect_timeout: float,
    read_timeout: float,
    total_timeout: float,
    policy: AddressPolicy | None = None,
) -> Http11Response:
    """Send one request and return once the response's head has arrived. The caller reads the
    body (`read()` or `content.readany()`) and must `close()` the response. `policy`: the
    addresses this request may connect to (None: any, an operator's deployment)."""
    target = url_target(url, policy)
    if target is None:
        raise aiohttp.InvalidURL(url)
    key, request_target, host = target
    head = _request_head(method, request_target, host, headers, body)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_timeout
    pool = pool_for(loop)
    connection = await pool.acquire(key, connect_timeout=connect_timeout, deadline=deadline)
    response = Http11Response(connection, pool, key, read_timeout, deadline)
    connection.response = response
    try:
        connection.transport.write(head + body if body else head)  # type: ignore[union-attr]
        await response.head()
    except BaseException:
        response.close()  # unfinished: the connection is dropped
        raise
    return response


def _request_head(method: str, target: bytes, host: str, headers: dict[str, str],
                  body: bytes | None) -> bytes:  # fmt: skip
    lines = [f"{name}: {value}\r\n" for name, value in headers.items()]
    given = {name.lower() for name in headers}
    if "host" not in given:
        lines.append(f"Host: {host}\r\n")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {USER_AGENT}\r\n")
    if "accept" not in given:
        lines.append("Accept: */*\r\n")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: gzip, deflate\r\n")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body) if body else 0}\r\n")
        if body and "content-type" not in given:
            lines.append("Content-Type: application/octet-stream\r\n")
    text = "".join(lines)
    # A CR or LF inside a name or value would split the head (header injection): refuse it.
    if text.count("\n") != len(lines) or text.count("\r") != len(lines):
        raise aiohttp.ClientConnectionError("A request header contains a line break.")
    try:
        encoded = text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise aiohttp.ClientConnectionError("A request header is not Latin-1 text.") from exc
    return b"%s %s HTTP/1.1\r\n%s\r\n" % (method.encode("ascii"), target, encoded)
