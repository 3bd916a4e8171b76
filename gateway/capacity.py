"""A deployment's own limits (its `rpm` and `tpm` in the configuration), enforced by the router.

Before an attempt on a deployment that has a limit, the router takes one request, and the
request's token estimate, from the deployment's sliding windows: one admission of
gateway.limits (one Lua script on the pipelined Redis connection, so every worker shares the
counts; in process without Redis). A refusal marks the deployment full in this process until
the script says its window has room again, so the strategy skips it until then and the queue
knows how long to wait (gateway.resilience). A deployment without a limit costs nothing.

The token estimate is what governance reserves for the caller's tpm (prompt bytes / 4 plus
`max_tokens`, or OGEM_TPM_OUTPUT_RESERVE); settling the request corrects it to the tokens the
deployment really served, and a failed attempt's to 0 (`capacity_settle`, called by
governance_settle). While Redis is away each process counts on its own (`outage_limiter`), whatever
the failure policy: these are the router's counts, and the upstream's own 429s still protect it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

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
    """A tpm reservation on one deployment, to be corrected when the request settles."""

    deployment_id: str
    rule: Rule
    bucket: int
    local: bool = False  # counted by outage_limiter, Redis being away


def capacity_limited(deployment: Deployment) -> bool:
    return deployment.rpm is not None or deployment.tpm is not None


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
        _full_until[deployment.id] = (now + max(decision.retry_after_ms, 1)) / 1000
        return False
    _full_until.pop(deployment.id, None)
    if deployment.tpm is not None:
        take = CapacityTake(
            deployment_id=deployment.id,
            rule=rules[-1],
            bucket=decision.bucket,
            local=store is outage_limiter,
        )
        ctx.capacity_takes = [*(ctx.capacity_takes or ()), take]
    return True


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
        settlement = [Settlement(take.rule, tokens if index == last else 0)]
        if take.local:
            outage_limiter.settle_now(settlement, request_id=ctx.request_id, bucket=take.bucket)
            continue
        if redis_outage.down:
            continue  # a window correction, not worth keeping: it is gone within a minute
        try:
            await limiter().settle(
                settlement, request_id=ctx.request_id, bucket=take.bucket, event=b""
            )
        except Exception as exc:
            redis_failed(exc, what="deployment limits")
            logger.warning("could not settle the tpm of deployment rule %s", take.rule.key)


def capacity_reset() -> None:
    """Forget this process's refusals (tests)."""
    _full_until.clear()
