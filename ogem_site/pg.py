"""One SQL statement from the event loop, on PostgreSQL: the /v1 writes that must land before
the answer goes out (a stored Response, which a follow-up on any worker reads at once), and the
follow-up's read of it.

The ORM in a worker thread costs a thread hand-off each way, a checkout from Django's pool and
the ORM's compilation of the query, about 0.7 ms of CPU per write. Here a statement is sent on an
asyncio psycopg connection of this event loop, in autocommit: one round trip, no transaction
around it, nothing compiled (with OGEM_DB_ASYNC_COMMIT, no wait for the WAL flush either:
docs/deploy.md). Each event loop keeps its own connections (they belong to the loop that opened
them: a test server's thread, async_to_sync), at most the Django pool's `max_size` of them in
use at once; the others wait. A connection found broken (the server restarted, an idle timeout)
is dropped and the statement sent once more on a new one, so statements given here must be
idempotent (an INSERT of a new unique id with ON CONFLICT DO NOTHING).

PostgreSQL only (`pg_enabled`); the embedded SQLite keeps the ORM.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import orjson
import psycopg
from django.conf import settings
from django.db import connections
from django.db.utils import OperationalError
from psycopg.types.json import set_json_loads

logger = logging.getLogger(__name__)

POOL_MAX_DEFAULT = 10


class _Connections:
    """An event loop's idle connections, and the bound on those in use."""

    __slots__ = ("idle", "slots")

    def __init__(self, limit: int) -> None:
        self.idle: list[psycopg.AsyncConnection[Any]] = []
        self.slots = asyncio.Semaphore(limit)


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Connections] = (
    weakref.WeakKeyDictionary()
)
_last: tuple[asyncio.AbstractEventLoop, _Connections] | None = None


def pg_enabled() -> bool:
    """Whether the default database is PostgreSQL (the statements here are its SQL)."""
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def _params() -> dict[str, Any]:
    """psycopg's connection arguments for the default database, as Django builds them (read at
    each connect: tests switch to the test database after import)."""
    params = connections["default"].get_connection_params()
    for name in ("cursor_factory", "context"):  # Django's sync cursor, its adapters' template
        params.pop(name, None)
    return params


def _here() -> _Connections:
    global _last
    loop = asyncio.get_running_loop()
    last = _last
    if last is not None and last[0] is loop:
        return last[1]
    held = _by_loop.get(loop)
    if held is None:
        # Connections of loops that ended (a finished asyncio.run) are closed here, not left
        # to the garbage collector.
        for closed in [other for other in _by_loop if other.is_closed()]:
            _finish(_by_loop.pop(closed))
        pool = settings.DATABASES["default"].get("OPTIONS", {}).get("pool") or {}
        held = _by_loop[loop] = _Connections(int(pool.get("max_size") or POOL_MAX_DEFAULT))
    _last = (loop, held)
    return held


async def _connect() -> psycopg.AsyncConnection[Any]:
    conn = await psycopg.AsyncConnection.connect(**_params(), autocommit=True)
    set_json_loads(orjson.loads, conn)
    if settings.OGEM_DB_ASYNC_COMMIT:
        await conn.execute("SET synchronous_commit = off")  # this session's commits only
    return conn


async def pg_execute(sql: str, params: tuple[Any, ...]) -> None:
    """Run one idempotent statement, committed when this returns. A database that cannot be
    reached raises Django's OperationalError (the /v1 error handler's 503). A caller cancelled
    meanwhile (its client gone) does not cut the statement off: it still lands, and its
    connection stays usable."""
    task = asyncio.get_running_loop().create_task(_execute(sql, params))
    _running.add(task)  # the loop holds tasks weakly
    task.add_done_callback(_running.discard)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        task.add_done_callback(_orphan_failed)
        raise


_running: set[asyncio.Task[Any]] = set()


def _orphan_failed(task: asyncio.Task[Any]) -> None:
    """A failure no caller hears of any more is said here."""
    if not task.cancelled() and task.exception() is not None:
        logger.warning("a statement of a cancelled request failed: %r", task.exception())


async def pg_fetchone(sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """One query's first row (jsonb columns decoded by orjson), on a connection of this loop."""
    return await _execute(sql, params)


async def _execute(sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
    held = _here()
    row = None
    async with held.slots:
        conn = held.idle.pop() if held.idle else None
        try:
            if conn is not None:
                try:
                    cursor = await conn.execute(sql, params)
                except psycopg.OperationalError:
                    await conn.close()
                    conn = None  # broken while idle: once more, on a new connection
            if conn is None:
                conn = await _connect()
                cursor = await conn.execute(sql, params)
            if cursor.description is not None:
                row = await cursor.fetchone()
        except psycopg.OperationalError as exc:
            if conn is not None:
                await conn.close()
            raise OperationalError(str(exc)) from exc
        except BaseException:
            # A statement refused (a constraint) leaves an autocommit connection usable; a
            # cancellation mid-statement does not.
            if conn is not None and not conn.closed:
                if conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    held.idle.append(conn)
                else:
                    await conn.close()
            raise
        held.idle.append(conn)
    return row


def pg_connections_close() -> None:
    """Close every event loop's idle connections, from any thread (a test server stopped before
    its database is dropped)."""
    global _last
    _last = None
    for held in list(_by_loop.values()):
        _finish(held)
    _by_loop.clear()


def _finish(held: _Connections) -> None:
    while held.idle:
        held.idle.pop().pgconn.finish()  # the loop may be gone: no await
