"""A lean, pipelined Redis connection for the two scripts on the /v1 hot path (admit and settle).

redis-py's asyncio client spends far more CPU on a command than Redis does: a pool checkout
through an asyncio.Condition, per-argument encoding, a stream writer and a line-by-line reply
parser, about 150 µs of CPU per EVALSHA on the development machine, twice per request. This
connection is an asyncio.Protocol: a command is encoded in one join, queued, and written with
every other command issued in the same event-loop turn (one send for many concurrent requests);
replies are parsed by hiredis as they arrive and resolve the callers' futures in order, since
Redis answers a connection's commands in the order it received them.

One connection per event loop and Redis URL (`ogem_site.redis.redis_lean` builds it, for plain
`redis://` URLs only). Connecting is bounded by `connect_timeout`; a reply that has not come
`timeout` seconds after its command was queued fails that command and every other in flight with
TimeoutError and drops the connection (its replies could no longer be matched to their commands).
A lost connection fails the commands in flight with ConnectionError. The next command reconnects.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import select
import socket
from collections import deque
from typing import Any, NamedTuple

import hiredis
from redis.connection import parse_url

# Each argument's RESP bytes ("$<length>\r\n<bytes>\r\n") by value: the scripts of the hot path
# send the same keys, rule kinds, limits and script SHA on every request, and a dictionary lookup
# is a fraction of encoding them again (hiredis's `pack_command` formats every argument's length
# with sprintf and converts every int through its str: 7 % of a response cache hit's
# instructions). Values seen once (a request id, a timestamp) fill it too: it is emptied at
# _PIECES_MAX.
_pieces: dict[Any, bytes] = {}
_piece_get = _pieces.get
_PIECES_MAX = 8192
_PIECE_BYTES_MAX = 256  # longer arguments (a usage event, a cache entry) are not kept
_HEADS = [b"*%d\r\n" % count for count in range(256)]
# A bulk string's length line by length: a list index instead of a `%` format (half a piece's
# cost for a new value: a request id, a cache key).
_LENGTHS = [b"$%d\r\n" % size for size in range(2048)]
_join = b"".join


def _encode(args: tuple[Any, ...]) -> bytes:
    """A command's RESP bytes, as `hiredis.pack_command` makes them (an int equal to a float
    argument stands for it: `2.0` may be sent as `2`)."""
    count = len(args)
    # The head joined with the pieces, not added to their join: the command (a settle with its
    # response cache entry: a kilobyte) is allocated and copied once.
    return _run(args, _HEADS[count] if count < 256 else b"*%d\r\n" % count)


def _run(args: tuple[Any, ...] | list[Any], head: bytes = b"") -> bytes:
    """`head` and the RESP pieces of `args`, joined."""
    try:
        parts = [_piece_get(arg) or _piece(arg) for arg in args]
    except TypeError:  # unhashable (a memoryview) or not a Redis value: hiredis's way
        command = hiredis.pack_command(tuple(args))
        return head + command[command.index(b"\r\n") + 2 :]
    parts.insert(0, head)
    return _join(parts)


def pieces(*args: Any) -> bytes:
    """The RESP pieces of `args`, joined: arguments that a command repeats request after request,
    encoded once for `packed`."""
    return _run(args)


def packed(runs: tuple[bytes, ...], values: list[Any]) -> bytes:
    """A command's arguments whose constant ones were encoded once: `runs` (from `pieces`), with
    each of `values` encoded between two of them (len(runs) == len(values) + 1)."""
    parts: list[Any] = [None] * (2 * len(values) + 1)
    parts[0::2] = runs
    parts[1::2] = [_piece_get(value) or _piece(value) for value in values]
    return _join(parts)


class Framed:
    """A command's last arguments given as their RESP pieces (`framed`), joined once with the rest
    of the command (`ScriptCall.tail`): a large value (a response cache entry) is neither hashed
    for the kept pieces nor copied on its own before the command is."""

    __slots__ = ("count", "pieces")
    count: int  # how many arguments
    pieces: tuple[bytes, ...]


class Encoded:
    """A command argument given as its RESP bytes already (`encoded`): a value sent once (a
    cache hit's usage event) is then neither hashed for the kept pieces nor kept among them."""

    __slots__ = ("piece",)
    piece: bytes


_new = object.__new__


def encoded(value: bytes) -> Encoded:
    """`value` as an `Encoded` argument (a bare instance, as `framed`'s)."""
    made: Encoded = _new(Encoded)
    size = len(value)
    made.piece = _join((_LENGTHS[size] if size < 2048 else b"$%d\r\n" % size, value, b"\r\n"))
    return made


def framed(value: bytes, then: Any) -> Framed:
    """`value` (bytes of any size) and the small argument `then` after it (a cache entry and its
    TTL), as a `Framed`. A bare instance: a class call with a Python __init__ costs about twice a
    function call (one a response cache miss)."""
    made: Framed = _new(Framed)
    made.count = 2
    size = len(value)
    made.pieces = (
        _LENGTHS[size] if size < 2048 else b"$%d\r\n" % size,
        value,
        b"\r\n",
        _piece_get(then) or _piece(then),
    )
    return made


def _piece(arg: Any) -> bytes:
    kind = type(arg)
    if kind is str:
        data = arg.encode()
    elif kind is int:
        data = b"%d" % arg
    elif kind is bytes:
        data = arg
    elif kind is float:
        data = repr(arg).encode()
    elif kind is Encoded:
        return arg.piece
    else:
        raise TypeError(f"A command argument is str, int, float or bytes, not {kind.__name__}.")
    size = len(data)
    # A join of exact bytes: no buffer protocol, unlike `+` (callgrind: 40 % of a `%` format).
    piece = _join((_LENGTHS[size] if size < 2048 else b"$%d\r\n" % size, data, b"\r\n"))
    if size <= _PIECE_BYTES_MAX:
        if len(_pieces) >= _PIECES_MAX:
            _pieces.clear()
        _pieces[arg] = piece
    return piece


class _Protocol(asyncio.Protocol):
    def __init__(self, timeout: float | None) -> None:
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader()
        self.pending: deque[asyncio.Future[Any]] = deque()
        # The loop time each pending command's reply is due by, oldest first (with a timeout).
        self.due: deque[float] = deque()
        self.timeout = timeout
        # One timer for the whole connection, not one per command: it fires at the oldest due
        # time and re-arms itself, a few times a second at most, however many commands flow.
        self.watchdog: asyncio.TimerHandle | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def expect(self, future: asyncio.Future[Any]) -> None:
        """`future` receives the reply to the next command written."""
        self.pending.append(future)
        timeout = self.timeout
        if timeout is not None:
            loop = future.get_loop()
            due = loop.time() + timeout
            self.due.append(due)
            if self.watchdog is None:
                self.watchdog = loop.call_at(due, self._watch, loop)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self.watchdog = None
        if self.lost is not None or not self.due:
            return
        due = self.due[0]
        if loop.time() < due:
            self.watchdog = loop.call_at(due, self._watch, loop)
            return
        if _readable(self.transport.get_extra_info("socket")):  # type: ignore[union-attr]
            # The reply is there, unread: this loop was busy, Redis was not late. The loop reads
            # sockets before it runs timers, so the next turn delivers it before this runs again.
            self.watchdog = loop.call_at(loop.time(), self._watch, loop)
            return
        # Redis hangs, or the network dropped without a reset: fail everything in flight now,
        # and drop the connection, whose late replies could no longer be matched.
        self._fail(TimeoutError(f"Redis did not answer within {self.timeout} s"))
        self.transport.abort()  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        pending = self.pending
        due = self.due
        reader.feed(data)
        while True:
            reply = reader.gets()
            if reply is False:
                return
            future = pending.popleft()
            if due:
                due.popleft()
            if not future.done():  # a caller that was cancelled still gets its reply consumed
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is None:
            self._fail(ConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))

    def _fail(self, error: Exception) -> None:
        self.lost = error
        self.due.clear()
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(error)


class _KeptFuture(asyncio.Future):  # type: ignore[type-arg]
    """The reply of an issued command: a waiter's cancellation does not cancel it (the waiter
    gets its CancelledError when the reply arrives), so the reply is there for a later await."""

    def cancel(self, msg: Any = None) -> bool:
        return False


class ScriptCall(NamedTuple):
    """A script's keys and arguments after its SHA or source, as EVALSHA and EVAL take them:
    how many (numkeys included) and their RESP bytes (`script_call`, or `packed`), the last ones
    possibly as pieces still to join (`Framed`: joined once, with the whole command)."""

    count: int
    body: bytes
    tail: tuple[bytes, ...] = ()


def script_call(keys: list[str], args: list[Any]) -> ScriptCall:
    """The ScriptCall of these keys and arguments."""
    return ScriptCall(len(keys) + len(args) + 1, _run([len(keys), *keys, *args]))


def _framed_call(keys: list[str], args: list[Any]) -> ScriptCall:
    """`script_call` when the last argument is a `Framed`: its pieces are the tail."""
    listed = [len(keys), *keys, *args]
    last: Framed = listed.pop()
    return ScriptCall(len(listed) + last.count, _run(listed), last.pieces)


class IssuedScript:
    """An EVALSHA already written to Redis. Awaiting it waits for its reply (running EVAL, once,
    when Redis did not know the script); it may be awaited again, after a cancelled wait too:
    the reply is not lost with the waiter."""

    __slots__ = ("_call", "_eval", "_future", "_redis", "_sha")

    def __init__(
        self, redis: PipelinedRedis, future: asyncio.Future[Any], sha: str, call: ScriptCall
    ) -> None:
        self._redis = redis
        self._future = future
        self._sha = sha
        self._call = call
        self._eval: asyncio.Future[Any] | None = None

    def __await__(self) -> Any:
        return self._reply().__await__()

    async def _reply(self) -> Any:
        if self._eval is None:
            reply = await self._future  # a _KeptFuture: no shield needed, no loop turn lost
            if not isinstance(reply, hiredis.ReplyError):
                return reply
            if not _unknown_script(reply):
                raise reply
            self._eval = asyncio.ensure_future(self._redis.eval_call(self._sha, self._call))
        return await asyncio.shield(self._eval)


class PipelinedRedis:
    def __init__(
        self, url: str, *, connect_timeout: float | None = None, timeout: float | None = None
    ) -> None:
        options = parse_url(url)
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.host: str = options.get("host") or "127.0.0.1"
        self.port: int = int(options.get("port") or 6379)
        self.db: int = int(options.get("db") or 0)
        self.username: str | None = options.get("username")
        self.password: str | None = options.get("password")
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None
        self._outgoing: list[bytes] = []
        self._flush_scheduled = False
        self._written_waiters: list[asyncio.Future[None]] = []
        self._held = 0  # commands in _outgoing that `hold` queued (they make no one wait)
        self._scripts: dict[str, bytes] = {}  # sha1 -> source, for NOSCRIPT
        self._shas: dict[str, str] = {}  # source -> sha1

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done():
                self._connecting = None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        timeout = self.timeout
        sock = await self._socket(loop)
        _, protocol = await loop.create_connection(lambda: _Protocol(timeout), sock=sock)
        setup: list[tuple[Any, ...]] = []
        if self.password:
            auth = (self.username, self.password) if self.username else (self.password,)
            setup.append(("AUTH", *auth))
        if self.db:
            setup.append(("SELECT", self.db))
        for command in setup:
            future = loop.create_future()
            protocol.expect(future)
            protocol.transport.write(_encode(command))  # type: ignore[union-attr]
            reply = await future
            if isinstance(reply, hiredis.ReplyError):
                protocol.transport.close()  # type: ignore[union-attr]
                raise ConnectionError(f"Redis refused {command[0]}: {reply}")
        self._outgoing.clear()
        self._held = 0
        self._protocol = protocol
        return protocol

    async def _socket(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        """A socket connected to Redis within `connect_timeout`. Time this loop spent elsewhere
        is not Redis's: when the deadline passes, the socket itself says whether it connected."""
        try:
            ipaddress.ip_address(self.host)
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except ValueError:  # a name: resolved off the loop
            infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connecting = asyncio.ensure_future(loop.sock_connect(sock, address))
            if self.connect_timeout is not None:
                await asyncio.wait({connecting}, timeout=self.connect_timeout)
                if not connecting.done():
                    connecting.cancel()
                    if not _connected(sock):
                        raise TimeoutError(
                            f"Redis at {self.host}:{self.port} did not accept a connection "
                            f"within {self.connect_timeout} s"
                        )
                    return sock
            await connecting
        except BaseException:
            sock.close()
            raise
        return sock

    def _flush(self) -> None:
        self._flush_scheduled = False
        self._held = 0
        protocol = self._protocol
        outgoing, self._outgoing = self._outgoing, []
        if protocol is not None and protocol.lost is None and outgoing:
            protocol.transport.write(b"".join(outgoing))  # type: ignore[union-attr]
        waiters, self._written_waiters = self._written_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _queue(
        self, protocol: _Protocol, command: bytes, *, kept: bool = False
    ) -> asyncio.Future[Any]:
        """Queue a command's bytes (encoded first: an argument `_encode` refuses must leave no
        reply expected)."""
        loop = asyncio.get_running_loop()
        future = _KeptFuture(loop=loop) if kept else loop.create_future()
        # Before ours joins either; held commands wait for a write, they do not delay one.
        held = self._held
        busy = len(protocol.pending) > held or len(self._outgoing) > held
        protocol.expect(future)
        self._outgoing.append(command)
        if not busy:
            # Nothing else in flight on this connection: a lone request. Send now rather than
            # after a turn of the event loop, which costs it tens of microseconds.
            self._flush()
        elif not self._flush_scheduled:
            # Others are waiting too (concurrent requests): write with every other command
            # queued in this event-loop turn, one send for all.
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    def hold(self, *args: Any) -> asyncio.Future[Any] | None:
        """Queue one command without writing it: it goes out in the same send as the next
        command written on this connection (the response cache's GET with the admission script,
        its SET with the settle script), and at the end of this event-loop turn at the latest.
        The future's result is the reply, a Redis error reply included. None while not
        connected."""
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            return None
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        command = _encode(args)
        protocol.expect(future)
        self._outgoing.append(command)
        self._held += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return future

    async def execute(self, *args: Any) -> Any:
        """One command; Redis error replies are raised as hiredis.ReplyError."""
        return await self._execute(_encode(args))

    async def _execute(self, command: bytes) -> Any:
        protocol = await self._connection()
        reply = await self._queue(protocol, command)
        if isinstance(reply, hiredis.ReplyError):
            raise reply
        return reply

    async def issue(self, *args: Any) -> asyncio.Future[Any] | None:
        """Queue one command and return once it has been written to the socket (with whatever
        else this loop turn queued), with the future of its reply, a Redis error reply included
        as the result; None while not connected. Cancelling a wait for that future does not
        cancel it: the reply stays for a later await."""
        return await self._issue(_encode(args))

    async def _issue(self, command: bytes) -> asyncio.Future[Any] | None:
        protocol = self._protocol
        if protocol is None or protocol.lost is not None:
            return None
        future = self._queue(protocol, command, kept=True)
        if self._outgoing:  # not written yet: wait for this turn's send
            waiter = asyncio.get_running_loop().create_future()
            self._written_waiters.append(waiter)
            await waiter
        return future

    async def evalsha_issue(
        self, sha: str, keys: list[str], args: list[Any], framed_last: bool = False
    ) -> IssuedScript | None:
        """EVALSHA, returning once it is written; awaiting the returned IssuedScript waits for
        the reply (EVAL on NOSCRIPT). None while not connected: use `evalsha`. `framed_last`:
        the last argument is a `Framed`."""
        if not framed_last:
            return await self.call_issue(sha, script_call(keys, args))
        call = _framed_call(keys, args)
        future = await self._issue(_framed_command(b"EVALSHA", sha, call))
        if future is None:
            return None
        return IssuedScript(self, future, sha, call)

    async def call_issue(self, sha: str, call: ScriptCall) -> IssuedScript | None:
        """`evalsha_issue` of a ScriptCall."""
        future = await self._issue(_script_command(b"EVALSHA", sha, call))
        if future is None:
            return None
        return IssuedScript(self, future, sha, call)

    def script(self, source: str) -> str:
        """Register a Lua script (once); returns its SHA1 for `evalsha`."""
        sha = self._shas.get(source)
        if sha is None:
            sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
            self._scripts[sha] = source.encode()
            self._shas[source] = sha
        return sha

    async def evalsha(self, sha: str, keys: list[str], args: list[Any]) -> Any:
        """EVALSHA, loading the script with EVAL when Redis does not know it (NOSCRIPT)."""
        return await self.call(sha, script_call(keys, args))

    async def call(self, sha: str, call: ScriptCall) -> Any:
        """`evalsha` of a ScriptCall."""
        try:
            return await self._execute(_script_command(b"EVALSHA", sha, call))
        except hiredis.ReplyError as exc:
            if not _unknown_script(exc):
                raise
        return await self.eval_call(sha, call)

    async def eval_call(self, sha: str, call: ScriptCall) -> Any:
        """EVAL of a registered script (which loads it into Redis)."""
        command = _framed_command if call.tail else _script_command
        return await self._execute(command(b"EVAL", self._scripts[sha], call))


def _script_command(name: bytes, script: str | bytes, call: ScriptCall) -> bytes:
    count = call.count + 2
    head = _HEADS[count] if count < 256 else b"*%d\r\n" % count
    return _join(
        (head, _piece_get(name) or _piece(name), _piece_get(script) or _piece(script), call.body)
    )


def _framed_command(name: bytes, script: str | bytes, call: ScriptCall) -> bytes:
    """`_script_command` of a call with a tail (`_framed_call`), joined once: a large value in
    it (a response cache entry) is copied once. Apart, so that the other calls test nothing."""
    count = call.count + 2
    head = _HEADS[count] if count < 256 else b"*%d\r\n" % count
    name_piece = _piece_get(name) or _piece(name)
    script_piece = _piece_get(script) or _piece(script)
    return _join((head, name_piece, script_piece, call.body, *call.tail))


def _unknown_script(error: hiredis.ReplyError) -> bool:
    return str(error).startswith("NOSCRIPT")


def _readable(sock: socket.socket | None) -> bool:
    return sock is not None and bool(select.select([sock], [], [], 0)[0])


def _connected(sock: socket.socket) -> bool:
    """A non-blocking connect that completed (raising if it failed)."""
    if not select.select([], [sock], [], 0)[1]:
        return False
    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if error:
        raise OSError(error, os.strerror(error))
    return True
