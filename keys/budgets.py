"""A key's own budget, as keys sees it.

Budgets are billing's (``billing.Budget`` with scope "key"), and billing sits above keys: keys
imports none of it. Billing hands keys its store at startup (BillingConfig.ready():
``key_budget_store_set``); keys' services, selectors, API and admin go through it. The vocabulary
both apps share, money precision and budget periods, is defined here, in the lower of the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models import QuerySet

if TYPE_CHECKING:
    from keys.models import VirtualKey

# Money columns: USD to 8 decimal places.
USD = {"max_digits": 18, "decimal_places": 8}
USD_QUANTUM = Decimal("0.00000001")


def usd_str(amount: Decimal | int | str) -> str:
    """Money as Ogem's APIs and exports give it: a fixed-point string to 8 decimal places
    ("0.00002706"), never a float (2.706e-05 in JSON) nor an exponent."""
    return f"{Decimal(amount).quantize(USD_QUANTUM):f}"


class BudgetDuration(models.TextChoices):
    DAILY = "1d", "Daily"
    WEEKLY = "7d", "Weekly"
    MONTHLY = "30d", "Monthly"
    NONE = "", "No reset"


@dataclass(frozen=True, slots=True)
class KeyBudget:
    max_budget: Decimal | None = None
    soft_budget: Decimal | None = None
    duration: str = BudgetDuration.NONE


@dataclass(frozen=True, slots=True)
class KeyBudgetStore:
    get: Callable[[VirtualKey], KeyBudget | None]
    set: Callable[[VirtualKey, KeyBudget], None]
    # Annotates budget_max, budget_soft, budget_duration, budget_spend and budget_reset_at.
    annotate: Callable[[QuerySet[VirtualKey]], QuerySet[VirtualKey]]
    # Everything each of the given keys has spent (USD, from the request log), budget or not.
    spend: Callable[[list[int]], dict[int, Decimal]]
    # The current period's spend of each key's own limited budget, live (keys without one absent).
    period_spend: Callable[[list[int]], dict[int, Decimal]]


_store: KeyBudgetStore | None = None


def key_budget_store_set(store: KeyBudgetStore) -> None:
    global _store
    _store = store


def key_budget_store() -> KeyBudgetStore:
    if _store is None:
        raise ImproperlyConfigured("key budgets need the billing app (INSTALLED_APPS)")
    return _store
