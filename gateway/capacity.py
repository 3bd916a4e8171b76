"""A deployment's own limits (its `rpm`, `tpm` and `max_parallel_requests` in the configuration),
enforced by the router.

Before an attempt on a deployment that has a limit, the router takes one request, and the
request's token estimate, from the deployment's sliding windows: one admission of
gateway.limits (one Lua script on the pipelined Redis connection, so every worker shares the
counts; in process without Redis). A refusal marks the deployment full in this process until
the script says its window has room again, so the strategy skips it until then and the queue
knows how long to wait (gateway.resilience). A deployment without a limit costs nothing.

The token estimate is what governance reserves for the caller's tpm (prompt bytes / 4 plus
`max_tokens`, or OGEM_TPM_OUTPUT_RESERVE); settling the request corrects it to the tokens the
deployment really served, and a failed attempt's to 0 (`capacity_settle`, called by
governance_settle). A parallel slot is held from the attempt until the request settles (a
stream: until it ends); a failed attempt gives its slot back at once (`capacity_release`). A
deployment at its parallel limit is skipped like a full one, without being marked full: a slot
may free at any moment. While Redis is away each process counts on its own (`outage_limiter`),
whatever the failure policy: these are the router's counts, and the upstream's own 429s still
protect it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from django.conf import settings

from gateway.context import RequestContext
from gateway.limits import (
    LocalLimiter,
    RedisLimiter,
    Rule,
    Settlement,
    limiter,
    local_limiter,
    now_ms,
    outage_limiter,
    rule_key,
)
from ogem_site.redis import redis_failed, redis_outage, redis_outage_watch
from providers.base import Deployment, Endpoint

logger = logging.getLogger("ogem.routing")

_OUTPUT_ENDPOINTS = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})

# Deployment id -> unix time its window may have room again (this process's last refusal).
_full_until: dict[str, float] = {}


@dataclass(frozen=True, slots=True)
class CapacityTake:
    """What an attempt took from one deployment: a tpm reservation, to be corrected when the
    request settles, and a parallel slot, to be given back."""

    deployment_id: str
    rule: Rule | None  # tpm
    bucket: int
    local: bool = False  # counted by outage_limiter, Redis being away
    parallel: Rule | None = None


def capacity_limited(deployment: Deployment) -> bool:
    return (
        deployment.rpm is not None
        or deployment.tpm is not None
        or deployment.max_parallel_requests is not None
    )


def capacity_free(
    deployments: Sequence[Deployment], *, skip: Collection[str] = ()
) -> tuple[list[Deployment], float]:
    """The deployments not known to be at their limits (nor in `skip`), and, when there is none,
    the seconds until the first one may have room."""
    if not _full_until and not skip:
        return list(deployments), 0.0
    now = time.time()
    free: list[Deployment] = []
    soonest = float("inf")
    for deployment in deployments:
        until = _full_until.get(deployment.id, 0.0)
        if until > now:
            soonest = min(soonest, until - now)
        elif deployment.id in skip:
            soonest = min(soonest, 0.01)
        else:
            free.append(deployment)
    return free, (0.0 if free else max(soonest, 0.01))


def _token_estimate(ctx: RequestContext) -> int:
    tokens = ctx.estimated_prompt_tokens
    if ctx.endpoint in _OUTPUT_ENDPOINTS:
        tokens += ctx.max_tokens or settings.OGEM_TPM_OUTPUT_RESERVE
    return max(tokens, 1)


def _rules(ctx: RequestContext, deployment: Deployment) -> list[Rule]:
    # The same keys governance used for a deployment chosen before admission.
    owner = deployment.organization_id
    tenant = f"o:{owner if owner is not None else '-'}"
    entity = f"deployment:{deployment.id}"
    rules = []
    if deployment.rpm is not None:
        key = rule_key(tenant=tenant, entity=entity, metric="rpm")
        rules.append(Rule("w", key, deployment.rpm, 1, "deployment:rpm"))
    if deployment.tpm is not None:
        key = rule_key(tenant=tenant, entity=entity, metric="tpm")
        rules.append(Rule("w", key, deployment.tpm, _token_estimate(ctx), "deployment:tpm"))
    if deployment.max_parallel_requests is not None:
        key = rule_key(tenant=tenant, entity=entity, metric="parallel")
        ttl = settings.OGEM_PARALLEL_SLOT_TTL * 1000
        limit = deployment.max_parallel_requests
        rules.append(Rule("p", key, limit, 1, "deployment:parallel", ttl_ms=ttl))
    return rules


async def capacity_take(ctx: RequestContext, deployment: Deployment) -> bool:
    """Count this attempt against the deployment's limits; False (and nothing counted): it is
    at one of them."""
    rules = _rules(ctx, deployment)
    now = now_ms()
    window = settings.OGEM_DEPLOYMENT_LIMIT_WINDOW
    store: RedisLimiter | LocalLimiter = limiter()
    if store is not local_limiter and redis_outage.down:
        redis_outage_watch()
        store = outage_limiter
    try:
        decision = await store.admit(rules, now_ms=now, request_id=ctx.request_id, window=window)
    except Exception as exc:
        redis_failed(exc, what="deployment limits")
        store = outage_limiter
        decision = store.admit_now(rules, now_ms=now, request_id=ctx.request_id, window=window)
    if not decision.allowed:
        refused = rules[decision.refused] if decision.refused is not None else None
        if refused is None or refused.kind != "p":
            _full_until[deployment.id] = (now + max(decision.retry_after_ms, 1)) / 1000
        return False
    _full_until.pop(deployment.id, None)
    tpm = next((rule for rule in rules if rule.name == "deployment:tpm"), None)
    parallel = rules[-1] if rules[-1].kind == "p" else None
    if tpm is not None or parallel is not None:
        take = CapacityTake(
            deployment_id=deployment.id,
            rule=tpm,
            bucket=decision.bucket,
            local=store is outage_limiter,
            parallel=parallel,
        )
        ctx.capacity_takes = [*(ctx.capacity_takes or ()), take]
    return True


async def capacity_release(ctx: RequestContext, deployment: Deployment) -> None:
    """Give back the parallel slot a failed attempt took on `deployment` (its tpm is corrected
    when the request settles), so that a retry or another request may use it."""
    takes = ctx.capacity_takes
    if not takes or deployment.max_parallel_requests is None:
        return
    kept: list[CapacityTake] = []
    for take in takes:
        if take.deployment_id == deployment.id and take.parallel is not None:
            await _settle(ctx, take, [Settlement(take.parallel, 0)])
            take = replace(take, parallel=None)
        kept.append(take)
    ctx.capacity_takes = kept


async def capacity_settle(ctx: RequestContext) -> None:
    """Correct the tpm reservations of this request's attempts (once): the last attempt's to the
    tokens it served, the others (failed, or never called) to 0."""
    takes = ctx.capacity_takes
    if not takes:
        return
    ctx.capacity_takes = None
    usage = ctx.usage
    tokens = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
    served = ctx.deployment.id if ctx.deployment is not None else None
    last = max((i for i, take in enumerate(takes) if take.deployment_id == served), default=-1)
    for index, take in enumerate(takes):
        settlement = []
        if take.rule is not None:
            settlement.append(Settlement(take.rule, tokens if index == last else 0))
        if take.parallel is not None:
            settlement.append(Settlement(take.parallel, 0))
        if settlement:
            await _settle(ctx, take, settlement)


async def _settle(ctx: RequestContext, take: CapacityTake, settlement: list[Settlement]) -> None:
    if take.local:
        outage_limiter.settle_now(settlement, request_id=ctx.request_id, bucket=take.bucket)
        return
    if redis_outage.down:
        # A window correction is gone within a minute; a slot, once its worker's lease or
        # OGEM_PARALLEL_SLOT_TTL expires.
        return
    try:
        await limiter().settle(settlement, request_id=ctx.request_id, bucket=take.bucket, event=b"")
    except Exception as exc:
        redis_failed(exc, what="deployment limits")
        logger.warning("could not settle deployment rules %s", [s.rule.key for s in settlement])


def capacity_reset() -> None:
    """Forget this process's refusals (tests)."""
    _full_until.clear()
