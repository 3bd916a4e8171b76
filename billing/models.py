from __future__ import annotations

import functools
import operator
from decimal import Decimal

from django.conf import settings
from django.db import models

# Shared with keys (a key's own budget), which sits below billing.
from keys.budgets import USD, BudgetDuration


class BudgetScope(models.TextChoices):
    ORGANIZATION = "organization", "Organization"
    TEAM = "team", "Team"
    USER = "user", "User"
    KEY = "key", "Key"
    END_CUSTOMER = "end_customer", "End customer"


class BudgetMode(models.TextChoices):
    ENFORCE = "enforce", "Enforce (refuse over budget)"
    AUDIT = "audit", "Audit (log only)"


SCOPE_FIELDS = {
    BudgetScope.ORGANIZATION: "organization",
    BudgetScope.TEAM: "team",
    BudgetScope.USER: "user",
    BudgetScope.KEY: "key",
    BudgetScope.END_CUSTOMER: "end_customer",
}


class BudgetTemplate(models.Model):
    """A named set of limits: LiteLLM's budget table row (`/budget/new`). An organization, end
    customer or key created or updated with its `budget_id` gets these limits on its own
    Budget (copied then: a later change to the template does not reach it)."""

    budget_id = models.CharField(max_length=100, unique=True)
    max_budget = models.DecimalField(**USD, null=True, blank=True)
    soft_budget = models.DecimalField(**USD, null=True, blank=True)
    duration = models.CharField(
        "budget duration", max_length=4, choices=BudgetDuration.choices, blank=True, default=""
    )
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    max_parallel_requests = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["budget_id"]

    def __str__(self) -> str:
        return self.budget_id


class Budget(models.Model):
    """A spending limit on exactly one entity, named by ``scope``."""

    scope = models.CharField(max_length=20, choices=BudgetScope.choices)
    organization = models.ForeignKey(
        "tenants.Organization", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    team = models.ForeignKey(
        "tenants.Team", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    key = models.ForeignKey(
        "keys.VirtualKey", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    end_customer = models.ForeignKey(
        "tenants.EndCustomer", on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )

    max_budget = models.DecimalField(**USD, null=True, blank=True)
    soft_budget = models.DecimalField(**USD, null=True, blank=True)
    # `budget_duration` on the management API, in admin and in the docs.
    duration = models.CharField(
        "budget duration",
        max_length=4,
        choices=BudgetDuration.choices,
        default=BudgetDuration.NONE,
        blank=True,
    )
    mode = models.CharField(max_length=10, choices=BudgetMode.choices, default=BudgetMode.ENFORCE)
    period_started_at = models.DateTimeField(null=True, blank=True)
    reset_at = models.DateTimeField(null=True, blank=True)
    # Spend settled in the current period (Redis holds the live counter; this is its durable copy).
    spend = models.DecimalField(**USD, default=Decimal("0"))
    soft_alert_sent_for = models.DateTimeField(null=True, blank=True)
    # Rate limits of the same entity (LiteLLM keeps them on its budget table too); null: none.
    rpm_limit = models.PositiveIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(null=True, blank=True)
    max_parallel_requests = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "-created_at"]
        constraints = [
            *[
                models.UniqueConstraint(
                    fields=[field],
                    condition=models.Q(**{f"{field}__isnull": False}) & models.Q(scope=scope),
                    name=f"budget_one_per_{field}",
                )
                for scope, field in SCOPE_FIELDS.items()
            ],
            models.CheckConstraint(
                condition=functools.reduce(
                    operator.or_,
                    (
                        models.Q(scope=scope) & models.Q(**{f"{field}__isnull": False})
                        for scope, field in SCOPE_FIELDS.items()
                    ),
                ),
                name="budget_scope_has_target",
            ),
        ]

    def __str__(self) -> str:
        limit = f"${self.max_budget}" if self.max_budget is not None else "unlimited"
        return f"{self.get_scope_display()} budget {limit}"


class ModelPrice(models.Model):
    """USD prices for a model, optionally for one deployment, valid from ``effective_from``."""

    model = models.CharField(max_length=200, db_index=True)
    provider = models.CharField(max_length=50, blank=True)
    deployment = models.ForeignKey(
        "gateway.ModelDeployment",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="prices",
    )
    input_cost_per_token = models.DecimalField(**USD, default=Decimal("0"))
    output_cost_per_token = models.DecimalField(**USD, default=Decimal("0"))
    cache_read_input_cost_per_token = models.DecimalField(**USD, null=True, blank=True)
    cache_creation_input_cost_per_token = models.DecimalField(**USD, null=True, blank=True)
    reasoning_cost_per_token = models.DecimalField(**USD, null=True, blank=True)
    # {"1024x1024/standard": 0.04, ...}: size/quality to USD per image.
    cost_per_image = models.JSONField(default=dict, blank=True)
    input_cost_per_audio_second = models.DecimalField(**USD, null=True, blank=True)
    # Audio tokens (the Realtime API), priced apart from text tokens; empty: text prices.
    input_cost_per_audio_token = models.DecimalField(**USD, null=True, blank=True)
    output_cost_per_audio_token = models.DecimalField(**USD, null=True, blank=True)
    cache_read_input_audio_token_cost = models.DecimalField(**USD, null=True, blank=True)
    output_cost_per_character = models.DecimalField(**USD, null=True, blank=True)
    cost_per_request = models.DecimalField(**USD, null=True, blank=True)
    effective_from = models.DateTimeField(null=True, blank=True)
    effective_to = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "-effective_from"]

    def __str__(self) -> str:
        return f"{self.model} ({self.provider or 'any provider'})"


class RequestLog(models.Model):
    """One finished /v1 request and its cost. Written in batches, idempotent on request_id."""

    request_id = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(db_index=True)
    organization_id = models.BigIntegerField(null=True, blank=True)
    team_id = models.BigIntegerField(null=True, blank=True)
    key_id = models.BigIntegerField(null=True, blank=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    end_customer = models.CharField(max_length=255, blank=True)
    endpoint = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    provider = models.CharField(max_length=50, blank=True)
    deployment = models.CharField(max_length=200, blank=True)
    status_code = models.PositiveSmallIntegerField()
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(**USD, default=Decimal("0"))
    latency_ms = models.PositiveIntegerField(default=0)
    # Streams: milliseconds to the first chunk from the upstream (time to first token).
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    stream = models.BooleanField(default=False)
    cancelled = models.BooleanField(default=False)
    # The upstream reported no (possible) token counts: Ogem estimated them (docs/governance.md).
    usage_estimated = models.BooleanField(default=False)
    # Answered by the response cache (docs/caching.md): no upstream call was made.
    cache_hit = models.BooleanField(default=False)
    # What the cache stage did: "hit", "semantic-hit", "miss", "bypass", or "" (no cache
    # configured, or the request never reached it). Cache analytics (/api/v1/cache/stats) count
    # hits and misses from it.
    cache_result = models.CharField(max_length=16, blank=True, default="")
    # A hit's savings: what the upstream call would have cost (the group's price for the stored
    # usage, whatever `charge_hits` says), its tokens, and the original answer's upstream latency.
    cache_saved_cost = models.DecimalField(**USD, null=True, blank=True)
    cache_saved_tokens = models.PositiveIntegerField(null=True, blank=True)
    cache_saved_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True)
    # A line of a batch Ogem ran (docs/batches.md): the batch's id; its cost is already the
    # batch-priced one. "" for every other request.
    batch_id = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["key_id", "created_at"]),
            models.Index(fields=["team_id", "created_at"]),
            models.Index(fields=["organization_id", "created_at"]),
            # A batch's cost is the sum of its lines; partial: live requests never enter it.
            models.Index(
                fields=["batch_id"],
                condition=~models.Q(batch_id=""),
                name="billing_requestlog_batch",
            ),
        ]

    def __str__(self) -> str:
        return self.request_id


class GuardrailDecision(models.Model):
    """What a guardrail decided on one request (docs/guardrails.md): written by the usage drain
    from the request's usage event, never the text that matched. One row per (request,
    guardrail, phase, category), with how many findings it had; idempotent like RequestLog."""

    request_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(db_index=True)
    organization_id = models.BigIntegerField(null=True, blank=True)
    team_id = models.BigIntegerField(null=True, blank=True)
    key_id = models.BigIntegerField(null=True, blank=True)
    endpoint = models.CharField(max_length=64)
    model = models.CharField(max_length=200)
    guardrail = models.CharField(max_length=100)
    phase = models.CharField(max_length=16)  # pre_call, during_call, post_call
    action = models.CharField(max_length=8)  # block, mask, warn
    category = models.CharField(max_length=64)
    count = models.PositiveIntegerField(default=1)
    confidence = models.FloatField(default=1.0)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["request_id", "guardrail", "phase", "category"],
                name="billing_guardrail_decision_once",
            )
        ]
        indexes = [
            models.Index(fields=["organization_id", "created_at"]),
            models.Index(fields=["team_id", "created_at"]),
            models.Index(fields=["key_id", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.guardrail} {self.action} {self.category}"


class UsageRollup(models.Model):
    """Totals of one UTC day of RequestLog for one combination of dimensions.

    Rows with ``tag == ""`` partition the day's requests (each request counted once); rows with a
    tag repeat a request once per tag it carried, for grouping by tag only. A day is written whole
    by ``billing.rollups.rollup_day`` (replaced, never added to), so reruns never double-count.
    """

    day = models.DateField()
    organization_id = models.BigIntegerField(null=True, blank=True)
    team_id = models.BigIntegerField(null=True, blank=True)
    key_id = models.BigIntegerField(null=True, blank=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    end_customer = models.CharField(max_length=255, blank=True)
    model = models.CharField(max_length=200)
    tag = models.CharField(max_length=200, blank=True)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    total_tokens = models.PositiveBigIntegerField(default=0)
    spend = models.DecimalField(**USD, default=Decimal("0"))

    class Meta:
        ordering = ["day"]
        indexes = [
            models.Index(fields=["day", "organization_id"]),
            models.Index(fields=["day", "team_id"]),
            models.Index(fields=["day", "key_id"]),
            # A page of keys' total spend reads their rollups over every day.
            models.Index(fields=["key_id", "day"], name="billing_rollup_key_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model} ${self.spend}"


class UsageRollupDay(models.Model):
    """A UTC day whose rollups are written; its row is locked while the day is (re)written."""

    day = models.DateField(primary_key=True)
    rolled_at = models.DateTimeField()
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"{self.day} ({self.requests} requests)"


class UnpricedUsage(models.Model):
    """Successful requests recorded at zero cost, by day, organization, provider, model and
    deployment: what admin warns about (the gateway's own counter lives in one process only).

    The drain appends a row per batch that holds such requests; ``rollup_day`` replaces a day's
    rows with one per group. Readers sum ``requests`` over a group, so duplicates are harmless.
    """

    day = models.DateField()
    organization_id = models.BigIntegerField(null=True, blank=True)
    provider = models.CharField(max_length=50, blank=True)
    model = models.CharField(max_length=200)
    deployment = models.CharField(max_length=200, blank=True)
    requests = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        indexes = [models.Index(fields=["day", "organization_id"])]

    def __str__(self) -> str:
        return f"{self.day} {self.provider}/{self.model}: {self.requests}"


class AlertRule(models.TextChoices):
    ERROR_RATE = "error_rate", "Error rate"
    LATENCY = "latency", "Latency"
    DEPLOYMENT_DOWN = "deployment_down", "Deployment down"
    SPEND_ANOMALY = "spend_anomaly", "Spend anomaly"


class AlertIncident(models.Model):
    """One alert while its condition holds (docs/alerts.md): opened once per rule and subject
    (a deployment id, `organization:<id>`, `team:<id>`), resolved when the condition clears.

    At most one incident per (rule, subject) is open (a partial unique constraint), so concurrent
    evaluations open it once. `notified` lists the channels that got its trigger and its resolve
    message; while `pending`, each evaluation retries the others.
    """

    rule = models.CharField(max_length=32, choices=AlertRule.choices)
    subject = models.CharField(max_length=255)
    severity = models.CharField(max_length=16, default="error")
    summary = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField(db_index=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified = models.JSONField(default=dict, blank=True)  # {"trigger": [...], "resolve": [...]}
    last_notified_at = models.DateTimeField(null=True, blank=True)
    pending = models.BooleanField(default=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=models.Q(resolved_at__isnull=True),
                name="billing_alertincident_one_open",
            )
        ]
        indexes = [
            models.Index(
                fields=["pending"], condition=models.Q(pending=True), name="billing_alert_pending"
            )
        ]

    def __str__(self) -> str:
        return f"{self.rule} {self.subject}"
