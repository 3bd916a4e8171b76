"""The usage spool: settles that could not reach Redis, kept on disk until it answers again.

While Redis is away (`ogem_site.redis.redis_outage`), or when a settle's reply did not come in
time, the settle script's keys and arguments (the request's usage event and budget spend among
them) are appended as one line to this worker process's spool file under
``OGEM_USAGE_SPOOL_DIR``: one ``write()`` on the event loop, a few microseconds, after which the
record outlives the process (a SIGKILL, an OOM kill); the file is fsynced within a second, as
Redis's own ``appendfsync everysec`` would. A worker holds an ``flock`` on its file while it
lives.

When Redis answers again, the worker replays its spool, and every spool file no live process holds
(a dead worker's), through the settle script in a marked mode (gateway/limits.py): a record is
applied once however often it is replayed (a replay cut short is replayed again), and its event
reaches the usage stream, whose drain records it once (idempotent on the request id). The Celery
beat task `gateway.tasks.usage_spool_replay` replays the files of workers that died on its host.
Why a file rather than the database: it needs neither Redis nor PostgreSQL to be up (an outage of
one is often a network's, which takes both), and it keeps nothing in memory to lose meanwhile.

Usage events written later (`usage_event_later`): a free response cache hit admitted on its
worker's lease of request allowance (gateway/governance.py) makes no Redis command of its own;
its event waits in this process, at most ``LATER_DELAY_SECONDS`` or until ``LATER_BATCH`` are
waiting, then goes to the usage stream with them in one script (an XADD each). What Redis did not
take (unreachable, an error reply, a batch cut short) goes to the spool like any settle; what is
still waiting when the process exits is written then (`usage_events_later_exit`), or spooled.
An event written twice (a reply lost after Redis took it, then spooled) is recorded once: the
drain's insert is idempotent on the request id (billing/services.py).
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import redis
from django.conf import settings

from billing.usage import usage_dead_stream, usage_stream_key
from gateway.accounting import usage_buffered
from gateway.limits import outage_limiter, redis_settle_sync, settle_marked, settle_script
from ogem_site.hot_settings import hot_settings
from ogem_site.redis import (
    redis_client,
    redis_client_sync,
    redis_failed,
    redis_lean,
    redis_outage,
    redis_outage_watch,
    redis_recovery_register,
    redis_unreachable,
)
from ogem_site.redis_pipeline import encoded

logger = logging.getLogger(__name__)

_SYNC_DELAY_SECONDS = 1.0


class _Spool:
    lock = threading.Lock()
    fd = -1
    pid = 0
    path = ""
    sync_scheduled = False


def _directory() -> Path:
    return Path(settings.OGEM_USAGE_SPOOL_DIR)


def _open() -> int:
    """This process's spool file (under _Spool.lock), created and locked on first use."""
    directory = _directory()
    if _Spool.fd >= 0 and _Spool.pid == os.getpid() and Path(_Spool.path).parent == directory:
        return _Spool.fd
    _release()
    directory.mkdir(parents=True, exist_ok=True)
    name = f"usage-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.spool"
    path = directory / name
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)  # this process's while it lives: replays leave it alone
    _Spool.fd, _Spool.pid, _Spool.path = fd, os.getpid(), str(path)
    return fd


def usage_spool_append(keys: list[str], args: list[Any]) -> None:
    """Keep a settle for Redis (`settle_script`'s keys and arguments): in the spool file, or,
    should the disk refuse it, its event in the in-process buffer (written into RequestLog
    directly; its budget spend then waits for the next period's persisted spend)."""
    keys, args = settle_marked(keys, args)
    record = orjson.dumps(
        {"k": keys, "a": [a.decode() if isinstance(a, bytes) else a for a in args]}
    )
    try:
        with _Spool.lock:
            fd = _open()
            line = record + b"\n"
            if os.write(fd, line) != len(line):
                raise OSError("short write to the usage spool")
    except OSError:
        logger.exception("usage spool unavailable; request %s's usage kept in memory", args[0])
        if args[3]:
            usage_buffered(args[3].encode() if isinstance(args[3], str) else args[3])
        return
    redis_outage.spooled += 1
    _sync_schedule()


def _sync_schedule() -> None:
    if _Spool.sync_scheduled:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        _sync()
        return
    _Spool.sync_scheduled = True
    loop.call_later(_SYNC_DELAY_SECONDS, lambda: loop.run_in_executor(None, _sync))


def _sync() -> None:
    with _Spool.lock:
        _Spool.sync_scheduled = False
        fd = _Spool.fd if _Spool.pid == os.getpid() else -1
        if fd >= 0:
            os.fdatasync(fd)


def _release() -> None:
    """Close this process's spool file (under _Spool.lock), so a replay can take it; the next
    spooled settle opens a new one."""
    if _Spool.fd >= 0 and _Spool.pid == os.getpid():
        os.fdatasync(_Spool.fd)
        os.close(_Spool.fd)  # and with it the flock
    _Spool.fd, _Spool.path = -1, ""


def usage_spool_replay() -> int:
    """Replay every spool file no live process holds (this one's own included); returns how
    many records were replayed. A Redis failure midway stops it; what was not replayed stays."""
    directory = _directory()
    if not directory.is_dir():
        return 0
    with _Spool.lock:
        _release()
    replayed = 0
    for path in sorted(directory.glob("usage-*.spool")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # replayed by another process meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live worker's
            if os.fstat(fd).st_nlink == 0:
                continue  # replayed and removed by another process before we locked it
            with os.fdopen(os.dup(fd), "rb") as handle:
                replayed += _replay(handle, source=path.name)
            path.unlink()
        finally:
            os.close(fd)
    if replayed:
        logger.warning("usage spool: %d settles replayed into Redis", replayed)
    return replayed


def _replay(lines: Iterable[bytes], *, source: str) -> int:
    # Line by line: a spool grown over a long outage is never held in memory whole.
    client = redis_client_sync()
    count = 0
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip(b"\r\n")
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
            keys, args = record["k"], record["a"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            # A torn last line (the machine died mid-write) or worse: kept for an operator.
            _dead(client, line, f"unreadable spool record: {exc}", f"{source}:{number}")
            continue
        try:
            redis_settle_sync(client, keys, args)
        except redis.exceptions.ResponseError as exc:
            # Redis answered, and refused it (it would refuse it again): kept for an operator.
            _dead(client, line, f"refused by Redis: {exc}", f"{source}:{number}")
            continue
        count += 1
    return count


def _dead(client: Any, line: bytes, error: str, where: str) -> None:
    client.xadd(usage_dead_stream(), {"e": line, "error": error[:500], "id": where})
    logger.error("usage spool: record %s (%s) moved to %s", where, error, usage_dead_stream())


async def _recovered() -> None:
    # Counts kept while Redis was away are dropped: Redis has every worker's again.
    outage_limiter.reset()
    await asyncio.to_thread(usage_spool_replay)


redis_recovery_register(_recovered)


# ---- Usage events written later -----------------------------------------------------------------

LATER_DELAY_SECONDS = 0.02
LATER_BATCH = 64

_EVENTS_LUA = """
-- The usage stream; its length bound (0: none), then the events.
local bound = ARGV[1]
for i = 2, #ARGV do
  if bound == '0' then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  else
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', bound, '*', 'e', ARGV[i])
  end
end
return #ARGV - 1
"""


class _Later:
    events: list[tuple[str, bytes]] = []  # (request id, usage event), not yet sent
    writing: list[list[tuple[str, bytes]]] = []  # batches sent, Redis's replies awaited
    timer: asyncio.TimerHandle | None = None
    loop: asyncio.AbstractEventLoop | None = None
    tasks: set[asyncio.Task[None]] = set()


def _later_after_fork() -> None:
    # The parent writes its own events; a forked worker starts with none.
    _Later.events, _Later.writing, _Later.timer, _Later.loop = [], [], None, None
    _Later.tasks = set()


os.register_at_fork(after_in_child=_later_after_fork)


def usage_event_later(request_id: str, event: bytes) -> None:
    """Send a usage event to the usage stream soon, with others (on the running event loop)."""
    events = _Later.events
    events.append((request_id, event))
    if len(events) >= LATER_BATCH:
        _later_send()
        return
    loop = asyncio.get_running_loop()
    if _Later.timer is None or _Later.loop is not loop:
        _Later.loop = loop
        _Later.timer = loop.call_later(LATER_DELAY_SECONDS, _later_send)


def _later_send() -> None:
    timer = _Later.timer
    if timer is not None:
        timer.cancel()
        _Later.timer = None
    events = _Later.events
    _Later.events = []
    if not events:
        return
    _Later.writing.append(events)
    task = asyncio.get_running_loop().create_task(_later_write(events))
    _Later.tasks.add(task)
    task.add_done_callback(_Later.tasks.discard)


def _xadd() -> tuple[Any, ...]:
    """An XADD of an event to the usage stream, less the event (the settle script's)."""
    length = hot_settings().OGEM_USAGE_STREAM_MAXLEN
    if not length:
        return ("XADD", usage_stream_key(), "*", "e")
    return ("XADD", usage_stream_key(), "MAXLEN", "~", length, "*", "e")


async def _later_write(events: list[tuple[str, bytes]]) -> None:
    failed = events
    try:
        if redis_outage.down:
            redis_outage_watch()
            return
        lean = redis_lean()
        if lean is not None:
            # One script for the batch: one command to encode and one reply. A failure spools it
            # whole (an event it wrote already is recorded once: the drain is idempotent).
            length = hot_settings().OGEM_USAGE_STREAM_MAXLEN
            await lean.evalsha(
                lean.script(_EVENTS_LUA),
                [usage_stream_key()],
                [length, *(encoded(event) for _, event in events)],
            )
            failed = []
            return
        pipe = redis_client().pipeline(transaction=False)
        xadd = _xadd()
        for _, event in events:
            pipe.execute_command(*xadd, event)
        replies = await pipe.execute(raise_on_error=False)
        failed = []
        for item, reply in zip(events, replies, strict=True):
            if isinstance(reply, Exception):
                _later_failed(reply, item[0])
                failed.append(item)
    except Exception as exc:
        _later_failed(exc, events[0][0])
    finally:
        _Later.writing.remove(events)
        _later_spool(failed)


def _later_failed(exc: Exception, request_id: str) -> None:
    if redis_unreachable(exc):
        redis_failed(exc, what="usage")  # logged once for the whole outage
    else:
        logger.error("Redis refused request %s's usage event: %s", request_id, exc)


def _later_spool(events: list[tuple[str, bytes]]) -> None:
    for request_id, event in events:
        usage_spool_append(*settle_script([], request_id=request_id, bucket=0, event=event))


def usage_events_later_exit() -> None:
    """At exit: write the events still waiting (`usage_event_later`), and those of a batch whose
    replies have not come (again, then), with the synchronous client, or spool them."""
    events = _Later.events
    _Later.events = []
    events = [item for batch in _Later.writing for item in batch] + events
    if not events:
        return
    if redis_outage.down:
        _later_spool(events)
        return
    try:
        pipe = redis_client_sync().pipeline(transaction=False)
        xadd = _xadd()
        for _, event in events:
            pipe.execute_command(*xadd, event)
        replies = pipe.execute(raise_on_error=False)
    except Exception as exc:
        _later_failed(exc, events[0][0])
        _later_spool(events)
        return
    _later_spool(
        [item for item, reply in zip(events, replies, strict=True) if isinstance(reply, Exception)]
    )


atexit.register(usage_events_later_exit)
