"""A custom strategy for the tests, loaded by its dotted path."""

from __future__ import annotations

from gateway.context import RequestContext
from gateway.strategies import RoutingStrategy
from providers.base import Deployment


class LastListed(RoutingStrategy):
    """Always the last candidate: easy to tell from any built-in strategy."""

    async def choose(
        self, *, ctx: RequestContext, candidates: tuple[Deployment, ...]
    ) -> Deployment:
        return candidates[-1]
