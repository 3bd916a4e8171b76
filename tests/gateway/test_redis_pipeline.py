"""The pipelined Redis connection of the limits scripts, against a real Redis (REDIS_URL)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable
from typing import Any

import hiredis
import pytest

from ogem_site.redis import redis_lean
from ogem_site.redis_pipeline import PipelinedRedis, framed

REDIS_URL = os.environ.get("REDIS_URL", "")

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set")


async def test_concurrent_commands_each_get_their_own_reply() -> None:
    client = PipelinedRedis(REDIS_URL)
    replies = await asyncio.gather(*(client.execute("ECHO", f"m{i}") for i in range(500)))
    assert replies == [f"m{i}".encode() for i in range(500)]


async def test_commands_run_on_the_urls_database() -> None:
    key = f"ogem:test-pipeline:{uuid.uuid4().hex}"
    client = PipelinedRedis(REDIS_URL)
    try:
        assert await client.execute("SET", key, 42) == b"OK"
        import redis

        sync = redis.Redis.from_url(REDIS_URL)
        assert sync.get(key) == b"42"
        sync.close()
    finally:
        await client.execute("DEL", key)


async def test_an_unknown_script_is_loaded_on_noscript() -> None:
    client = PipelinedRedis(REDIS_URL)
    # A source no Redis has seen yet, so EVALSHA must fail with NOSCRIPT first.
    source = f"-- {uuid.uuid4().hex}\nreturn {{tonumber(ARGV[1]) + 1, KEYS[1]}}"
    sha = client.script(source)
    assert await client.evalsha(sha, ["k1"], [41]) == [42, b"k1"]
    assert await client.execute("EVALSHA", sha, 1, "k2", 1) == [2, b"k2"]


async def test_error_replies_raise_and_the_connection_stays_in_step() -> None:
    client = PipelinedRedis(REDIS_URL)
    with pytest.raises(hiredis.ReplyError):
        await client.execute("NOSUCHCOMMAND")
    assert await client.execute("ECHO", "after") == b"after"


async def test_a_cancelled_caller_does_not_shift_the_replies() -> None:
    client = PipelinedRedis(REDIS_URL)
    await client.execute("PING")
    cancelled = asyncio.ensure_future(client.execute("ECHO", "lost"))
    await asyncio.sleep(0)  # queued and about to be written
    cancelled.cancel()
    assert await client.execute("ECHO", "mine") == b"mine"
    assert cancelled.cancelled()


async def test_a_lost_connection_fails_in_flight_calls_and_reconnects() -> None:
    client = PipelinedRedis(REDIS_URL)
    first = await client.execute("CLIENT", "ID")
    with pytest.raises(ConnectionError):
        # Redis closes the connection without replying when a client kills itself.
        await client.execute("CLIENT", "KILL", "ID", first, "SKIPME", "no")
        await client.execute("PING")
    second = await client.execute("CLIENT", "ID")
    assert second != first


async def test_an_unreachable_server_raises_oserror() -> None:
    client = PipelinedRedis("redis://127.0.0.1:1/0")
    with pytest.raises(OSError):
        await client.execute("PING")


async def test_one_client_per_loop_and_url(settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = REDIS_URL
    lean = redis_lean()
    assert lean is not None and lean is redis_lean()
    assert (lean.connect_timeout, lean.timeout) == (0.25, 0.5)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    assert redis_lean() is not lean
    for other in (
        "unix:///tmp/redis.sock",
        "rediss://127.0.0.1:6380/0",  # TLS stays with redis-py
        "redis+cluster://127.0.0.1:7000",
        "redis+sentinel://127.0.0.1:26379/mymaster",
    ):
        settings.REDIS_URL = other
        assert redis_lean() is None


async def test_an_issued_command_is_in_redis_before_its_reply_is_awaited() -> None:
    key = f"ogem:test-pipeline:{uuid.uuid4().hex}"
    client = PipelinedRedis(REDIS_URL)
    assert await client.issue("SET", key, 1) is None  # not connected: the caller uses execute
    await client.execute("PING")
    queued = asyncio.ensure_future(client.execute("SET", key, "queued"))
    await asyncio.sleep(0)  # queued, its write scheduled for the end of this loop turn
    issued = await client.issue("APPEND", key, "+issued")  # returns once both are written
    assert issued is not None
    import redis

    sync = redis.Redis.from_url(REDIS_URL)
    try:
        # Both were written, in order, when `issue` returned: Redis has them although no reply
        # has been awaited.
        for _ in range(100):
            if sync.get(key) == b"queued+issued":
                break
            time.sleep(0.01)
        assert sync.get(key) == b"queued+issued"
        assert await queued == b"OK"
        assert await issued == len(b"queued+issued")
    finally:
        sync.delete(key)
        sync.close()


async def test_commands_issued_in_one_loop_turn_share_one_send() -> None:
    client = PipelinedRedis(REDIS_URL)
    await client.execute("PING")
    transport = client._protocol.transport  # type: ignore[union-attr]
    sends: list[int] = []
    write = transport.write

    def counted(data: bytes) -> None:
        sends.append(len(data))
        write(data)

    transport.write = counted
    try:
        issued = await asyncio.gather(*(client.issue("ECHO", str(i)) for i in range(20)))
    finally:
        transport.write = write
    # The first went at once (nothing else was in flight); the nineteen queued behind it in the
    # same turn went together: two system calls for twenty settles finishing together.
    assert len(sends) == 2
    assert [await reply for reply in issued] == [str(i).encode() for i in range(20)]


async def test_a_held_command_goes_out_with_the_next_one_or_at_the_end_of_the_turn() -> None:
    client = PipelinedRedis(REDIS_URL)
    assert client.hold("PING") is None  # not connected: the caller uses execute
    await client.execute("PING")
    transport = client._protocol.transport  # type: ignore[union-attr]
    sends: list[bytes] = []
    write = transport.write

    def counted(data: bytes) -> None:
        sends.append(data)
        write(data)

    transport.write = counted
    try:
        held = client.hold("ECHO", "held")
        assert held is not None and sends == []  # queued, not written
        # The next command is written at once, as a lone one would be, and takes it along.
        issued = await client.issue("ECHO", "next")
        assert len(sends) == 1 and b"held" in sends[0] and b"next" in sends[0]
        assert (await held, await issued) == (b"held", b"next")
        # Alone, it goes out at the end of this loop turn.
        alone = client.hold("ECHO", "alone")
        assert await asyncio.wait_for(alone, 5) == b"alone"  # type: ignore[arg-type]
        assert len(sends) == 2
        # A Redis error reply is its result, not an exception.
        failing = client.hold("NOSUCHCOMMAND")
        assert isinstance(await failing, hiredis.ReplyError)  # type: ignore[misc]
    finally:
        transport.write = write


async def test_an_issued_unknown_script_is_loaded_on_noscript() -> None:
    client = PipelinedRedis(REDIS_URL)
    await client.execute("PING")
    source = f"-- {uuid.uuid4().hex}\nreturn tonumber(ARGV[1]) * 2"
    reply = await client.evalsha_issue(client.script(source), [], [21])
    assert reply is not None
    assert await reply == 42
    assert await reply == 42  # awaited again: the same reply, no second EVAL


async def test_a_scripts_framed_last_arguments_reach_it_as_sent() -> None:
    """A script's last arguments may come framed (`framed`: a response cache entry and its
    TTL): the script gets them as it would plain, a value of any length, on EVALSHA and on the
    EVAL run after NOSCRIPT alike."""
    client = PipelinedRedis(REDIS_URL)
    await client.execute("PING")
    last = "ARGV[#ARGV - 1], ARGV[#ARGV]"
    source = f"-- {uuid.uuid4().hex}\nreturn {{#KEYS, KEYS[1], ARGV[1], {last}}}"
    sha = client.script(source)
    for value in (b"", b"entry\r\n", b"e" * 5000):
        for _ in range(2):  # NOSCRIPT first (EVAL), then EVALSHA
            reply = await client.evalsha_issue(sha, ["k"], ["a", framed(value, 60_000)], True)
            assert reply is not None
            assert await reply == [1, b"k", b"a", value, b"60000"]


async def test_an_issued_script_keeps_its_reply_for_a_wait_after_a_cancelled_one() -> None:
    client = PipelinedRedis(REDIS_URL)
    await client.execute("PING")
    key = f"ogem:test:{uuid.uuid4().hex}"
    source = "return redis.call('INCR', KEYS[1])"
    await client.evalsha(client.script(source), [key], [])  # known to Redis
    reply = await client.evalsha_issue(client.script(source), [key], [])
    assert reply is not None
    waiter = asyncio.ensure_future(_await(reply))
    await asyncio.sleep(0)
    waiter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await waiter
    assert await reply == 2  # the script ran once, and its reply was kept
    assert await client.execute("GET", key) == b"2"
    await client.execute("DEL", key)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


# ---- timeouts ------------------------------------------------------------------------------------


async def _black_hole() -> tuple[asyncio.base_events.Server, int]:
    """A TCP server that accepts connections and never answers."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client goes away

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_server_that_never_answers_fails_every_command_in_flight_at_the_timeout() -> None:
    server, port = await _black_hole()
    try:
        client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", connect_timeout=0.25, timeout=1.0)
        started = time.perf_counter()
        replies = await asyncio.wait_for(
            asyncio.gather(*(client.execute("PING") for _ in range(5)), return_exceptions=True),
            30,  # a hang fails here, not at the suite's timeout
        )
        took = time.perf_counter() - started
        assert all(isinstance(reply, TimeoutError) for reply in replies), replies
        # Never before the timeout; then the five fail together, not one timeout after another
        # (5 s): a busy machine's delay stays well below the 4 s between the two.
        assert 1.0 <= took < 5 * 1.0
        assert "did not answer within 1.0 s" in str(replies[0])
    finally:
        server.close()


async def test_a_database_number_the_server_never_confirms_times_out_too() -> None:
    server, port = await _black_hole()
    try:
        client = PipelinedRedis(f"redis://127.0.0.1:{port}/5", connect_timeout=0.25, timeout=0.3)
        with pytest.raises(TimeoutError):
            await client.execute("PING")  # SELECT 5 is never answered
    finally:
        server.close()


async def test_a_connection_that_is_never_accepted_fails_at_the_connect_timeout() -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    queued = socket.create_connection(("127.0.0.1", port))  # the accept queue is now full
    try:
        client = PipelinedRedis(f"redis://127.0.0.1:{port}/0", connect_timeout=0.25, timeout=30)
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match=r"did not accept a connection within 0\.25 s"):
            await client.execute("PING")
        assert time.perf_counter() - started < 5  # the connect timeout, not the 30 s one
    finally:
        queued.close()
        listener.close()


async def test_a_reply_that_came_while_the_loop_was_busy_is_not_a_timeout() -> None:
    # The loop blocked (a burst of requests) past the timeout; Redis answered long before.
    client = PipelinedRedis(REDIS_URL, connect_timeout=0.1, timeout=0.1)
    await client.execute("PING")
    pending = asyncio.ensure_future(client.execute("ECHO", "late"))
    await asyncio.sleep(0)  # written
    time.sleep(0.3)  # this loop does nothing else meanwhile
    assert await pending == b"late"


async def test_a_connection_made_while_the_loop_was_busy_is_not_a_timeout() -> None:
    client = PipelinedRedis(REDIS_URL, connect_timeout=0.1, timeout=1)
    pending = asyncio.ensure_future(client.execute("PING"))
    await asyncio.sleep(0)  # connecting
    time.sleep(0.3)
    assert await pending == b"PONG"


async def test_every_argument_type_reaches_redis_as_sent_the_first_time_and_the_next() -> None:
    """Commands are encoded from pieces kept by value (`_encode`): what Redis receives is the
    argument itself, for each type, whether its piece was made now or kept from before, a long
    one (never kept) included; a value Redis has no form for is a TypeError."""
    client = PipelinedRedis(REDIS_URL)
    values: list[Any] = ["plain", "ünïcode ✓", "", 0, -17, 10**20, 2.5, b"\x00\r\n", b"x" * 5000]
    values.append(memoryview(b"a view"))
    for _ in range(2):
        for value in values:
            echoed = await client.execute("ECHO", value)
            expected = bytes(value) if isinstance(value, memoryview) else value
            if isinstance(expected, str):
                expected = expected.encode()
            elif not isinstance(expected, bytes):
                expected = repr(expected).encode() if isinstance(value, float) else b"%d" % value
            assert echoed == expected
    key = f"ogem:test-pipeline:{uuid.uuid4().hex}"
    try:
        assert await client.execute("SET", key, b"v" * 300, "PX", 60_000) == b"OK"
        assert await client.execute("GET", key) == b"v" * 300
        assert 0 < await client.execute("PTTL", key) <= 60_000
    finally:
        await client.execute("DEL", key)
    with pytest.raises(TypeError):
        await client.execute("ECHO", object())
    with pytest.raises(TypeError):
        await client.execute("ECHO", None)
    assert await client.execute("ECHO", "still in step") == b"still in step"
