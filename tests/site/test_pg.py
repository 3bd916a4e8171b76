"""ogem_site/pg.py: one statement from the event loop on PostgreSQL, committed when it returns,
on a connection the loop keeps; a connection broken while idle is replaced and the statement
still lands; a cancelled caller does not cut its statement off."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from django.db import connection

from ogem_site.pg import _here, pg_connections_close, pg_execute

pytestmark = pytest.mark.django_db(transaction=True)

INSERT = (
    "INSERT INTO gateway_storedresponse (response_id, model, status, background, deployment_id,"
    " previous_response_id, created_at, updated_at, input_items, history, response)"
    " VALUES (%s, 'm', 'completed', false, '', '', now(), now(), '[]', '[]', '{}')"
    " ON CONFLICT (response_id) DO NOTHING"
)


@pytest.fixture(autouse=True)
def _postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")


def _stored(*ids: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT response_id FROM gateway_storedresponse WHERE response_id = ANY(%s)"
            " ORDER BY response_id",
            [list(ids)],
        )
        return [row[0] for row in cursor.fetchall()]


def test_a_statement_is_committed_and_its_connection_kept() -> None:
    async def run() -> tuple[int, int]:
        await pg_execute(INSERT, ("resp_a",))
        first = _here().idle[0].info.backend_pid
        await pg_execute(INSERT, ("resp_b",))
        await pg_execute(INSERT, ("resp_b",))  # sent again: nothing more
        return first, _here().idle[0].info.backend_pid

    try:
        first, second = asyncio.run(run())
    finally:
        pg_connections_close()
    assert first == second
    assert _stored("resp_a", "resp_b") == ["resp_a", "resp_b"]


def test_a_connection_broken_while_idle_is_replaced() -> None:
    async def run() -> None:
        await pg_execute(INSERT, ("resp_c",))
        pid = _here().idle[0].info.backend_pid
        with psycopg.connect(**_admin()) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        await asyncio.sleep(0.2)
        await pg_execute(INSERT, ("resp_d",))
        assert _here().idle[0].info.backend_pid != pid

    try:
        asyncio.run(run())
    finally:
        pg_connections_close()
    assert _stored("resp_c", "resp_d") == ["resp_c", "resp_d"]


def test_a_cancelled_caller_does_not_cut_its_statement_off() -> None:
    async def run() -> int:
        caller = asyncio.ensure_future(pg_execute(INSERT, ("resp_e",)))
        await asyncio.sleep(0)  # the statement is under way
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        for _ in range(100):
            if _here().idle:
                break
            await asyncio.sleep(0.02)
        return len(_here().idle)

    try:
        idle = asyncio.run(run())
    finally:
        pg_connections_close()
    assert idle == 1  # done, and its connection back
    assert _stored("resp_e") == ["resp_e"]


def _admin() -> dict:
    params = connection.get_connection_params()
    return {k: v for k, v in params.items() if k not in ("cursor_factory", "context")}


def test_the_connections_of_an_ended_loop_are_closed_by_the_next_loop() -> None:
    async def first() -> object:
        await pg_execute(INSERT, ("resp_f",))
        return _here().idle[0]

    async def second() -> None:
        await pg_execute(INSERT, ("resp_g",))

    try:
        kept = asyncio.run(first())
        asyncio.run(second())
    finally:
        pg_connections_close()
    assert kept.closed  # type: ignore[attr-defined]
    assert _stored("resp_f", "resp_g") == ["resp_f", "resp_g"]
