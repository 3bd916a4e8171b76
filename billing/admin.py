"""Admin for budgets (reset action, spend read-only), prices and the request log (read-only),
the spend dashboard (charts from the daily rollups and today's request log) and the
unpriced-model warning."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from billing.analytics import (
    AnalyticsInputError,
    analytics_cache_get,
    analytics_insights_get,
    analytics_performance_get,
    analytics_range_check,
    analytics_usage_get,
)
from billing.models import (
    SCOPE_FIELDS,
    AlertIncident,
    Budget,
    BudgetScope,
    GuardrailDecision,
    ModelPrice,
    RequestLog,
)
from billing.pricing import MODEL_PRICE_FIELDS, price_value_problem
from billing.selectors import (
    budget_list,
    cache_chart_data,
    guardrail_decision_list,
    request_log_list,
    spend_chart_data,
    unpriced_usage_list,
)
from billing.services import (
    EntityLimits,
    budget_changes_broadcast,
    budget_reset,
    budget_upsert,
    model_price_changed,
)
from tenants.admin_scope import (
    ReadOnlyAdminMixin,
    ScopedAdminMixin,
    organization_id_of,
    request_principal,
)
from tenants.audit import audit_record, audit_snapshot
from tenants.models import Organization, Team
from tenants.principals import Principal
from tenants.selectors import organization_list, team_list

DASHBOARD_DEFAULT_DAYS = 30
DASHBOARD_MAX_DAYS = 366
UNPRICED_WARNING_DAYS = 30
UNPRICED_WARNING_LIMIT = 10


def _today() -> date:
    return timezone.now().astimezone(UTC).date()


class SpendDashboardForm(forms.Form):
    """The dashboard's filters; choices are the caller's organizations and teams only."""

    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    organization = forms.ModelChoiceField(
        queryset=Organization.objects.none(), required=False, empty_label="All organizations"
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), required=False, widget=forms.HiddenInput
    )

    def __init__(self, query: QueryDict, *, principal: Principal) -> None:
        end = _today()
        data = {
            "end": end.isoformat(),
            "start": (end - timedelta(days=DASHBOARD_DEFAULT_DAYS - 1)).isoformat(),
            **{name: value for name, value in query.items() if value},
        }
        super().__init__(data)
        organizations = organization_list(principal=principal).order_by("name")
        self.fields["organization"].queryset = organizations  # type: ignore[attr-defined]
        self.fields["team"].queryset = team_list(principal=principal)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("end", "The end comes before the start.")
        elif start and end and (end - start).days >= DASHBOARD_MAX_DAYS:
            self.add_error("start", f"Choose at most {DASHBOARD_MAX_DAYS} days.")
        return data


def spend_dashboard_view(request: HttpRequest) -> HttpResponse:
    """Spend and tokens over time per team and per model, scoped like the rest of admin."""
    principal = request_principal(request)
    form = SpendDashboardForm(request.GET, principal=principal)
    chart = None
    if form.is_valid():
        data = form.cleaned_data
        chart = spend_chart_data(
            principal=principal,
            start=data["start"],
            end=data["end"],
            organization_id=data["organization"].pk if data["organization"] else None,
            team_id=data["team"].pk if data["team"] else None,
        )
        chart["cache"] = cache_chart_data(
            principal=principal,
            start=data["start"],
            end=data["end"],
            organization_id=data["organization"].pk if data["organization"] else None,
            team_id=data["team"].pk if data["team"] else None,
        )
    unpriced_warning_add(request)
    context = {
        **admin.site.each_context(request),
        "title": "Spend dashboard",
        "form": form,
        "chart": chart,
        "team": form.cleaned_data.get("team") if chart else None,
    }
    return TemplateResponse(request, "admin/billing/spend_dashboard.html", context)


ANALYTICS_DEFAULT_DAYS = 7


class AnalyticsDashboardForm(forms.Form):
    """The analytics page's filters: UTC days (inclusive), the bucket, and the caller's
    organizations and teams only."""

    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    bucket = forms.ChoiceField(choices=[("day", "Day"), ("hour", "Hour")])
    organization = forms.ModelChoiceField(
        queryset=Organization.objects.none(), required=False, empty_label="All organizations"
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), required=False, empty_label="All teams"
    )

    def __init__(self, query: QueryDict, *, principal: Principal) -> None:
        end = _today()
        data = {
            "end": end.isoformat(),
            "start": (end - timedelta(days=ANALYTICS_DEFAULT_DAYS - 1)).isoformat(),
            "bucket": "day",
            **{name: value for name, value in query.items() if value},
        }
        super().__init__(data)
        organizations = organization_list(principal=principal).order_by("name")
        self.fields["organization"].queryset = organizations  # type: ignore[attr-defined]
        teams = team_list(principal=principal).select_related("organization").order_by("name")
        self.fields["team"].queryset = teams  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end, bucket = data.get("start"), data.get("end"), data.get("bucket")
        if start and end and bucket:
            try:
                data["span"] = analytics_range_check(
                    start=datetime.combine(start, time.min, tzinfo=UTC),
                    end=datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
                    bucket=bucket,
                )
            except AnalyticsInputError as error:
                self.add_error(error.field if error.field in self.fields else None, error.message)
        return data


def analytics_dashboard_view(request: HttpRequest) -> HttpResponse:
    """Performance, usage, cache and cost insights over time, scoped like the rest of admin."""
    principal = request_principal(request)
    form = AnalyticsDashboardForm(request.GET, principal=principal)
    charts = insights = None
    if form.is_valid():
        data = form.cleaned_data
        span = data["span"]
        filters: dict[str, Any] = {}
        if data["organization"]:
            filters["organization_id"] = data["organization"].pk
        if data["team"]:
            filters["team_id"] = data["team"].pk
        try:
            charts = {
                "performance": analytics_performance_get(
                    principal=principal, span=span, filters=filters
                ),
                "teams": analytics_usage_get(
                    principal=principal, span=span, group_by="team", filters=filters
                ),
                "models": analytics_usage_get(
                    principal=principal, span=span, group_by="model", filters=filters
                ),
                "cache": analytics_cache_get(principal=principal, span=span, filters=filters),
            }
            insights = analytics_insights_get(principal=principal, span=span, filters=filters)
        except AnalyticsInputError as error:
            form.add_error(None, error.message)
            charts = insights = None
    context = {
        **admin.site.each_context(request),
        "title": "Analytics",
        "form": form,
        "charts": charts,
        "insights": insights,
    }
    return TemplateResponse(request, "admin/billing/analytics.html", context)


def unpriced_warning_add(request: HttpRequest) -> None:
    """Warn (admin messages) about models used at zero cost for want of a price."""
    principal = request_principal(request)
    since = _today() - timedelta(days=UNPRICED_WARNING_DAYS - 1)
    rows = unpriced_usage_list(principal=principal, since=since)
    for row in rows[:UNPRICED_WARNING_LIMIT]:
        name = f"{row['provider']}/{row['model']}" if row["provider"] else row["model"]
        where = f" on deployment {row['deployment']}" if row["deployment"] else ""
        text = format_html(
            "No price for <strong>{}</strong>{}: {} request(s) recorded at zero cost since {}"
            " (last on {}).",
            name,
            where,
            row["requests"],
            since.isoformat(),
            row["last_day"].isoformat(),
        )
        messages.warning(request, format_html("{} {}", text, _price_link(principal, row)))
    if len(rows) > UNPRICED_WARNING_LIMIT:
        messages.warning(request, f"{len(rows) - UNPRICED_WARNING_LIMIT} more unpriced model(s).")


def _price_link(principal: Principal, row: dict[str, Any]) -> str:
    """Where the caller can set the missing price: a prefilled price override (proxy admins),
    else their own deployment's params."""
    if principal.is_proxy_admin:
        query = {"model": row["model"], "provider": row["provider"]}
        if row["deployment_pk"] is not None:
            query["deployment"] = row["deployment_pk"]
        url = f"{reverse('admin:billing_modelprice_add')}?{urlencode(query)}"
        return format_html('<a href="{}">Set a price</a>', url)
    if row["deployment_pk"] is not None:
        url = reverse("admin:gateway_modeldeployment_change", args=[row["deployment_pk"]])
        return format_html(
            '<a href="{}">Set input_cost_per_token and output_cost_per_token in its params</a>'
            " (or ask a proxy admin for a price override).",
            url,
        )
    return "A proxy admin can set its price."


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
            "rpm_limit",
            "tpm_limit",
            "max_parallel_requests",
        ]
        help_texts = {
            "rpm_limit": "Requests per minute of the whole target (all its keys); empty: none.",
            "tpm_limit": "Tokens per minute of the whole target; empty: none.",
            "max_parallel_requests": "Requests in flight at once of the whole target; empty: none.",
        }

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
            limits=EntityLimits(
                rpm_limit=data.get("rpm_limit"),
                tpm_limit=data.get("tpm_limit"),
                max_parallel_requests=data.get("max_parallel_requests"),
            ),
        )
        for field in Budget._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: Budget) -> None:
        super().delete_model(request, obj)
        budget_changes_broadcast()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Budget]) -> None:
        super().delete_queryset(request, queryset)
        budget_changes_broadcast()

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


class ModelPriceForm(forms.ModelForm):
    class Meta:
        model = ModelPrice
        exclude: list[str] = []

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name in MODEL_PRICE_FIELDS:
            problem = price_value_problem(name, data.get(name))
            if problem and name in self.fields:
                self.add_error(name, problem)
        return data


@admin.register(ModelPrice)
class ModelPriceAdmin(ScopedAdminMixin, admin.ModelAdmin):
    form = ModelPriceForm
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

    def save_model(self, request: HttpRequest, obj: ModelPrice, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        model_price_changed()

    def delete_model(self, request: HttpRequest, obj: ModelPrice) -> None:
        super().delete_model(request, obj)
        model_price_changed()


@admin.register(RequestLog)
class RequestLogAdmin(ReadOnlyAdminMixin, ScopedAdminMixin, admin.ModelAdmin):
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
        "usage_estimated",
        "cost",
        "latency_ms",
        "organization_id",
        "team_id",
        "key_id",
    ]
    list_filter = [
        "provider",
        "endpoint",
        "status_code",
        "stream",
        "usage_estimated",
        "cache_hit",
        "cache_result",
    ]
    search_fields = ["request_id", "model", "deployment", "end_customer"]
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(AlertIncident)
class AlertIncidentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Alert incidents (docs/alerts.md), opened and resolved by the alert rules: the operator's,
    read-only (deployments and spend across tenants)."""

    list_display = [
        "opened_at",
        "rule",
        "subject",
        "severity",
        "summary",
        "resolved_at",
        "last_notified_at",
        "pending",
    ]
    list_filter = ["rule", "severity", "pending"]
    search_fields = ["subject", "summary"]
    date_hierarchy = "opened_at"


@admin.register(GuardrailDecision)
class GuardrailDecisionAdmin(ReadOnlyAdminMixin, ScopedAdminMixin, admin.ModelAdmin):
    """Guardrail decisions (docs/guardrails.md), written by the usage drain: read-only, each
    organization's admins see their own."""

    selector = staticmethod(guardrail_decision_list)
    scoped_access = "org"
    list_display = [
        "created_at",
        "request_id",
        "guardrail",
        "phase",
        "action",
        "category",
        "count",
        "confidence",
        "model",
        "organization_id",
        "team_id",
        "key_id",
    ]
    list_filter = ["action", "phase", "guardrail", "category", "endpoint"]
    search_fields = ["request_id", "guardrail", "category", "model"]
    date_hierarchy = "created_at"
    show_full_result_count = False
