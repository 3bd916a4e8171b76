"""Ogem's built-in strategies (LiteLLM's names): see docs/routing.md for each one's rule."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from django.conf import settings

from billing.pricing import cost_worst_case, price_resolve
from gateway.context import RequestContext
from gateway.strategies.base import RoutingStrategy, lowest_priority, weighted_shuffle
from ogem_site.redis import redis_client, redis_failed, redis_key, redis_outage
from providers.base import Deployment


def _busy_key(deployment_id: str) -> str:
    return redis_key(f"routing:busy:{deployment_id}")


def _shared() -> bool:
    """Counts live in Redis (shared by every worker): it is configured and not away."""
    return bool(settings.REDIS_URL) and not redis_outage.down


class LeastBusy(RoutingStrategy):
    """Fewest requests in flight; counts live in Redis so every worker sees every request."""

    name = "least-busy"

    def __init__(self) -> None:
        self._local: defaultdict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    async def counts(self, ids: list[str]) -> list[int]:
        if _shared():
            try:
                raw = await redis_client().mget([_busy_key(i) for i in ids])
            except Exception as exc:
                redis_failed(exc, what="routing counts")
            else:
                return [max(int(v or 0), 0) for v in raw]
        return [self._local[i] for i in ids]

    async def choose(
        self, *, ctx: RequestContext, candidates: tuple[Deployment, ...]
    ) -> Deployment:
        tier = lowest_priority(candidates)
        counts = await self.counts([d.id for d in tier])
        fewest = min(counts)
        return weighted_shuffle(tuple(d for d, c in zip(tier, counts, strict=True) if c == fewest))

    async def started(self, *, deployment: Deployment) -> None:
        if _shared():
            pipe = redis_client().pipeline(transaction=False)
            pipe.incr(_busy_key(deployment.id))
            pipe.expire(_busy_key(deployment.id), 3600)  # a crashed worker's counts fade away
            try:
                await pipe.execute()
                return
            except Exception as exc:
                redis_failed(exc, what="routing counts")
        with self._lock:
            self._local[deployment.id] += 1

    async def finished(
        self, *, deployment: Deployment, ok: bool, seconds: float, stream: bool
    ) -> None:
        if _shared():
            try:
                await redis_client().decr(_busy_key(deployment.id))
                return
            except Exception as exc:
                redis_failed(exc, what="routing counts")
        with self._lock:
            self._local[deployment.id] -= 1


class LowestLatency(RoutingStrategy):
    """Lowest moving average (EWMA, alpha 0.3) of latency (time to first chunk for streams).

    A deployment with no sample yet is tried first; deployments within 10% of the best share
    traffic by weight. A failure counts as a sample of twice the slowest seen, so a failing
    deployment loses traffic too. Averages are per process: each worker learns on its own.
    """

    name = "latency-based-routing"
    alpha = 0.3
    buffer = 0.10

    def __init__(self) -> None:
        self.latency: dict[str, float] = {}
        self.ttfb: dict[str, float] = {}

    async def choose(
        self, *, ctx: RequestContext, candidates: tuple[Deployment, ...]
    ) -> Deployment:
        tier = lowest_priority(candidates)
        table = self.ttfb if ctx.stream else self.latency
        unknown = tuple(d for d in tier if d.id not in table)
        if unknown:
            return weighted_shuffle(unknown)
        best = min(table[d.id] for d in tier)
        near = tuple(d for d in tier if table[d.id] <= best * (1 + self.buffer))
        return weighted_shuffle(near)

    async def finished(
        self, *, deployment: Deployment, ok: bool, seconds: float, stream: bool
    ) -> None:
        table = self.ttfb if stream else self.latency
        if not ok:
            seconds = max([seconds, *table.values()]) * 2
        previous = table.get(deployment.id)
        table[deployment.id] = (
            seconds if previous is None else previous + self.alpha * (seconds - previous)
        )


class LowestCost(RoutingStrategy):
    """Cheapest for this request's size (prompt estimate plus max_tokens) by the price table;
    unpriced deployments come last."""

    name = "cost-based-routing"

    async def choose(
        self, *, ctx: RequestContext, candidates: tuple[Deployment, ...]
    ) -> Deployment:

        tier = lowest_priority(candidates)
        costs = []
        for d in tier:
            price = price_resolve(model=d.upstream_model, provider=d.provider, deployment=d)
            cost = (
                cost_worst_case(
                    price=price,
                    prompt_tokens=ctx.estimated_prompt_tokens,
                    max_tokens=ctx.max_tokens,
                )
                if price is not None
                else None
            )
            costs.append(cost)
        priced = [c for c in costs if c is not None]
        if not priced:
            return weighted_shuffle(tier)
        cheapest = min(priced)
        return weighted_shuffle(tuple(d for d, c in zip(tier, costs, strict=True) if c == cheapest))


class UsageBased(RoutingStrategy):
    """Most requests-per-minute headroom (rpm minus this minute's requests, shared in Redis);
    deployments without an rpm count as unlimited."""

    name = "usage-based-routing"

    def __init__(self) -> None:
        self._local: defaultdict[str, int] = defaultdict(int)

    @staticmethod
    def _minute_key(deployment_id: str) -> str:
        return redis_key(f"routing:rpm:{deployment_id}:{int(time.time() // 60)}")

    async def choose(
        self, *, ctx: RequestContext, candidates: tuple[Deployment, ...]
    ) -> Deployment:
        tier = lowest_priority(candidates)
        keys = [self._minute_key(d.id) for d in tier]
        used = [self._local[k] for k in keys]
        if _shared():
            try:
                used = [int(v or 0) for v in await redis_client().mget(keys)]
            except Exception as exc:
                redis_failed(exc, what="routing counts")
        headroom = [
            float("inf") if d.rpm is None else d.rpm - u for d, u in zip(tier, used, strict=True)
        ]
        most = max(headroom)
        return weighted_shuffle(tuple(d for d, h in zip(tier, headroom, strict=True) if h == most))

    async def started(self, *, deployment: Deployment) -> None:
        key = self._minute_key(deployment.id)
        if _shared():
            pipe = redis_client().pipeline(transaction=False)
            pipe.incr(key)
            pipe.expire(key, 120)
            try:
                await pipe.execute()
                return
            except Exception as exc:
                redis_failed(exc, what="routing counts")
        self._local[key] += 1


class TagBased(RoutingStrategy):
    """Deployments whose tags meet the request's tags (or the key's); else those tagged
    `default`; else all, by weight."""

    name = "tag-based"

    async def choose(
        self, *, ctx: RequestContext, candidates: tuple[Deployment, ...]
    ) -> Deployment:
        wanted = set(ctx.tags) | set(ctx.caller.tags)
        matching = tuple(d for d in candidates if wanted & set(d.tags))
        if not matching:
            matching = tuple(d for d in candidates if "default" in d.tags) or candidates
        return weighted_shuffle(matching)


BUILTIN: dict[str, type[RoutingStrategy]] = {
    "simple-shuffle": RoutingStrategy,
    "least-busy": LeastBusy,
    "latency-based-routing": LowestLatency,
    "lowest-latency": LowestLatency,
    "cost-based-routing": LowestCost,
    "lowest-cost": LowestCost,
    "usage-based-routing": UsageBased,
    "usage-based-routing-v2": UsageBased,
    "tag-based": TagBased,
}
