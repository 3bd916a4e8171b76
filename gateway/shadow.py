"""Shadow traffic: mirror a percentage of a model group's requests to a candidate model.

Configured per group (`router.groups.<group>.shadow: {model, percent, max_budget}`). After the
caller's request succeeded, a mirrored copy (never streamed) goes to the candidate in a
background task: it never delays, changes or fails the caller's response. The candidate's
spend is capped by `max_budget` (USD, per process, since start); past it nothing is mirrored.
Both sides are recorded (`shadow_records()`, the `ogem_shadow_requests` metric and the
`ogem.shadow` log): status, seconds and tokens of the primary and of the candidate.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from billing.pricing import cost_compute
from gateway.body import body_for_upstream
from gateway.config import config_current
from gateway.context import RequestContext, Usage
from gateway.errors import GatewayError
from gateway.registry import registry_get
from gateway.router import deployments_for
from gateway.strategies import weighted_shuffle
from ogem_site.metrics import SHADOW_REQUESTS
from providers.registry import adapter_get

logger = logging.getLogger("ogem.shadow")


@dataclass(frozen=True, slots=True)
class ShadowRecord:
    model: str
    shadow_model: str
    primary_status: int
    primary_seconds: float
    primary_tokens: int
    shadow_status: int  # 0: skipped, over the budget cap
    shadow_seconds: float
    shadow_tokens: int
    shadow_cost: str
    at: float


_records: deque[ShadowRecord] = deque(maxlen=500)
_spent: dict[str, Decimal] = {}
_tasks: set[asyncio.Task[None]] = set()
_lock = threading.Lock()


def shadow_records() -> list[dict[str, Any]]:
    """The most recent comparisons, oldest first."""
    return [asdict(record) for record in list(_records)]


def shadow_spent(group: str) -> Decimal:
    return _spent.get(group, Decimal(0))


def shadow_reset() -> None:
    with _lock:
        _records.clear()
        _spent.clear()


async def shadow_drain() -> None:
    """Wait for the mirrors in flight (tests, shutdown)."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)


def shadow_maybe(ctx: RequestContext, *, body: dict[str, Any], seconds: float) -> None:
    """Start a mirror of this successful request when its group shadows and the dice say so."""
    spec = config_current().router.shadow.get(ctx.model)
    if spec is None:
        return
    target, percent, cap = spec
    if random.random() * 100 >= percent:
        return
    primary = (ctx.status_code, seconds, ctx.usage.total_tokens)
    task = asyncio.get_running_loop().create_task(
        _mirror(ctx, target=target, cap=cap, body=dict(body), primary=primary)
    )
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _mirror(
    ctx: RequestContext,
    *,
    target: str,
    cap: float | None,
    body: dict[str, Any],
    primary: tuple[int, float, int],
) -> None:

    status, seconds, tokens, cost = 0, 0.0, 0, Decimal(0)
    try:
        if cap is not None and shadow_spent(target) >= Decimal(str(cap)):
            SHADOW_REQUESTS.labels(model=target, outcome="over_budget").inc()
            return
        candidates = deployments_for(
            caller=ctx.caller, model=target, endpoint=ctx.endpoint, registry=registry_get()
        )
        deployment = weighted_shuffle(candidates)
        adapter = adapter_get(deployment.provider)
        if adapter is None:
            return
        body.pop("stream_options", None)
        body["stream"] = False
        started = time.perf_counter()
        try:
            result = await adapter.call(
                endpoint=ctx.endpoint,
                deployment=deployment,
                body=body_for_upstream(
                    body=body, provider=deployment.provider, stored=ctx.stored is not None
                ),
            )
            status = 200
        except GatewayError as error:
            result, status = {}, error.status
        seconds = time.perf_counter() - started
        usage_block = result.get("usage") if isinstance(result, dict) else None
        if isinstance(usage_block, dict):
            usage = Usage(
                prompt_tokens=int(usage_block.get("prompt_tokens") or 0),
                completion_tokens=int(usage_block.get("completion_tokens") or 0),
            )
            tokens = usage.prompt_tokens + usage.completion_tokens
            cost = cost_compute(
                model=deployment.upstream_model,
                provider=deployment.provider,
                deployment=deployment,
                usage=usage,
            )
        with _lock:
            _spent[target] = shadow_spent(target) + cost
        SHADOW_REQUESTS.labels(model=target, outcome="ok" if status == 200 else "error").inc()
    except Exception:  # a mirror must never surface: it is logged and dropped
        logger.exception("shadow request to %s failed", target)
        return
    finally:
        record = ShadowRecord(
            model=ctx.model,
            shadow_model=target,
            primary_status=primary[0],
            primary_seconds=round(primary[1], 4),
            primary_tokens=primary[2],
            shadow_status=status,
            shadow_seconds=round(seconds, 4),
            shadow_tokens=tokens,
            shadow_cost=str(cost),
            at=time.time(),
        )
        _records.append(record)
        logger.info("shadow %s", asdict(record))
