"""Retries, failover and fallbacks around one upstream attempt (see docs/routing.md).

`resilience_run` calls `attempt(deployment)` until one succeeds:

1. Within the requested model group, each available deployment (circuit not open, see
   gateway.health; not at its own rpm/tpm, see gateway.capacity) is tried once, chosen by the
   router, without waiting. When none is available yet (every circuit open or its half-open
   probe taken by another request, or every deployment at its limits), the request may first
   wait in the group's queue (`queue_timeout`, gateway.queueing).
2. Then up to `num_retries` more attempts on the group, each after an exponential backoff with
   jitter whose base depends on the error class, or after the upstream's `Retry-After` when it
   fits in the time budget; never sooner than `retry_after` seconds when that is set.
3. Then the group's ordered `fallbacks` (or `default_fallbacks`), each run the same way.
   A context-length error switches to `context_window_fallbacks`, a content-policy refusal to
   `content_policy_fallbacks`; other client errors (400, 404, ...) are returned at once.
   With `pre_call_checks` (gateway.precall), a group none of whose deployments has room for
   the prompt fails that way before any call.

A canary split (`router.groups.<group>.split`) sends its percentage of a group's requests to
another group first, the requested group then being its first fallback; a shadow
(gateway.shadow) mirrors a percentage of successful requests in the background.

The whole request has a time budget (`router_settings.timeout`, default 600 s): no attempt starts
or waits past it. A group with one deployment without limits and no retries or fallbacks skips
all of this.
Streams fail over only before their first byte: the attempt reads the first chunk.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.http import HttpResponse

from gateway.capacity import capacity_free, capacity_limited, capacity_release, capacity_take
from gateway.config import RouterSettings, config_current
from gateway.context import RequestContext
from gateway.errors import (
    GatewayError,
    GuardrailBlockedError,
    RateLimitError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from gateway.health import (
    Circuit,
    HealthPolicy,
    health_available,
    health_failure,
    health_policy,
    health_probe_claim,
    health_probe_release,
    health_success,
)
from gateway.precall import precall_fitting, prompt_tokens_estimate
from gateway.queueing import queue_priority, queue_wait
from gateway.registry import registry_get
from gateway.router import deployments_for
from gateway.shadow import shadow_maybe
from gateway.strategies import RoutingStrategy, strategy_for
from providers.base import Deployment

Attempt = Callable[[Deployment], Awaitable[HttpResponse]]

RATE_LIMIT = "rate_limit"
TIMEOUT = "timeout"
UNAVAILABLE = "unavailable"
UPSTREAM = "upstream"
CONTEXT_WINDOW = "context_window"
CONTENT_POLICY = "content_policy"
CLIENT = "client"

# Backoff base (seconds) per error class: rate limits back off longest, a flaky 5xx shortest.
BACKOFF_BASE = {RATE_LIMIT: 1.0, TIMEOUT: 0.5, UNAVAILABLE: 0.5, UPSTREAM: 0.25}
BACKOFF_MAX = 10.0
DEFAULT_BUDGET = 600.0

_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_CONTEXT_PHRASES = ("context length", "context window", "prompt is too long", "too many tokens")
_POLICY_CODES = frozenset({"content_policy_violation", "content_filter"})
_POLICY_PHRASES = ("content policy", "content management policy", "content_filter")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    num_retries: int = 0
    budget: float = DEFAULT_BUDGET
    queue_timeout: float = 0.0
    queue_depth: int = 100
    retry_after: float | None = None  # the least wait before a retry


class _GroupFailed(Exception):
    def __init__(self, error: GatewayError, kind: str, attempts: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.kind = kind
        self.attempts = attempts


def error_classify(error: GatewayError) -> str:
    """Which class of failure an attempt's error is; it decides retry, fallback or return."""
    if isinstance(error, GuardrailBlockedError):
        return CLIENT  # Ogem's own refusal: another deployment would be refused the same
    if isinstance(error, UpstreamTimeoutError):
        return TIMEOUT
    if isinstance(error, UpstreamUnavailableError):
        return UNAVAILABLE
    if isinstance(error, UpstreamError):
        return UPSTREAM
    if isinstance(error, RateLimitError):
        return RATE_LIMIT
    message = error.message.lower()
    if error.code in _CONTEXT_CODES or any(p in message for p in _CONTEXT_PHRASES):
        return CONTEXT_WINDOW
    if error.code in _POLICY_CODES or any(p in message for p in _POLICY_PHRASES):
        return CONTENT_POLICY
    return CLIENT


def retry_after_seconds(error: GatewayError) -> float | None:
    value = error.headers.get("Retry-After") or error.headers.get("retry-after")
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def retry_delay(
    *, kind: str, retry: int, retry_after: float | None, minimum: float | None = None
) -> float:
    """Seconds before retry number `retry` (1-based): Retry-After when given, else exponential
    backoff with full jitter over [base * 2^(retry-1) / 2, base * 2^(retry-1)]; never less than
    `minimum` (router_settings.retry_after)."""
    if retry_after is not None:
        delay = retry_after
    else:
        ceiling = min(BACKOFF_BASE.get(kind, 0.5) * 2 ** (retry - 1), BACKOFF_MAX)
        delay = random.uniform(ceiling / 2, ceiling)
    return max(delay, minimum) if minimum else delay


def retry_policy(router: RouterSettings) -> RetryPolicy:
    return RetryPolicy(
        num_retries=max(router.num_retries or 0, 0),
        budget=router.timeout or DEFAULT_BUDGET,
        queue_timeout=router.queue_timeout,
        queue_depth=router.queue_depth,
        retry_after=router.retry_after,
    )


async def resilience_run(
    ctx: RequestContext,
    *,
    candidates: tuple[Deployment, ...],
    attempt: Attempt,
    body: dict[str, Any],
) -> HttpResponse:
    router = config_current().router
    policy = retry_policy(router)
    fallbacks = router.fallbacks.get(ctx.model, router.default_fallbacks)
    if (
        len(candidates) == 1
        and not capacity_limited(candidates[0])
        and not fallbacks
        and not policy.num_retries
        and ctx.model not in router.context_window_fallbacks
        and ctx.model not in router.content_policy_fallbacks
        and ctx.model not in router.traffic_split
        and ctx.model not in router.shadow
        and not router.pre_call_checks
    ):
        await admitted(ctx)
        return await attempt(candidates[0])  # the single-deployment fast path
    deadline = ctx.started_at + policy.budget
    health = health_policy()
    groups = [ctx.model, *fallbacks]
    canary = _split_pick(router.traffic_split.get(ctx.model, ()))
    if canary and canary != ctx.model:
        groups.insert(0, canary)  # the original group stays first in line behind it
    seen: set[str] = set()
    last: GatewayError | None = None
    attempts = 0
    prompt_tokens = prompt_tokens_estimate(body) if router.pre_call_checks else 0
    while groups:
        group = groups.pop(0)
        if group in seen:
            continue
        seen.add(group)
        pool = candidates if group == ctx.model else _group_candidates(ctx, group)
        if router.pre_call_checks:
            pool, too_long = precall_fitting(pool, tokens=prompt_tokens)
            if too_long is not None:
                # As an upstream's context-length error would: only a larger window helps.
                last = too_long
                groups = list(router.context_window_fallbacks.get(group, ()))
                continue
        if not pool:
            continue
        began = time.perf_counter()
        try:
            response, used = await _group_run(
                ctx,
                pool,
                attempt=attempt,
                strategy=strategy_for(group=group, deployments=pool),
                policy=policy,
                health=health,
                deadline=deadline,
            )
        except _GroupFailed as failed:
            attempts += failed.attempts
            last = failed.error
            if failed.kind == CONTEXT_WINDOW:
                groups = list(router.context_window_fallbacks.get(group, ()))
            elif failed.kind == CONTENT_POLICY:
                groups = list(router.content_policy_fallbacks.get(group, ()))
            elif failed.kind == CLIENT:
                raise failed.error from None
            if time.perf_counter() >= deadline:
                break
            continue
        response["x-ogem-attempts"] = str(attempts + used)
        response["x-ogem-model-group"] = group
        shadow_maybe(ctx, body=body, seconds=time.perf_counter() - began)
        return response
    if last is None:
        last = UpstreamUnavailableError(
            f"No deployment of `{ctx.model}` is available.", provider="ogem"
        )
    raise last


async def admitted(ctx: RequestContext) -> None:
    """Wait for the request's admission (a refusal raises), once. The router calls it as late as
    it can, after choosing a deployment and before taking anything from it, so that the routing
    work overlaps the admission's round trip to Redis."""
    wait = ctx.admission_wait
    if wait is not None:
        ctx.admission_wait = None
        await wait()


def _split_pick(split: tuple[tuple[str, float], ...]) -> str | None:
    """The group a canary split sends this request to; None: the requested group keeps it."""
    roll = random.random() * 100
    for group, percent in split:
        if roll < percent:
            return group
        roll -= percent
    return None


def _group_candidates(ctx: RequestContext, group: str) -> tuple[Deployment, ...]:
    """A fallback group's deployments for this caller; one it may not use is skipped."""
    try:
        return deployments_for(
            caller=ctx.caller, model=group, endpoint=ctx.endpoint, registry=registry_get()
        )
    except GatewayError:
        return ()


@dataclass(slots=True)
class _Pick:
    """The deployment for the next attempt (its own limits already counted, its probe claimed
    when half-open), or why none."""

    deployment: Deployment | None
    circuits: dict[str, Circuit]
    # COOLING: every circuit is open or being probed by another request;
    # LIMITS: every other one is at its limits.
    blocked: str = ""
    wait: float = 0.0  # blocked: seconds until a deployment may serve again


COOLING = "cooling"
LIMITS = "limits"
# How often to look again while another request probes a half-open deployment: the probe is
# one upstream call, whose end no one announces.
PROBE_WAIT = 0.05


async def _pick(
    ctx: RequestContext,
    pool: tuple[Deployment, ...],
    *,
    strategy: RoutingStrategy,
    health: HealthPolicy,
    tried: set[str],
) -> _Pick:
    """Choose a deployment that may serve now: its half-open probe claimed (so a waiter leaves
    the queue only with a deployment it may use), then its own limits taken."""
    usable, circuits, wait = await health_available(pool)
    if not usable:
        return _Pick(None, circuits, COOLING, wait)
    refused: set[str] = set()  # at their own limits
    probed: set[str] = set()  # half-open, another request holds the probe
    while True:
        free, full_wait = capacity_free(usable, skip=refused | probed)
        if not free:
            if probed:
                return _Pick(None, circuits, COOLING, PROBE_WAIT)
            return _Pick(None, circuits, LIMITS, full_wait)
        fresh = tuple(d for d in free if d.id not in tried)
        if not fresh:
            return _Pick(None, circuits)
        deployment = await strategy.choose(ctx=ctx, candidates=fresh)
        await admitted(ctx)  # before the probe claim and the capacity take
        circuit = circuits.get(deployment.id)
        if not await health_probe_claim(deployment, circuit=circuit, policy=health):
            probed.add(deployment.id)  # choose among the others
            continue
        if not capacity_limited(deployment) or await capacity_take(ctx, deployment):
            return _Pick(deployment, circuits)
        await health_probe_release(deployment, circuit=circuit)  # unused: free it for another
        refused.add(deployment.id)  # at its own limits: choose among the others


def _blocked_error(pool: tuple[Deployment, ...], pick: _Pick) -> GatewayError:
    retry_after = {"Retry-After": str(max(int(pick.wait + 0.999), 1))}
    if pick.blocked == LIMITS:
        return RateLimitError(
            f"Every deployment of `{pool[0].model_name}` is at its rate limit.", headers=retry_after
        )
    return UpstreamUnavailableError(
        f"Every deployment of `{pool[0].model_name}` is cooling down.",
        provider="ogem",
        headers=retry_after,
    )


async def _group_run(
    ctx: RequestContext,
    pool: tuple[Deployment, ...],
    *,
    attempt: Attempt,
    strategy: RoutingStrategy,
    policy: RetryPolicy,
    health: HealthPolicy,
    deadline: float,
) -> tuple[HttpResponse, int]:
    tried: set[str] = set()
    retries = 0
    used = 0
    last: GatewayError | None = None
    last_kind = UPSTREAM
    queued = False
    while True:
        pick = await _pick(ctx, pool, strategy=strategy, health=health, tried=tried)
        await admitted(ctx)  # a refused request neither queues nor retries
        if pick.blocked and policy.queue_timeout and not queued and not used:
            queued = True
            pick = await _queued(
                ctx,
                pool,
                strategy=strategy,
                health=health,
                policy=policy,
                deadline=deadline,
                blocked=pick,
            )
        if pick.deployment is None:
            if pick.blocked and last is None:
                last = _blocked_error(pool, pick)
                last_kind = RATE_LIMIT if pick.blocked == LIMITS else UNAVAILABLE
            if retries >= policy.num_retries or last is None:
                break
            retries += 1
            after = retry_after_seconds(last)
            delay = retry_delay(
                kind=last_kind, retry=retries, retry_after=after, minimum=policy.retry_after
            )
            if pick.blocked:
                delay = max(delay, pick.wait)
            if time.perf_counter() + delay >= deadline:
                break
            await asyncio.sleep(delay)
            pick = await _pick(ctx, pool, strategy=strategy, health=health, tried=set())
            if pick.deployment is None:
                continue
        deployment = pick.deployment
        tried.add(deployment.id)
        used += 1
        await strategy.started(deployment=deployment)
        began = time.perf_counter()
        ok = False
        try:
            response = await _bounded(
                attempt(deployment), deadline=deadline, deployment=deployment, budget=policy.budget
            )
            ok = True
        except GatewayError as error:
            if deployment.max_parallel_requests is not None:
                await capacity_release(ctx, deployment)
            kind = error_classify(error)
            if kind in (CONTEXT_WINDOW, CONTENT_POLICY, CLIENT):
                raise _GroupFailed(error, kind, used) from None
            await health_failure(
                deployment,
                policy=health,
                forced=(retry_after_seconds(error) or 0.0) if kind == RATE_LIMIT else 0.0,
            )
            last, last_kind = error, kind
            if time.perf_counter() >= deadline:
                break
            continue
        finally:
            await strategy.finished(
                deployment=deployment,
                ok=ok,
                seconds=time.perf_counter() - began,
                stream=ctx.stream,
            )
        await health_success(deployment, circuit=pick.circuits.get(deployment.id) or Circuit())
        return response, used
    if last is None:
        last = UpstreamUnavailableError(
            f"No deployment of `{pool[0].model_name}` is available.", provider="ogem"
        )
    raise _GroupFailed(last, last_kind, used)


async def _queued(
    ctx: RequestContext,
    pool: tuple[Deployment, ...],
    *,
    strategy: RoutingStrategy,
    health: HealthPolicy,
    policy: RetryPolicy,
    deadline: float,
    blocked: _Pick,
) -> _Pick:
    """Wait in the group's queue. The head of the queue picks a deployment (and takes its
    capacity and, when half-open, its probe) as soon as one can serve, so nobody behind it is
    served first."""
    got = blocked

    async def ready() -> float:
        nonlocal got
        got = await _pick(ctx, pool, strategy=strategy, health=health, tried=set())
        return max(got.wait, 0.001) if got.blocked else 0.0

    await queue_wait(
        group=pool[0].model_name,
        priority=queue_priority(caller=ctx.caller),
        patience=min(policy.queue_timeout, deadline - time.perf_counter()),
        depth=policy.queue_depth,
        ready=ready,
    )
    return got


async def _bounded(
    call: Awaitable[HttpResponse], *, deadline: float, deployment: Deployment, budget: float
) -> HttpResponse:
    """One attempt, cut off at the request's time budget (the default budget is the default
    total timeout of a deployment, which bounds the attempt already)."""
    if budget >= DEFAULT_BUDGET:
        return await call
    remaining = deadline - time.perf_counter()
    if remaining <= 0:
        raise UpstreamTimeoutError(
            "The request's time budget ran out.", provider=deployment.provider
        )
    try:
        async with asyncio.timeout(remaining):
            return await call
    except TimeoutError:
        raise UpstreamTimeoutError(
            f"The upstream provider {deployment.provider} did not answer within the request's "
            "time budget.",
            provider=deployment.provider,
        ) from None
