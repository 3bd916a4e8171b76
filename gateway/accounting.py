"""Usage events of the gateway: one per finished /v1 request (their format: billing/usage.py).

Settling a request emits its event: with Redis, ``XADD`` to the usage stream in the same Lua
script that settles its limits and budgets (gateway/limits.py: spend and usage are recorded
together or not at all); while Redis is away, into the durable usage spool (gateway/spool.py);
without Redis, into the in-process buffer, which this module writes into ``billing.RequestLog``
in the background (`billing.services.usage_buffer_flush`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings

from billing.usage import UsageEvent, usage_buffer_append, usage_buffer_size

if TYPE_CHECKING:
    from gateway.context import RequestContext

logger = logging.getLogger(__name__)


def usage_event_build(
    ctx: RequestContext, *, cost: Decimal, provider: str, model: str
) -> UsageEvent:
    usage = ctx.usage
    caller = ctx.caller
    deployment = ctx.deployment
    total = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
    event: UsageEvent = {
        "request_id": ctx.request_id,
        "ts": ctx.created_unix,
        "organization_id": caller.organization_id,
        "team_id": caller.team_id,
        "key_id": caller.key_id,
        "user_id": caller.user_id,
        "end_customer": ctx.end_customer or "",
        "endpoint": str(ctx.recorded_as or ctx.endpoint),
        "model": ctx.model or model,
        "provider": provider,
        "deployment": deployment.id if deployment is not None else "",
        "status_code": ctx.status_code,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": total,
        "cost": str(cost),
        "latency_ms": _latency_ms(ctx),
        "ttft_ms": None
        if ctx.first_token_seconds is None
        else max(int(ctx.first_token_seconds * 1000), 0),
        "stream": ctx.stream,
        "cancelled": ctx.cancelled,
        "usage_estimated": usage.estimated,
        "cache_hit": ctx.cache_status in ("hit", "semantic-hit"),
        "cache_result": ctx.cache_status,
        "cache_saved_cost": None if ctx.cache_saved_cost is None else str(ctx.cache_saved_cost),
        "cache_saved_tokens": ctx.cache_saved_tokens,
        "cache_saved_latency_ms": ctx.cache_saved_latency_ms,
        "tags": sorted({*caller.tags, *ctx.tags}),
        "batch_id": ctx.batch_id,
    }
    if ctx.guard is not None and ctx.guard.decisions:
        event["guardrails"] = ctx.guard.decisions_list()  # billing.GuardrailDecision rows
    return event


def _latency_ms(ctx: RequestContext) -> int:
    return max(int((time.perf_counter() - ctx.started_at) * 1000), 0)


def usage_event_renew(event: UsageEvent, ctx: RequestContext) -> UsageEvent:
    """`event` (`usage_event_build`'s for another request whose other inputs were the same) as
    `usage_event_build` would make it for `ctx`: its request id, time and latency; a copy, in
    the same key order (the same encoded bytes)."""
    renewed = event.copy()
    renewed["request_id"] = ctx.request_id
    renewed["ts"] = ctx.created_unix
    renewed["latency_ms"] = _latency_ms(ctx)
    return renewed


# ---- The in-process buffer (no Redis), flushed in the background --------------------------------

_flush_tasks: set[asyncio.Task[None]] = set()
FLUSH_DELAY_SECONDS = 1.0


def usage_buffered(event: bytes) -> None:
    """Keep the event in this process's buffer and schedule its flush into RequestLog."""
    usage_buffer_append(event)
    _flush_schedule()


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
    # Without beat, alert rules are evaluated here, after the log they read was written.
    from gateway.alerting import alerts_evaluate_if_due

    await sync_to_async(alerts_evaluate_if_due, thread_sensitive=False)()
