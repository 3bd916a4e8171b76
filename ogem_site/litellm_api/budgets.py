"""/budget/new, /budget/info, /budget/list, /budget/update, /budget/delete: LiteLLM's budget table
as Ogem's budget templates (billing.BudgetTemplate), proxy admins only, as in LiteLLM. A
template's `budget_id` on /organization/new, /customer/new or /key/generate (and their updates)
gives that entity the template's limits (`template_values`)."""

from __future__ import annotations

import secrets
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError
from rest_framework.request import Request
from rest_framework.response import Response

from billing.models import BudgetTemplate
from billing.selectors import budget_template_get, budget_template_list
from billing.services import (
    budget_template_create,
    budget_template_delete,
    budget_template_update,
)
from keys.budgets import BudgetDuration

from .base import LiteLLMError, LiteLLMView, budget_duration_to_ogem, money

_MONEY = ("max_budget", "soft_budget")
_COUNTS = ("rpm_limit", "tpm_limit", "max_parallel_requests")


def _values(body: dict[str, Any]) -> dict[str, Any]:
    """The template fields a LiteLLM budget body sets, checked."""
    values: dict[str, Any] = {}
    for name in _MONEY:
        if name in body:
            raw = body[name]
            try:
                amount = None if raw is None else Decimal(str(raw))
            except InvalidOperation:
                raise LiteLLMError(f"{name} must be a number.") from None
            if amount is not None and (not amount.is_finite() or amount < 0):
                raise LiteLLMError(f"{name} must be a number of dollars, 0 or more.")
            values[name] = amount
    for name in _COUNTS:
        if name in body:
            raw = body[name]
            if raw is not None and (isinstance(raw, bool) or not isinstance(raw, int) or raw < 1):
                raise LiteLLMError(f"{name} must be a whole number, 1 or more.")
            values[name] = raw
    if "budget_duration" in body:
        duration = budget_duration_to_ogem(body["budget_duration"]) or ""
        if duration not in BudgetDuration.values:
            raise LiteLLMError(
                "budget_duration is one of 1d (24h), 7d (1w) or 30d (1mo): Ogem's budget periods."
            )
        values["duration"] = duration
    return values


def template_to_litellm(template: BudgetTemplate) -> dict[str, Any]:
    return {
        "budget_id": template.budget_id,
        "max_budget": money(template.max_budget),
        "soft_budget": money(template.soft_budget),
        "max_parallel_requests": template.max_parallel_requests,
        "tpm_limit": template.tpm_limit,
        "rpm_limit": template.rpm_limit,
        "model_max_budget": None,
        "budget_duration": template.duration or None,
        "budget_reset_at": None,
        "created_at": template.created_at.isoformat(),
        "created_by": template.created_by or None,
        "updated_at": template.updated_at.isoformat(),
        "updated_by": template.created_by or None,
    }


def template_values(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with its `budget_id`'s limits filled in where the body does not set them (LiteLLM
    field names); unchanged without one. An unknown id is a 400."""
    budget_id = body.get("budget_id")
    if not budget_id:
        return body
    template = budget_template_get(budget_id=str(budget_id))
    if template is None:
        raise LiteLLMError(f"Budget {budget_id} not found.", status=404)
    filled = dict(body)
    shown = template_to_litellm(template)
    for name in (*_MONEY, *_COUNTS, "budget_duration"):
        if name not in filled and shown[name] is not None:
            filled[name] = shown[name]
    return filled


class _BudgetView(LiteLLMView):
    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not self.principal.is_proxy_admin:
            raise LiteLLMError("Only proxy admins can manage budgets.", status=403)

    def template(self, budget_id: Any) -> BudgetTemplate:
        found = budget_template_get(budget_id=str(budget_id or ""))
        if found is None:
            raise LiteLLMError(f"Budget {budget_id} not found.", status=404)
        return found


class BudgetNewView(_BudgetView):
    def post(self, request: Request) -> Response:
        body = self.body()
        budget_id = str(body.get("budget_id") or f"budget-{secrets.token_hex(8)}")
        if len(budget_id) > 100:
            raise LiteLLMError("budget_id is at most 100 characters.")
        try:
            template = budget_template_create(
                budget_id=budget_id,
                created_by=str(getattr(self.principal.user, "username", "") or ""),
                values=_values(body),
            )
        except IntegrityError:
            raise LiteLLMError(f"Budget {budget_id} already exists.") from None
        return Response(template_to_litellm(template))


class BudgetUpdateView(_BudgetView):
    def post(self, request: Request) -> Response:
        body = self.body()
        template = self.template(body.get("budget_id"))
        return Response(
            template_to_litellm(budget_template_update(template=template, values=_values(body)))
        )


class BudgetInfoView(_BudgetView):
    def post(self, request: Request) -> Response:
        wanted = self.body().get("budgets")
        if not isinstance(wanted, list) or not wanted:
            raise LiteLLMError("budgets: give a list of budget ids.")
        return Response([template_to_litellm(self.template(b)) for b in wanted])


class BudgetListView(_BudgetView):
    def get(self, request: Request) -> Response:
        return Response([template_to_litellm(t) for t in budget_template_list()])


class BudgetDeleteView(_BudgetView):
    def post(self, request: Request) -> Response:
        template = self.template(self.body().get("id"))
        shown = template_to_litellm(template)
        budget_template_delete(template=template)
        return Response(shown)
