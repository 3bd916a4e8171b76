"""The governance hooks of the /v1 pipeline: limits and budgets before the call, accounting after.

The data plane calls `governance_admit` before choosing an upstream and `governance_settle`
exactly once when the request has finished (successfully, failed, or cancelled by the client).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.context import RequestContext


@dataclass(slots=True)
class Admission:
    # OpenAI's x-ratelimit-* headers to add to the response (empty when no limit applies).
    headers: dict[str, str] = field(default_factory=dict)
    # Opaque state governance needs to settle or release what it reserved.
    reservation: object | None = None


async def governance_admit(ctx: RequestContext) -> Admission:
    """Check rate limits and budgets; raise RateLimitError/BudgetExceededError to refuse."""
    return Admission()


async def governance_settle(ctx: RequestContext, admission: Admission) -> None:
    """Settle reservations with the real usage in ctx and record the usage event once."""
    return None
