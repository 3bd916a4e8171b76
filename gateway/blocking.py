"""Blocking work (the ORM, file storage) run from the event loop in a worker thread of its own: what
the /v1 object APIs and the services they call share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

T = TypeVar("T")


async def blocking_run(
    function: Callable[..., T],
    /,
    *,
    on_error: Callable[[Exception], None] | None = None,
    **kwargs: Any,
) -> T:
    """Run blocking work (the ORM, file storage) in a worker thread of its own, which hands its
    database connection back. `on_error` may turn an exception into another (by raising)."""

    def run() -> T:
        from django.db import close_old_connections, connection

        close_old_connections()
        try:
            return function(**kwargs)
        except Exception as exc:
            if on_error is not None:
                on_error(exc)
            raise
        finally:
            connection.close()

    return await sync_to_async(run, thread_sensitive=False)()
