"""Admin for budgets (reset action, spend read-only), prices and the request log (read-only)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from billing.models import SCOPE_FIELDS, Budget, BudgetScope, ModelPrice, RequestLog
from billing.selectors import budget_list, request_log_list
from billing.services import budget_reset, budget_upsert
from tenants.admin import ScopedAdminMixin, organization_id_of
from tenants.audit import audit_record, audit_snapshot
from tenants.principals import Principal


def budget_organization_id(*, scope: str, target: Any) -> int | None:
    """The organization a budget's target belongs to; None for organization and user budgets,
    which only proxy admins set (an org admin must not raise their own organization's cap)."""
    if target is None or scope in (BudgetScope.ORGANIZATION, BudgetScope.USER):
        return None
    return target.organization_id


class BudgetForm(forms.ModelForm):
    class Meta:
        model = Budget
        fields = [
            "scope",
            "organization",
            "team",
            "user",
            "key",
            "end_customer",
            "max_budget",
            "soft_budget",
            "duration",
            "mode",
        ]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        scope = data.get("scope")
        if scope:
            field = SCOPE_FIELDS[BudgetScope(scope)]
            if data.get(field) is None:
                self.add_error(field, f"A {BudgetScope(scope).label.lower()} budget needs this.")
            for other in SCOPE_FIELDS.values():
                if other != field and data.get(other) is not None:
                    self.add_error(other, "Leave empty: the budget applies to one target.")
        return data


@admin.register(Budget)
class BudgetAdmin(ScopedAdminMixin, admin.ModelAdmin):
    selector = staticmethod(budget_list)
    scoped_access = "org"
    form = BudgetForm
    list_display = [
        "target",
        "scope",
        "max_budget",
        "soft_budget",
        "spend",
        "duration",
        "mode",
        "reset_at",
    ]
    list_display_links = ["target"]
    list_filter = ["scope", "duration", "mode"]
    search_fields = [
        "organization__name",
        "team__name",
        "user__username",
        "key__name",
        "key__prefix",
        "end_customer__external_id",
    ]
    autocomplete_fields = ["organization", "team", "user", "key", "end_customer"]
    readonly_fields = ["spend", "period_started_at", "reset_at", "created_at", "updated_at"]
    actions = ["reset_budgets"]

    @admin.display(description="Target")
    def target(self, budget: Budget) -> str:
        return str(getattr(budget, SCOPE_FIELDS[BudgetScope(budget.scope)]))

    def save_model(
        self, request: HttpRequest, obj: Budget, form: forms.ModelForm, change: bool
    ) -> None:
        data = form.cleaned_data
        scope = BudgetScope(data["scope"])
        saved = budget_upsert(
            scope=scope,
            target=data[SCOPE_FIELDS[scope]],
            max_budget=data.get("max_budget"),
            soft_budget=data.get("soft_budget"),
            duration=data.get("duration") or "",
            mode=data["mode"],
        )
        for field in Budget._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False

    def scoped_writable(self, principal: Principal, obj: Budget) -> bool:
        target = getattr(obj, SCOPE_FIELDS[BudgetScope(obj.scope)])
        organization_id = budget_organization_id(scope=obj.scope, target=target)
        return organization_id is not None and principal.is_org_admin(organization_id)

    def scope_errors(
        self, principal: Principal, data: dict[str, Any], instance: Any
    ) -> list[tuple[str | None, str]]:
        scope = data.get("scope")
        if not scope:
            return []
        target = data.get(SCOPE_FIELDS[BudgetScope(scope)])
        organization_id = budget_organization_id(scope=scope, target=target)
        if organization_id is None or not principal.is_org_admin(organization_id):
            return [("scope", "Only proxy admins set this budget.")]
        return []

    @admin.action(
        description="Reset selected budgets (zero spend, new period)", permissions=["change"]
    )
    def reset_budgets(self, request: HttpRequest, queryset: QuerySet[Budget]) -> None:
        budgets = self.writable_or_deny(request, queryset)
        for budget in budgets:
            before = audit_snapshot(budget)
            budget_reset(budget=budget)
            audit_record(
                action="budget.reset",
                target=budget,
                organization_id=organization_id_of(budget),
                before=before,
                after=audit_snapshot(budget),
            )
        self.message_user(request, f"Reset {len(budgets)} budget(s).", messages.SUCCESS)


@admin.register(ModelPrice)
class ModelPriceAdmin(ScopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "model",
        "provider",
        "deployment",
        "input_cost_per_token",
        "output_cost_per_token",
        "effective_from",
        "effective_to",
    ]
    list_filter = ["provider"]
    search_fields = ["model", "provider", "source"]
    autocomplete_fields = ["deployment"]
    readonly_fields = ["created_at"]


@admin.register(RequestLog)
class RequestLogAdmin(ScopedAdminMixin, admin.ModelAdmin):
    """The request log is written by the data plane only: read it here, never edit it."""

    selector = staticmethod(request_log_list)
    scoped_access = "org"
    list_display = [
        "created_at",
        "request_id",
        "endpoint",
        "model",
        "provider",
        "status_code",
        "total_tokens",
        "cost",
        "latency_ms",
        "organization_id",
        "team_id",
        "key_id",
    ]
    list_filter = ["provider", "endpoint", "status_code", "stream"]
    search_fields = ["request_id", "model", "deployment", "end_customer"]
    date_hierarchy = "created_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
