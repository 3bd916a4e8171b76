from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from django.conf import settings

from billing.usage import usage_buffer_take
from gateway.governance import governance_snapshot_flush
from gateway.limits import local_limiter
from ogem_site.redis import redis_client_sync, redis_clients_forget
from tests.live import LiveServer

REAL_REDIS_URL = os.environ.get("REDIS_URL", "")


def _fresh_async_client() -> None:
    # redis.asyncio connections belong to the event loop that opened them; each test has its own.
    redis_clients_forget()


@pytest.fixture
def usage_stream(settings) -> str:  # type: ignore[no-untyped-def]
    """The key of a usage stream of this test only, removed afterwards."""
    from billing.usage import usage_stream_key

    settings.OGEM_USAGE_STREAM = f"test-usage:{uuid.uuid4().hex}"
    return usage_stream_key()


@pytest.fixture(params=["local", "redis"])
def backend(request, settings, usage_stream) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Run a test against the in-process store and against real Redis (when REDIS_URL is set)."""
    settings.OGEM_USAGE_AUTOFLUSH = False
    _fresh_async_client()
    local_limiter.reset()
    usage_buffer_take(limit=10**9)
    if request.param == "redis":
        if not REAL_REDIS_URL:
            pytest.skip("REDIS_URL is not set")
        settings.REDIS_URL = REAL_REDIS_URL
    else:
        settings.REDIS_URL = ""
    yield request.param
    if request.param == "redis":
        redis_client_sync().delete(usage_stream)
    _fresh_async_client()
    local_limiter.reset()
    usage_buffer_take(limit=10**9)


@pytest.fixture
def tenant() -> str:
    """A tenant segment no other test (or earlier run) has used, so Redis needs no flushing."""
    return f"o:test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
async def _close_executor_connections() -> AsyncIterator[None]:
    """Async ORM calls run in asgiref's shared thread; close its connection after each test."""
    yield
    from asgiref.sync import sync_to_async
    from django.db import connections

    await sync_to_async(connections.close_all)()


@pytest.fixture
def live(live_ogem: LiveServer, backend: str) -> Iterator[LiveServer]:
    """The live server on one governance backend, with no counters left by earlier runs."""
    governance_snapshot_flush()
    if backend == "redis":
        client = redis_client_sync()
        prefix = settings.OGEM_CACHE_PREFIX  # `ogem-gw0` under pytest-xdist
        for pattern in (f"{prefix}:o:*:rl:*", f"{prefix}:u:*:rl:*", f"{prefix}:o:*:budget:*"):
            stale = list(client.scan_iter(match=pattern, count=1000))
            if stale:
                client.delete(*stale)
    yield live_ogem
    governance_snapshot_flush()
