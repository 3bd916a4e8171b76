"""Live budget counters: their Redis keys and their units.

A budget's current period has one counter (a Redis hash, or the gateway's in-process store without
Redis): ``s``, the settled spend, and ``r``, the worst case reserved by requests in flight, in
integer units of 1e-8 USD. The gateway's admission and settle scripts update it
(gateway/limits.py); billing reads ``s`` to persist it into ``Budget.spend``
(`billing.services.budget_periods_reset`).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from django.conf import settings

from billing.pricing import COST_QUANTUM
from ogem_site.redis import redis_client_sync, redis_slot_key

if TYPE_CHECKING:
    from billing.selectors import BudgetSnapshot

_QUANTUM_EXPONENT = COST_QUANTUM.as_tuple().exponent  # -8


def usd_to_units(amount: Decimal, *, round_up: bool = False) -> int:
    """USD to integer units of 1e-8 USD (the precision of Budget.spend and RequestLog.cost)."""
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= _QUANTUM_EXPONENT:
        # Already on the quantum (every computed cost is): exact without a Decimal division,
        # which costs several times as much on the request path.
        return int(amount.scaleb(-_QUANTUM_EXPONENT))
    rounding = ROUND_CEILING if round_up else ROUND_HALF_EVEN
    return int((amount / COST_QUANTUM).to_integral_value(rounding=rounding))


def units_to_usd(units: int) -> Decimal:
    return (Decimal(units) * COST_QUANTUM).quantize(COST_QUANTUM)


def budget_key(*, tenant: str, scope: str, target_id: int, period: int) -> str:
    """``<prefix>:<tenant>:budget:<scope>:<id>:<period start, unix ms>``."""
    return redis_slot_key(f"{tenant}:budget:{scope}:{target_id}:{period}")


def budget_counter_key(*, snapshot: BudgetSnapshot) -> str:
    """The live counter of the budget's current period (a new period is a new key)."""
    if snapshot.scope == "user":
        tenant = f"u:{snapshot.target_id}"
    else:
        tenant = f"o:{snapshot.organization_id if snapshot.organization_id is not None else '-'}"
    started = snapshot.period_started_at
    period = int(started.timestamp() * 1000) if started is not None else 0
    return budget_key(
        tenant=tenant, scope=snapshot.scope, target_id=snapshot.target_id, period=period
    )


_local_reader: list[Callable[[str], int | None]] = []


def budget_counter_local_register(reader: Callable[[str], int | None]) -> None:
    """Without Redis the counters live in the gateway's process: it registers how to read one."""
    _local_reader[:] = [reader]


def budget_counters_spend(*, keys: list[str]) -> list[int | None]:
    """Several live counters' settled spend in one round trip (None: no such counter)."""
    if not keys:
        return []
    if settings.REDIS_URL:
        pipe = redis_client_sync().pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, "s")
        return [None if raw is None else int(raw) for raw in pipe.execute()]
    return [_local_reader[0](key) if _local_reader else None for key in keys]


def budget_counter_spend(*, key: str) -> int | None:
    """A live counter's settled spend, in units; None when there is no such counter."""
    if settings.REDIS_URL:
        raw = redis_client_sync().hget(key, "s")
        return None if raw is None else int(raw)
    return _local_reader[0](key) if _local_reader else None
