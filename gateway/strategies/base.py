"""The interface every routing strategy implements, and the weighted shuffle they fall back on."""

from __future__ import annotations

import random

from gateway.context import RequestContext
from providers.base import Deployment


def weighted_shuffle(candidates: tuple[Deployment, ...]) -> Deployment:
    """Weighted random choice among the candidates of the lowest priority."""
    if len(candidates) == 1:
        return candidates[0]
    best = min(d.priority for d in candidates)
    tier = [d for d in candidates if d.priority == best]
    if len(tier) == 1:
        return tier[0]
    weights = [max(d.weight, 0) for d in tier]
    if not any(weights):
        return random.choice(tier)
    return random.choices(tier, weights=weights)[0]


def lowest_priority(candidates: tuple[Deployment, ...]) -> tuple[Deployment, ...]:
    best = min(d.priority for d in candidates)
    return tuple(d for d in candidates if d.priority == best)


class RoutingStrategy:
    """Chooses one deployment of a model group for one attempt.

    `choose` gets the deployments that may serve this attempt (visible to the caller, allowed,
    circuit not open, not yet tried by this request) and returns one of them. `started` and
    `finished` bracket the attempt, for strategies that learn from traffic. One instance serves
    every request of the process, concurrently: keep state in Redis or guard it. A custom
    strategy subclasses this and is named by its dotted path in `routing_strategy`.
    """

    name = "simple-shuffle"

    async def choose(
        self, *, ctx: RequestContext, candidates: tuple[Deployment, ...]
    ) -> Deployment:
        return weighted_shuffle(candidates)

    async def started(self, *, deployment: Deployment) -> None:
        return None

    async def finished(
        self, *, deployment: Deployment, ok: bool, seconds: float, stream: bool
    ) -> None:
        """`seconds` is the whole call, or the time to the first chunk for a stream."""
        return None
