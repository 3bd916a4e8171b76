"""Usage events: one per finished /v1 request, keyed by its request id.

Settling a request emits its event: with Redis, ``XADD`` to the usage stream (`usage_stream_key`)
in the same Lua script that settles its limits and budgets (so spend and usage are recorded
together or not at all); without Redis, into an in-process buffer. ``billing.services.usage_drain``
moves events from either into ``billing.RequestLog`` in batches, idempotently on the request id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections import deque
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from django.conf import settings

from gateway.redis import redis_key

if TYPE_CHECKING:
    from gateway.context import RequestContext

logger = logging.getLogger(__name__)

USAGE_GROUP = "ogem-usage-drain"


def usage_event_build(
    ctx: RequestContext, *, cost: Decimal, provider: str, model: str
) -> dict[str, Any]:
    usage = ctx.usage
    caller = ctx.caller
    deployment = ctx.deployment
    total = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
    return {
        "request_id": ctx.request_id,
        "ts": ctx.created_unix,
        "organization_id": caller.organization_id,
        "team_id": caller.team_id,
        "key_id": caller.key_id,
        "user_id": caller.user_id,
        "end_customer": ctx.end_customer or "",
        "endpoint": str(ctx.endpoint),
        "model": ctx.model or model,
        "provider": provider,
        "deployment": deployment.id if deployment is not None else "",
        "status_code": ctx.status_code,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": total,
        "cost": str(cost),
        "latency_ms": max(int((time.perf_counter() - ctx.started_at) * 1000), 0),
        "stream": ctx.stream,
        "cancelled": ctx.cancelled,
        "usage_estimated": usage.estimated,
        "tags": sorted({*caller.tags, *ctx.tags}),
    }


def usage_event_encode(event: dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def usage_event_decode(raw: bytes | str) -> dict[str, Any]:
    return orjson.loads(raw)


# ---- In-process buffer (no Redis, or Redis unreachable at settle time) ------------------------

_buffer: deque[bytes] = deque()
_buffer_lock = threading.Lock()
_flush_tasks: set[asyncio.Task[None]] = set()
FLUSH_DELAY_SECONDS = 1.0


def usage_buffer_append(event: bytes) -> None:
    with _buffer_lock:
        _buffer.append(event)
    _flush_schedule()


def usage_buffer_take(*, limit: int) -> list[bytes]:
    with _buffer_lock:
        return [_buffer.popleft() for _ in range(min(limit, len(_buffer)))]


def usage_buffer_return(events: list[bytes]) -> None:
    """Put back events a failed flush could not write, ahead of newer ones."""
    with _buffer_lock:
        _buffer.extendleft(reversed(events))


def usage_buffer_size() -> int:
    with _buffer_lock:
        return len(_buffer)


def _flush_schedule() -> None:
    """Flush the buffer in the background: at once when a batch is full, else after a second."""
    if not settings.OGEM_USAGE_AUTOFLUSH:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    if any(not task.done() for task in _flush_tasks):
        return
    task = loop.create_task(_flush_later())
    _flush_tasks.add(task)
    task.add_done_callback(_flush_tasks.discard)


async def _flush_later() -> None:
    from asgiref.sync import sync_to_async

    from billing.services import usage_buffer_flush

    while usage_buffer_size():
        if usage_buffer_size() < settings.OGEM_USAGE_BATCH_SIZE:
            await asyncio.sleep(FLUSH_DELAY_SECONDS)
        try:
            await sync_to_async(usage_buffer_flush, thread_sensitive=False)()
        except Exception:
            logger.exception("usage flush failed; events stay buffered")
            await asyncio.sleep(FLUSH_DELAY_SECONDS)


# ---- Redis stream (sync client for the drain) --------------------------------------------------

_sync_client: Any = None
_sync_client_pid: int | None = None


def usage_redis() -> Any:
    """A synchronous Redis client for Celery and management code (one per process)."""
    global _sync_client, _sync_client_pid
    import redis

    if _sync_client is None or _sync_client_pid != os.getpid():
        _sync_client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=False)
        _sync_client_pid = os.getpid()
    return _sync_client


def usage_stream_key() -> str:
    """The usage stream of this installation (``OGEM_USAGE_STREAM`` under its key prefix)."""
    return redis_key(settings.OGEM_USAGE_STREAM)


def usage_dead_stream() -> str:
    """Where the drain moves the events it cannot record (docs/governance.md): beside the usage
    stream, under the same installation prefix."""
    return f"{usage_stream_key()}-dead"


def usage_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"
