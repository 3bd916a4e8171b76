from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from billing.models import SCOPE_FIELDS, Budget, BudgetDuration, BudgetMode, BudgetScope

_DURATION_DAYS = {BudgetDuration.DAILY: 1, BudgetDuration.WEEKLY: 7, BudgetDuration.MONTHLY: 30}


def budget_upsert(
    *,
    scope: str,
    target: Any,
    max_budget: Decimal | None = None,
    soft_budget: Decimal | None = None,
    duration: str = BudgetDuration.NONE,
    mode: str = BudgetMode.ENFORCE,
) -> Budget:
    """Create or update the budget of one organization, team, user, key or end customer."""
    scope = BudgetScope(scope)
    if duration not in BudgetDuration.values:
        raise ValueError(f"budget duration must be one of {BudgetDuration.values}")
    field = SCOPE_FIELDS[scope]
    budget, _ = Budget.objects.get_or_create(scope=scope, **{field: target})
    budget.max_budget = max_budget
    budget.soft_budget = soft_budget
    budget.mode = mode
    if budget.duration != duration or budget.period_started_at is None:
        budget.duration = duration
        _budget_start_period(budget=budget)
    budget.save()
    return budget


def budget_reset(*, budget: Budget) -> Budget:
    budget.spend = Decimal("0")
    budget.soft_alert_sent_for = None
    _budget_start_period(budget=budget)
    budget.save()
    return budget


def _budget_start_period(*, budget: Budget) -> None:
    now = timezone.now()
    budget.period_started_at = now
    days = _DURATION_DAYS.get(BudgetDuration(budget.duration))
    budget.reset_at = now + timedelta(days=days) if days else None
