"""Budgets and spend on /api/v1."""

from __future__ import annotations

import csv
import io
from dataclasses import fields
from datetime import date
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from billing.analytics import (
    BUCKETS,
    PERFORMANCE_GROUPS,
    UNUSED_KEY_DAYS,
    USAGE_GROUPS,
    AnalyticsInputError,
    analytics_cache_get,
    analytics_insights_get,
    analytics_performance_get,
    analytics_range_check,
    analytics_usage_get,
)
from billing.models import (
    SCOPE_FIELDS,
    USD,
    Budget,
    BudgetDuration,
    BudgetMode,
    BudgetScope,
    GuardrailDecision,
)
from billing.selectors import (
    CACHE_STATS_GROUPS,
    SPEND_GROUPS,
    SPEND_NAMED_GROUPS,
    budget_list,
    cache_stats_summary,
    guardrail_decision_list,
    spend_summary,
)
from billing.services import EntityLimits, budget_delete, budget_reset, budget_upsert
from keys.models import VirtualKey
from keys.selectors import key_list
from tenants.audit import audit_snapshot
from tenants.models import EndCustomer, Organization, Team, User
from tenants.rest.base import ScopedRelatedField, ScopedViewSet, request_principal
from tenants.selectors import end_customer_list, organization_list, team_list, user_list

_DURATIONS = [value for value in BudgetDuration.values if value]


def _usage_filters(params: dict[str, Any]) -> dict[str, Any]:
    """The request log columns a spend or cache-stats query narrows to."""
    return {
        column: params[param]
        for param, column in (
            ("organization", "organization_id"),
            ("team", "team_id"),
            ("key", "key_id"),
            ("model", "model"),
        )
        if param in params
    }


class BudgetSerializer(serializers.ModelSerializer):
    scope = serializers.ChoiceField(choices=BudgetScope.choices)
    organization = ScopedRelatedField(
        selector=organization_list, queryset=Organization.objects.all(), required=False
    )
    team = ScopedRelatedField(selector=team_list, queryset=Team.objects.all(), required=False)
    user = ScopedRelatedField(selector=user_list, queryset=User.objects.all(), required=False)
    key = ScopedRelatedField(selector=key_list, queryset=VirtualKey.objects.all(), required=False)
    end_customer = ScopedRelatedField(
        selector=end_customer_list, queryset=EndCustomer.objects.all(), required=False
    )
    # Money leaves as fixed-point strings ("0.00002706"); numbers and strings are accepted.
    max_budget = serializers.DecimalField(
        **USD, min_value=0, required=False, allow_null=True, coerce_to_string=True
    )
    soft_budget = serializers.DecimalField(
        **USD, min_value=0, required=False, allow_null=True, coerce_to_string=True
    )
    budget_duration = serializers.ChoiceField(
        source="duration", choices=_DURATIONS, required=False, allow_null=True, allow_blank=True
    )
    mode = serializers.ChoiceField(choices=BudgetMode.choices, required=False)
    spend = serializers.DecimalField(**USD, read_only=True, coerce_to_string=True)
    # The entity's rate limits (null: none), enforced with the key's own on every request.
    rpm_limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    tpm_limit = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    max_parallel_requests = serializers.IntegerField(min_value=1, required=False, allow_null=True)

    class Meta:
        model = Budget
        fields = [
            "id",
            "scope",
            "organization",
            "team",
            "user",
            "key",
            "end_customer",
            "max_budget",
            "soft_budget",
            "budget_duration",
            "mode",
            "spend",
            "rpm_limit",
            "tpm_limit",
            "max_parallel_requests",
            "period_started_at",
            "reset_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "period_started_at", "reset_at", "created_at", "updated_at"]
        validators: list[Any] = []

    def to_representation(self, instance: Budget) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["budget_duration"] = data["budget_duration"] or None
        return data

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if self.instance is not None:
            # The budget's target is fixed; only the limits change.
            for field in ("scope", *SCOPE_FIELDS.values()):
                attrs.pop(field, None)
            return attrs
        field = SCOPE_FIELDS[BudgetScope(attrs["scope"])]
        if attrs.get(field) is None:
            raise serializers.ValidationError(
                {field: [f"A {attrs['scope']} budget needs {field}."]}
            )
        others = [name for name in SCOPE_FIELDS.values() if name != field and attrs.get(name)]
        if others:
            raise serializers.ValidationError({others[0]: ["Give only the budget's target."]})
        return attrs


class BudgetViewSet(ScopedViewSet):
    """Budgets of organizations (proxy admins), teams and end customers (org admins), keys
    (team admins) and users (proxy admins). POST on an existing target updates its budget."""

    selector = staticmethod(budget_list)
    serializer_class = BudgetSerializer
    filter_params = {
        "scope": "scope",
        "organization": "organization_id",
        "team": "team_id",
        "user": "user_id",
        "key": "key_id",
        "end_customer": "end_customer_id",
    }
    ordering_fields = ["created_at", "spend", "max_budget"]

    def _may_manage(self, *, scope: str, target: Any) -> bool:
        principal = self.principal
        if principal.is_proxy_admin:
            return True
        if scope == BudgetScope.TEAM:
            return principal.is_org_admin(target.organization_id)
        if scope == BudgetScope.END_CUSTOMER:
            return principal.is_org_admin(target.organization_id)
        if scope == BudgetScope.KEY:
            return principal.is_team_admin(target.team_id, target.organization_id)
        # Organization and user budgets cap what tenants may spend: proxy admins set them.
        return False

    def check_create(self, data: dict[str, Any]) -> None:
        scope = data["scope"]
        if not self._may_manage(scope=scope, target=data[SCOPE_FIELDS[BudgetScope(scope)]]):
            self.deny()

    def check_change(self, instance: Budget) -> None:
        target = getattr(instance, SCOPE_FIELDS[BudgetScope(instance.scope)])
        if not self._may_manage(scope=instance.scope, target=target):
            self.deny()

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        self.check_create(data)
        field = SCOPE_FIELDS[BudgetScope(data["scope"])]
        current = Budget.objects.filter(scope=data["scope"], **{field: data[field]}).first()
        existed = current is not None
        budget = self.perform_service_create(data, current=current)
        self.audit(action="update" if existed else "create", instance=budget, before=None)
        answer = status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        return Response(self.created_data(budget), status=answer)

    def perform_service_create(
        self, data: dict[str, Any], *, current: Budget | None = None
    ) -> Budget:
        """Create, or update `current` (the target's budget, which `create` has looked up)."""
        scope = BudgetScope(data["scope"])
        field = SCOPE_FIELDS[scope]
        return budget_upsert(
            scope=scope,
            target=data[field],
            max_budget=data.get("max_budget"),
            soft_budget=data.get("soft_budget"),
            duration=data.get("duration") or BudgetDuration.NONE,
            mode=data.get("mode") or BudgetMode.ENFORCE,
            limits=_limits_given(data, current=current),
        )

    def perform_service_update(self, instance: Budget, data: dict[str, Any]) -> Budget:
        duration = data.get("duration", instance.duration)
        return budget_upsert(
            scope=instance.scope,
            target=getattr(instance, SCOPE_FIELDS[BudgetScope(instance.scope)]),
            max_budget=data.get("max_budget", instance.max_budget),
            soft_budget=data.get("soft_budget", instance.soft_budget),
            duration=duration or BudgetDuration.NONE,
            mode=data.get("mode", instance.mode),
            limits=_limits_given(data, current=instance),
        )

    def perform_service_destroy(self, instance: Budget) -> None:
        budget_delete(budget=instance)

    @extend_schema(request=None, responses=BudgetSerializer)
    @action(detail=True, methods=["post"])
    def reset(self, request: Request, pk: str | None = None) -> Response:
        """Start a new period now with zero spend."""
        budget = self.get_object()
        self.check_change(budget)
        before = audit_snapshot(budget)
        budget = budget_reset(budget=budget)
        self.audit(action="reset", instance=budget, before=before)
        return Response(self.get_serializer(budget).data)


def _limits_given(data: dict[str, Any], *, current: Budget | None) -> EntityLimits | None:
    """The rate limits the request gave, those it left out at their current values; None when it
    gave none (they stay as they are)."""
    names = [limit.name for limit in fields(EntityLimits)]
    if not any(name in data for name in names):
        return None
    return EntityLimits(
        **{name: data[name] if name in data else getattr(current, name, None) for name in names}
    )


class SpendQuerySerializer(serializers.Serializer):
    group_by = serializers.ChoiceField(choices=sorted(SPEND_GROUPS), default="key")
    start = serializers.DateField(required=False, help_text="First UTC day, inclusive.")
    end = serializers.DateField(required=False, help_text="Last UTC day, inclusive.")
    organization = serializers.IntegerField(required=False)
    team = serializers.IntegerField(required=False)
    key = serializers.IntegerField(required=False)
    model = serializers.CharField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start: date | None = attrs.get("start")
        end: date | None = attrs.get("end")
        if start and end and start > end:
            raise serializers.ValidationError({"end": ["end is before start."]})
        return attrs


# Sums of USD columns: wider than one row's, same 8 decimal places.
_USD_SUM = {**USD, "max_digits": 24}


class SpendTotalsSerializer(serializers.Serializer):
    spend = serializers.DecimalField(
        **_USD_SUM, coerce_to_string=True, help_text='USD, a fixed-point string: "0.00002706".'
    )
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    requests = serializers.IntegerField()


class SpendRowSerializer(SpendTotalsSerializer):
    """One group. Only the group_by field (and its name, for key, team, organization and user)
    is present; the schema lists every one."""

    key = serializers.IntegerField(required=False, allow_null=True)
    key_name = serializers.CharField(
        required=False,
        allow_null=True,
        help_text='The key\'s name; "master key" for requests without a virtual key (the master '
        "key or an identity provider's token); null for a deleted key.",
    )
    team = serializers.IntegerField(required=False, allow_null=True)
    team_name = serializers.CharField(required=False, allow_null=True)
    organization = serializers.IntegerField(required=False, allow_null=True)
    organization_name = serializers.CharField(required=False, allow_null=True)
    user = serializers.IntegerField(required=False, allow_null=True)
    user_name = serializers.CharField(required=False, allow_null=True)
    end_customer = serializers.CharField(
        required=False, allow_null=True, help_text="null: requests without an end customer."
    )
    model = serializers.CharField(required=False)
    tag = serializers.CharField(required=False)
    day = serializers.DateField(required=False)


class SpendSerializer(serializers.Serializer):
    group_by = serializers.CharField()
    start = serializers.DateField(allow_null=True)
    end = serializers.DateField(allow_null=True)
    results = SpendRowSerializer(
        many=True,
        help_text="One row per group: the group's value under the group_by name, then totals.",
    )
    total = SpendTotalsSerializer()


class SpendCSVRenderer(BaseRenderer):
    """`?format=csv`: one line per group, then a `total` line; errors stay JSON-shaped text."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None):  # type: ignore[no-untyped-def]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if not isinstance(data, dict) or "results" not in data:
            writer.writerow(["error"])
            writer.writerow([str(data)])
            return buffer.getvalue().encode()
        group_by = data["group_by"]
        named = [f"{group_by}_name"] if group_by in SPEND_NAMED_GROUPS else []
        columns = ["spend", "prompt_tokens", "completion_tokens", "total_tokens", "requests"]
        writer.writerow([group_by, *named, *columns])
        for row in data["results"]:
            cells = [row[group_by], *(row.get(name) for name in named)]
            writer.writerow(
                [*("" if cell is None else cell for cell in cells), *(row[c] for c in columns)]
            )
        writer.writerow(["total", *("" for _ in named), *(data["total"][c] for c in columns)])
        response = (renderer_context or {}).get("response")
        if response is not None:
            response["Content-Disposition"] = f'attachment; filename="spend-{group_by}.csv"'
        return buffer.getvalue().encode()


class SpendView(APIView):
    """Spend and token totals of the caller's requests (daily rollups, then the raw log for the
    days not rolled up yet), grouped; `?format=csv` exports them."""

    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, SpendCSVRenderer]

    @extend_schema(
        parameters=[
            OpenApiParameter("group_by", str, enum=sorted(SPEND_GROUPS)),
            OpenApiParameter("start", date),
            OpenApiParameter("end", date),
            OpenApiParameter("organization", int),
            OpenApiParameter("team", int),
            OpenApiParameter("key", int),
            OpenApiParameter("model", str),
            OpenApiParameter("format", str, enum=["json", "csv"]),
        ],
        responses=SpendSerializer,
    )
    def get(self, request: Request) -> Response:
        query = SpendQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        filters = _usage_filters(params)
        summary = spend_summary(
            principal=request_principal(request),
            group_by=params["group_by"],
            start=params.get("start"),
            end=params.get("end"),
            filters=filters,
        )
        return Response(summary)


class CacheStatsQuerySerializer(SpendQuerySerializer):
    group_by = serializers.ChoiceField(choices=sorted(CACHE_STATS_GROUPS), default="model")


class CacheStatsTotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField(help_text="Requests the cache saw: hits, misses, bypasses.")
    hits = serializers.IntegerField(help_text="Exact and semantic hits.")
    semantic_hits = serializers.IntegerField(help_text="Of the hits, the semantic tier's.")
    misses = serializers.IntegerField()
    bypasses = serializers.IntegerField()
    hit_rate = serializers.FloatField(
        allow_null=True, help_text="hits / (hits + misses); null without either."
    )
    saved_cost = serializers.DecimalField(
        **_USD_SUM,
        coerce_to_string=True,
        help_text="USD the upstream calls of the hits would have cost, a fixed-point string.",
    )
    saved_tokens = serializers.IntegerField()
    saved_latency_ms = serializers.IntegerField(
        help_text="The upstream latency the hits' stored answers took when they were made."
    )


class CacheStatsRowSerializer(CacheStatsTotalsSerializer):
    """One group: only the group_by field (and its name for key, team and organization)."""

    key = serializers.IntegerField(required=False, allow_null=True)
    key_name = serializers.CharField(required=False, allow_null=True)
    team = serializers.IntegerField(required=False, allow_null=True)
    team_name = serializers.CharField(required=False, allow_null=True)
    organization = serializers.IntegerField(required=False, allow_null=True)
    organization_name = serializers.CharField(required=False, allow_null=True)
    model = serializers.CharField(required=False)
    day = serializers.DateField(required=False)


class CacheStatsSerializer(serializers.Serializer):
    group_by = serializers.CharField()
    start = serializers.DateField(allow_null=True)
    end = serializers.DateField(allow_null=True)
    results = CacheStatsRowSerializer(many=True)
    total = CacheStatsTotalsSerializer()


class CacheStatsView(APIView):
    """Response cache analytics (docs/caching.md): hits, misses, hit rate, tokens, cost and
    latency saved of the caller's requests, scoped like /api/v1/spend, grouped."""

    @extend_schema(
        parameters=[
            OpenApiParameter("group_by", str, enum=sorted(CACHE_STATS_GROUPS)),
            OpenApiParameter("start", date),
            OpenApiParameter("end", date),
            OpenApiParameter("organization", int),
            OpenApiParameter("team", int),
            OpenApiParameter("key", int),
            OpenApiParameter("model", str),
        ],
        responses=CacheStatsSerializer,
    )
    def get(self, request: Request) -> Response:
        query = CacheStatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        filters = _usage_filters(params)
        summary = cache_stats_summary(
            principal=request_principal(request),
            group_by=params["group_by"],
            start=params.get("start"),
            end=params.get("end"),
            filters=filters,
        )
        return Response(summary)


class GuardrailDecisionSerializer(serializers.ModelSerializer):
    class Meta:
        model = GuardrailDecision
        fields = [
            "id",
            "created_at",
            "request_id",
            "organization_id",
            "team_id",
            "key_id",
            "endpoint",
            "model",
            "guardrail",
            "phase",
            "action",
            "category",
            "count",
            "confidence",
        ]


class GuardrailDecisionQuerySerializer(serializers.Serializer):
    guardrail = serializers.CharField(required=False)
    action = serializers.ChoiceField(choices=["block", "mask", "warn"], required=False)
    phase = serializers.ChoiceField(
        choices=["pre_call", "during_call", "post_call"], required=False
    )
    category = serializers.CharField(required=False)
    request_id = serializers.CharField(required=False)
    organization = serializers.IntegerField(required=False)
    team = serializers.IntegerField(required=False)
    key = serializers.IntegerField(required=False)


class GuardrailDecisionListView(generics.ListAPIView):
    """Guardrail decisions (docs/guardrails.md) of the requests the caller may see, scoped like
    /api/v1/spend, newest first, paginated (`limit`, `offset`)."""

    serializer_class = GuardrailDecisionSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(name, kind)
            for name, kind in (
                ("guardrail", str),
                ("action", str),
                ("phase", str),
                ("category", str),
                ("request_id", str),
                ("organization", int),
                ("team", int),
                ("key", int),
            )
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        query = GuardrailDecisionQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        names = {"organization": "organization_id", "team": "team_id", "key": "key_id"}
        filters = {names.get(name, name): value for name, value in query.validated_data.items()}
        return guardrail_decision_list(principal=request_principal(self.request), filters=filters)


# ---- Analytics (docs/analytics.md) ---------------------------------------------------------------


_ID_MAX = 2**63 - 1  # a database id (bigint)


class AnalyticsQuerySerializer(serializers.Serializer):
    start = serializers.DateTimeField(
        required=False, help_text="ISO 8601 (a date is its UTC midnight); default: 7 days ago."
    )
    end = serializers.DateTimeField(required=False, help_text="Exclusive; default: now.")
    bucket = serializers.ChoiceField(choices=sorted(BUCKETS), default="day")
    organization = serializers.IntegerField(required=False, min_value=1, max_value=_ID_MAX)
    team = serializers.IntegerField(required=False, min_value=1, max_value=_ID_MAX)
    key = serializers.IntegerField(required=False, min_value=1, max_value=_ID_MAX)
    model = serializers.CharField(required=False, max_length=200)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            attrs["span"] = analytics_range_check(
                start=attrs.get("start"), end=attrs.get("end"), bucket=attrs["bucket"]
            )
        except AnalyticsInputError as error:
            raise serializers.ValidationError({error.field: [error.message]}) from error
        return attrs


class PerformanceQuerySerializer(AnalyticsQuerySerializer):
    group_by = serializers.ChoiceField(choices=list(PERFORMANCE_GROUPS), default="model")


class UsageQuerySerializer(AnalyticsQuerySerializer):
    group_by = serializers.ChoiceField(choices=sorted(USAGE_GROUPS), default="team")


class InsightsQuerySerializer(AnalyticsQuerySerializer):
    unused_days = serializers.IntegerField(min_value=1, max_value=365, default=UNUSED_KEY_DAYS)


_ANALYTICS_PARAMETERS = [
    OpenApiParameter("start", OpenApiTypes.DATETIME),
    OpenApiParameter("end", OpenApiTypes.DATETIME),
    OpenApiParameter("bucket", str, enum=sorted(BUCKETS)),
    OpenApiParameter("organization", int),
    OpenApiParameter("team", int),
    OpenApiParameter("key", int),
    OpenApiParameter("model", str),
]


class PerformanceFiguresSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    errors = serializers.IntegerField(help_text="Status 5xx: Ogem's and upstream failures.")
    client_errors = serializers.IntegerField(help_text="Status 4xx: refusals and bad input.")
    error_rate = serializers.FloatField(allow_null=True, help_text="errors / requests.")
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)
    ttft_p50_ms = serializers.FloatField(allow_null=True, help_text="Streams only.")
    ttft_p95_ms = serializers.FloatField(allow_null=True)
    requests_per_minute = serializers.FloatField()
    tokens_per_second = serializers.FloatField(help_text="Prompt + completion, wall clock.")
    output_tokens_per_second = serializers.FloatField(
        allow_null=True, help_text="Completion tokens per second of successful requests' latency."
    )
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()


class PerformanceBucketSerializer(PerformanceFiguresSerializer):
    bucket = serializers.DateTimeField()


class PerformanceRowSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="The model group (for a deployment: its model).")
    deployment = serializers.CharField(required=False)
    provider = serializers.CharField(required=False)
    total = PerformanceFiguresSerializer()
    series = PerformanceBucketSerializer(many=True)


class PerformanceSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    bucket = serializers.CharField()
    group_by = serializers.CharField()
    buckets = serializers.ListField(child=serializers.DateTimeField())
    results = PerformanceRowSerializer(many=True)
    other_groups = serializers.IntegerField(help_text="Groups beyond the busiest 20, left out.")
    total = PerformanceFiguresSerializer()


class UsageFiguresSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    spend = serializers.DecimalField(**_USD_SUM, coerce_to_string=True)


class UsageBucketSerializer(UsageFiguresSerializer):
    bucket = serializers.DateTimeField()


class UsageRowSerializer(serializers.Serializer):
    team = serializers.IntegerField(required=False, allow_null=True)
    team_name = serializers.CharField(required=False, allow_null=True)
    model = serializers.CharField(required=False)
    other = serializers.BooleanField(help_text="The groups beyond the 20 biggest, summed.")
    total = UsageFiguresSerializer()
    series = UsageBucketSerializer(many=True)


class UsageSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    bucket = serializers.CharField()
    group_by = serializers.CharField()
    buckets = serializers.ListField(child=serializers.DateTimeField())
    results = UsageRowSerializer(many=True)
    total = UsageFiguresSerializer()


class CacheBucketSerializer(CacheStatsTotalsSerializer):
    bucket = serializers.DateTimeField()


class CacheModelSerializer(CacheStatsTotalsSerializer):
    model = serializers.CharField()


class CacheAnalyticsSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    bucket = serializers.CharField()
    buckets = serializers.ListField(child=serializers.DateTimeField())
    series = CacheBucketSerializer(many=True)
    models = CacheModelSerializer(many=True)
    total = CacheStatsTotalsSerializer()


class CheaperModelSerializer(serializers.Serializer):
    organization = serializers.IntegerField(allow_null=True)
    team = serializers.IntegerField(allow_null=True)
    team_name = serializers.CharField(allow_null=True)
    model = serializers.CharField()
    mode = serializers.CharField()
    requests = serializers.IntegerField()
    prompt_tokens = serializers.IntegerField()
    completion_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(**_USD_SUM, coerce_to_string=True)
    cheaper_model = serializers.CharField()
    estimated_cost = serializers.DecimalField(**_USD_SUM, coerce_to_string=True)
    saving = serializers.DecimalField(**_USD_SUM, coerce_to_string=True)


class CheaperModelsSerializer(serializers.Serializer):
    results = CheaperModelSerializer(many=True)
    total_saving = serializers.DecimalField(**_USD_SUM, coerce_to_string=True)


class UnusedKeySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    organization = serializers.IntegerField(allow_null=True)
    team = serializers.IntegerField(allow_null=True)
    user = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="null: never used.")


class BudgetBurnSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    scope = serializers.ChoiceField(choices=BudgetScope.choices)
    organization = serializers.IntegerField(required=False)
    team = serializers.IntegerField(required=False)
    user = serializers.IntegerField(required=False)
    key = serializers.IntegerField(required=False)
    end_customer = serializers.IntegerField(required=False)
    target_name = serializers.CharField()
    max_budget = serializers.DecimalField(**_USD_SUM, coerce_to_string=True)
    spend = serializers.DecimalField(**_USD_SUM, coerce_to_string=True)
    remaining = serializers.DecimalField(**_USD_SUM, coerce_to_string=True)
    period_started_at = serializers.DateTimeField()
    reset_at = serializers.DateTimeField(allow_null=True)
    daily_burn_rate = serializers.DecimalField(**_USD_SUM, coerce_to_string=True)
    exhausted = serializers.BooleanField()
    projected_exhaustion_at = serializers.DateTimeField(allow_null=True)


class InsightsSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    cheaper_models = CheaperModelsSerializer()
    unused_keys = UnusedKeySerializer(many=True)
    budgets = BudgetBurnSerializer(many=True)


class _AnalyticsView(APIView):
    query_class: type[AnalyticsQuerySerializer] = AnalyticsQuerySerializer

    def params(self, request: Request) -> dict[str, Any]:
        query = self.query_class(data=request.query_params)
        query.is_valid(raise_exception=True)
        return query.validated_data

    def answer(self, compute: Any) -> Response:
        try:
            return Response(compute())
        except AnalyticsInputError as error:  # too many rows for the embedded database
            raise serializers.ValidationError({error.field: [error.message]}) from error


class PerformanceAnalyticsView(_AnalyticsView):
    """Latency and TTFT p50/p95, error rate and throughput per model group or deployment over
    time, of the caller's requests (scoped like /api/v1/spend)."""

    query_class = PerformanceQuerySerializer

    @extend_schema(
        parameters=[
            *_ANALYTICS_PARAMETERS,
            OpenApiParameter("group_by", str, enum=list(PERFORMANCE_GROUPS)),
        ],
        responses=PerformanceSerializer,
    )
    def get(self, request: Request) -> Response:
        params = self.params(request)
        return self.answer(
            lambda: analytics_performance_get(
                principal=request_principal(request),
                span=params["span"],
                group_by=params["group_by"],
                filters=_usage_filters(params),
            )
        )


class UsageAnalyticsView(_AnalyticsView):
    """Requests, tokens and spend per team or model over time."""

    query_class = UsageQuerySerializer

    @extend_schema(
        parameters=[
            *_ANALYTICS_PARAMETERS,
            OpenApiParameter("group_by", str, enum=["model", "team"]),
        ],
        responses=UsageSerializer,
    )
    def get(self, request: Request) -> Response:
        params = self.params(request)
        return self.answer(
            lambda: analytics_usage_get(
                principal=request_principal(request),
                span=params["span"],
                group_by=params["group_by"],
                filters=_usage_filters(params),
            )
        )


class CacheAnalyticsView(_AnalyticsView):
    """The response cache's hit rate and savings over time and per model."""

    @extend_schema(parameters=_ANALYTICS_PARAMETERS, responses=CacheAnalyticsSerializer)
    def get(self, request: Request) -> Response:
        params = self.params(request)
        return self.answer(
            lambda: analytics_cache_get(
                principal=request_principal(request),
                span=params["span"],
                filters=_usage_filters(params),
            )
        )


class InsightsAnalyticsView(_AnalyticsView):
    """Cost-optimisation insights: cheaper models of the same capability class per team and
    model (over the range), keys unused for `unused_days` days, budgets' burn-down."""

    query_class = InsightsQuerySerializer

    @extend_schema(
        parameters=[*_ANALYTICS_PARAMETERS, OpenApiParameter("unused_days", int)],
        responses=InsightsSerializer,
    )
    def get(self, request: Request) -> Response:
        params = self.params(request)
        return self.answer(
            lambda: analytics_insights_get(
                principal=request_principal(request),
                span=params["span"],
                filters=_usage_filters(params),
                unused_days=params["unused_days"],
            )
        )
