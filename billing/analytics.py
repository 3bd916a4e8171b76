"""Analytics and cost insights over the request log (docs/analytics.md): reads only.

Every figure is computed from ``billing.RequestLog`` rows the caller may read (the spend API's
scope, ``request_log_list``), over a bounded time range cut into hour or day buckets (UTC):

- performance per model group or deployment: latency and time-to-first-token percentiles,
  error rate, throughput;
- usage per team or model: requests, tokens, spend;
- the response cache: hit rate and savings (the cache stats' sums);
- insights: the cheaper model of the same capability class a team could have used, keys
  unused for 30 days, and each budget's burn-down with its projected exhaustion.

Percentiles are PostgreSQL's ``percentile_cont`` there, and the same linear interpolation in
Python elsewhere (SQLite, the embedded default), over a query bounded by ``PERCENTILE_ROWS_MAX``.
Which deployments are served (for the cheaper-model insight) only the gateway knows: it hands
its registry here at startup (``analytics_deployments_set``, from gateway/apps.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any, Protocol

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Max, Q, QuerySet, Sum
from django.db.models.functions import Trunc
from django.utils import timezone

from billing.models import SCOPE_FIELDS, Budget, BudgetScope, RequestLog, UsageRollup
from billing.pricing import COST_QUANTUM, Price, deployment_price
from billing.selectors import (
    CACHE_SUMS,
    budget_list,
    cache_totals,
    request_log_list,
)
from keys.budgets import usd_str
from keys.selectors import key_list
from tenants.models import Organization, Team
from tenants.principals import Principal

# The longest range one query may span, and the longest an hourly one may (744 buckets).
RANGE_MAX = timedelta(days=90)
HOURLY_RANGE_MAX = timedelta(days=31)
BUCKETS = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
# Series kept per answer (the busiest); the rest are counted in `other_groups` (performance)
# or summed into "Other" (usage).
SERIES_MAX = 20
# Outside PostgreSQL percentiles are computed in Python: at most this many requests per query.
PERCENTILE_ROWS_MAX = 500_000
UNUSED_KEY_DAYS = 30
BURN_RATE_DAYS = 7
INSIGHT_ROWS_MAX = 500
# Capability flags (LiteLLM's `model_info` names): a cheaper model must have every one the
# model it would replace has.
CAPABILITY_FLAGS = (
    "supports_vision",
    "supports_function_calling",
    "supports_response_schema",
    "supports_reasoning",
    "supports_audio_input",
    "supports_audio_output",
)


class AnalyticsInputError(ValueError):
    """A bad query parameter, named by ``field`` (the API's 400)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class AnalyticsRange:
    start: datetime
    end: datetime
    bucket: str

    def labels(self) -> list[datetime]:
        """The buckets' starts: the first holds ``start``, the last ends at or after ``end``."""
        step = BUCKETS[self.bucket]
        current = _floor(self.start, self.bucket)
        labels = []
        while current < self.end:
            labels.append(current)
            current += step
        return labels

    def span_seconds(self, label: datetime) -> float:
        """How much of a bucket lies within the range (the edges are partial)."""
        stop = min(label + BUCKETS[self.bucket], self.end)
        return max((stop - max(label, self.start)).total_seconds(), 0.0)


def _floor(moment: datetime, bucket: str) -> datetime:
    moment = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0) if bucket == "day" else moment


# Leaves room for the last bucket's end (a date-time past year 9999 does not exist).
_LATEST = datetime(9999, 12, 29, tzinfo=UTC)
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def _utc(moment: datetime, *, field: str) -> datetime:
    try:
        moment = moment.astimezone(UTC)
    except (OverflowError, ValueError) as error:
        raise AnalyticsInputError(field, f"{field} is out of range.") from error
    if not _EARLIEST <= moment <= _LATEST:
        raise AnalyticsInputError(field, f"{field} must be between 1970 and 9999.")
    return moment


def analytics_range_check(
    *,
    start: datetime | None,
    end: datetime | None,
    bucket: str = "day",
    now: datetime | None = None,
    default_days: int = 7,
) -> AnalyticsRange:
    """The range a query reads: ``end`` defaults to now, ``start`` to ``default_days`` before
    ``end``. Raises AnalyticsInputError naming the parameter that is wrong."""
    if bucket not in BUCKETS:
        raise AnalyticsInputError("bucket", f"bucket must be one of {sorted(BUCKETS)}.")
    end = _utc(end or now or timezone.now(), field="end")
    start = _utc(start or end - timedelta(days=default_days), field="start")
    if start >= end:
        raise AnalyticsInputError("end", "end must be after start.")
    longest = HOURLY_RANGE_MAX if bucket == "hour" else RANGE_MAX
    if end - start > longest:
        raise AnalyticsInputError(
            "start", f"The range may span at most {longest.days} days with bucket={bucket}."
        )
    return AnalyticsRange(start=start, end=end, bucket=bucket)


def _logs(*, principal: Principal, span: AnalyticsRange, filters: dict[str, Any]) -> QuerySet:
    return (
        request_log_list(principal=principal)
        .filter(created_at__gte=span.start, created_at__lt=span.end, **filters)
        .order_by()
    )


def _bucketed(logs: QuerySet, span: AnalyticsRange) -> QuerySet:
    return logs.annotate(bucket=Trunc("created_at", span.bucket, tzinfo=UTC))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---- Percentiles ---------------------------------------------------------------------------


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(p) WITHIN GROUP (ORDER BY expr)``."""

    function = "PERCENTILE_CONT"
    name = "PercentileCont"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: str, *, percentile: float, **extra: Any) -> None:
        # A constant of ours, never a caller's value.
        super().__init__(expression, percentile=repr(float(percentile)), **extra)


def percentile_cont(values: list[int], fraction: float) -> float | None:
    """``percentile_cont``'s linear interpolation over sorted ``values`` (None when empty)."""
    if not values:
        return None
    position = fraction * (len(values) - 1)
    low = math.floor(position)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (position - low)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


_OK = Q(status_code__lt=400)
_TTFT = _OK & Q(ttft_ms__isnull=False)
_PERCENTILES = {
    "latency_p50_ms": ("latency_ms", 0.5, _OK),
    "latency_p95_ms": ("latency_ms", 0.95, _OK),
    "ttft_p50_ms": ("ttft_ms", 0.5, _TTFT),
    "ttft_p95_ms": ("ttft_ms", 0.95, _TTFT),
}


def _percentiles(logs: QuerySet, columns: tuple[str, ...]) -> dict[tuple[Any, ...], dict]:
    """Latency and TTFT p50/p95 per combination of ``columns`` (of successful requests)."""
    if connection.vendor == "postgresql":
        return percentiles_sql(logs, columns)
    return percentiles_python(logs, columns)


def percentiles_sql(logs: QuerySet, columns: tuple[str, ...]) -> dict[tuple[Any, ...], dict]:
    """PostgreSQL: ``percentile_cont`` in the database, one query."""
    sums = {
        name: PercentileCont(field, percentile=fraction, filter=condition)
        for name, (field, fraction, condition) in _PERCENTILES.items()
    }
    rows = logs.values(*columns).annotate(**sums) if columns else [logs.aggregate(**sums)]
    return {tuple(row[c] for c in columns): {name: _ms(row[name]) for name in sums} for row in rows}


def percentiles_python(logs: QuerySet, columns: tuple[str, ...]) -> dict[tuple[Any, ...], dict]:
    """Any database: the successful requests' latencies read (at most ``PERCENTILE_ROWS_MAX``)
    and interpolated as ``percentile_cont`` does."""
    ok = logs.filter(_OK)
    if ok.count() > PERCENTILE_ROWS_MAX:
        raise AnalyticsInputError(
            "start", "Too many requests in this range for the embedded database: narrow it."
        )
    samples: dict[tuple[Any, ...], tuple[list[int], list[int]]] = {}
    for row in ok.values_list(*columns, "latency_ms", "ttft_ms").iterator(chunk_size=5000):
        latencies, ttfts = samples.setdefault(tuple(row[:-2]), ([], []))
        latencies.append(row[-2])
        if row[-1] is not None:
            ttfts.append(row[-1])
    found = {}
    for group, (latencies, ttfts) in samples.items():
        latencies.sort()
        ttfts.sort()
        found[group] = {
            "latency_p50_ms": _ms(percentile_cont(latencies, 0.5)),
            "latency_p95_ms": _ms(percentile_cont(latencies, 0.95)),
            "ttft_p50_ms": _ms(percentile_cont(ttfts, 0.5)),
            "ttft_p95_ms": _ms(percentile_cont(ttfts, 0.95)),
        }
    return found


# ---- Performance ---------------------------------------------------------------------------

PERFORMANCE_GROUPS = ("model", "deployment")
_PERF_SUMS = {
    "requests": Count("pk"),
    "errors": Count("pk", filter=Q(status_code__gte=500)),
    "client_errors": Count("pk", filter=Q(status_code__gte=400, status_code__lt=500)),
    "ok_completion_tokens": Sum("completion_tokens", filter=_OK),
    "prompt_sum": Sum("prompt_tokens"),
    "completion_sum": Sum("completion_tokens"),
    "ok_latency_ms": Sum("latency_ms", filter=_OK),
}
_NO_PERCENTILES = dict.fromkeys(_PERCENTILES)


def _performance_figures(row: dict[str, Any] | None, seconds: float, pct: dict | None) -> dict:
    row = row or {}
    requests = row.get("requests") or 0
    errors = row.get("errors") or 0
    prompt = row.get("prompt_sum") or 0
    completion = row.get("completion_sum") or 0
    latency_ms = row.get("ok_latency_ms") or 0
    return {
        "requests": requests,
        "errors": errors,
        "client_errors": row.get("client_errors") or 0,
        "error_rate": round(errors / requests, 4) if requests else None,
        **(pct or _NO_PERCENTILES),
        "requests_per_minute": round(requests * 60 / seconds, 4) if seconds else 0.0,
        "tokens_per_second": round((prompt + completion) / seconds, 4) if seconds else 0.0,
        "output_tokens_per_second": (
            round((row.get("ok_completion_tokens") or 0) * 1000 / latency_ms, 4)
            if latency_ms
            else None
        ),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
    }


def analytics_performance_get(
    *,
    principal: Principal,
    span: AnalyticsRange,
    group_by: str = "model",
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Per model group (or deployment) and bucket: requests, errors (5xx: Ogem's and upstream
    failures) and client errors (4xx: refusals, bad input, limits) apart, the error rate
    (errors / requests), latency and TTFT p50/p95 of successful requests, requests per minute,
    tokens per second of wall-clock time, and output tokens per second of generation. Cache
    hits are left out (no upstream call: the cache's own analytics count them)."""
    if group_by not in PERFORMANCE_GROUPS:
        raise AnalyticsInputError("group_by", f"group_by must be one of {PERFORMANCE_GROUPS}.")
    logs = _logs(principal=principal, span=span, filters=filters or {}).filter(cache_hit=False)
    if group_by == "deployment":
        logs = logs.exclude(deployment="")  # refused before a deployment was chosen
    column = group_by
    totals = {row[column]: row for row in logs.values(column).annotate(**_PERF_SUMS)}
    ranked = sorted(totals, key=lambda value: (-totals[value]["requests"], value))
    kept = ranked[:SERIES_MAX]
    logs_kept = logs.filter(**{f"{column}__in": kept})
    bucketed = _bucketed(logs_kept, span)
    per_bucket = {
        (row[column], row["bucket"]): row
        for row in bucketed.values(column, "bucket").annotate(**_PERF_SUMS)
    }
    pct_total = _percentiles(logs_kept, (column,))
    pct_bucket = _percentiles(bucketed, (column, "bucket"))
    labels = span.labels()
    whole = (span.end - span.start).total_seconds()
    providers: dict[str, str] = {}
    models: dict[str, str] = {}
    if group_by == "deployment":
        rows = logs_kept.values_list("deployment", "provider", "model").distinct()
        providers = {deployment: provider for deployment, provider, _ in rows}
        models = {deployment: model for deployment, _, model in rows}
    results = []
    for value in kept:
        named = {column: value}
        if group_by == "deployment":
            named |= {"provider": providers.get(value, ""), "model": models.get(value, "")}
        series = [
            {
                "bucket": _iso(label),
                **_performance_figures(
                    per_bucket.get((value, label)),
                    span.span_seconds(label),
                    pct_bucket.get((value, label)),
                ),
            }
            for label in labels
        ]
        total = _performance_figures(totals[value], whole, pct_total.get((value,)))
        results.append({**named, "total": total, "series": series})
    overall = {name: sum(row[name] or 0 for row in totals.values()) for name in _PERF_SUMS}
    return {
        "start": _iso(span.start),
        "end": _iso(span.end),
        "bucket": span.bucket,
        "group_by": group_by,
        "buckets": [_iso(label) for label in labels],
        "results": results,
        "other_groups": len(ranked) - len(kept),
        "total": _performance_figures(
            overall if totals else None, whole, _percentiles(logs, ()).get(())
        ),
    }


# ---- Usage trends --------------------------------------------------------------------------

USAGE_GROUPS = {"team": "team_id", "model": "model"}
_USAGE_SUMS = {
    "requests": Count("pk"),
    "prompt_tokens": Sum("prompt_tokens"),
    "completion_tokens": Sum("completion_tokens"),
    "total_tokens": Sum("total_tokens"),
    "spend": Sum("cost"),
}


def _usage_zero() -> dict[str, Any]:
    return {
        "requests": 0,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "spend": Decimal(0),
    }


def _usage_add(target: dict[str, Any], row: dict[str, Any]) -> None:
    for name in _USAGE_SUMS:
        target[name] += row[name] or 0


def _usage_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "spend": usd_str(row["spend"])}


def analytics_usage_get(
    *,
    principal: Principal,
    span: AnalyticsRange,
    group_by: str = "team",
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Requests, tokens and spend per team (or model) and bucket, every request of the range
    counted once (cache hits and errors too, as spend counts them). The ``SERIES_MAX`` biggest
    series by spend are kept, the rest summed into one "Other" series (``other: true``)."""
    if group_by not in USAGE_GROUPS:
        raise AnalyticsInputError("group_by", f"group_by must be one of {sorted(USAGE_GROUPS)}.")
    column = USAGE_GROUPS[group_by]
    logs = _bucketed(_logs(principal=principal, span=span, filters=filters or {}), span)
    labels = span.labels()
    index = {label: position for position, label in enumerate(labels)}
    series: dict[Any, list[dict[str, Any]]] = {}
    totals: dict[Any, dict[str, Any]] = {}
    for row in logs.values(column, "bucket").annotate(**_USAGE_SUMS):
        value = row[column]
        buckets = series.setdefault(value, [_usage_zero() for _ in labels])
        _usage_add(buckets[index[row["bucket"]]], row)
        _usage_add(totals.setdefault(value, _usage_zero()), row)
    ranked = sorted(
        totals, key=lambda v: (-totals[v]["spend"], -totals[v]["requests"], v is None, str(v))
    )
    names: dict[Any, str] = {}
    if group_by == "team":
        names = dict(Team.objects.filter(pk__in=[v for v in ranked if v]).values_list("pk", "name"))
    results = []
    for value in ranked[:SERIES_MAX]:
        named: dict[str, Any] = {"team": value, "team_name": names.get(value)}
        if group_by == "model":
            named = {"model": value}
        results.append(_usage_series(named, totals[value], series[value], labels))
    if len(ranked) > SERIES_MAX:
        rest = [_usage_zero() for _ in labels]
        rest_total = _usage_zero()
        for value in ranked[SERIES_MAX:]:
            _usage_add(rest_total, totals[value])
            for position, bucket in enumerate(series[value]):
                _usage_add(rest[position], bucket)
        named = {"model": "Other"} if group_by == "model" else {"team": None, "team_name": "Other"}
        results.append({**_usage_series(named, rest_total, rest, labels), "other": True})
    overall = _usage_zero()
    for row in totals.values():
        _usage_add(overall, row)
    return {
        "start": _iso(span.start),
        "end": _iso(span.end),
        "bucket": span.bucket,
        "group_by": group_by,
        "buckets": [_iso(label) for label in labels],
        "results": results,
        "total": _usage_out(overall),
    }


def _usage_series(
    named: dict[str, Any], total: dict[str, Any], buckets: list[dict], labels: list[datetime]
) -> dict[str, Any]:
    return {
        **named,
        "other": False,
        "total": _usage_out(total),
        "series": [
            {"bucket": _iso(label), **_usage_out(bucket)}
            for label, bucket in zip(labels, buckets, strict=True)
        ],
    }


# ---- Response cache --------------------------------------------------------------------------


def analytics_cache_get(
    *, principal: Principal, span: AnalyticsRange, filters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The response cache's hits, misses, hit rate and savings per bucket and per model, summed
    as /api/v1/cache/stats sums them (requests the cache saw only)."""
    logs = _logs(principal=principal, span=span, filters=filters or {}).exclude(cache_result="")
    labels = span.labels()
    per_bucket = {
        row["bucket"]: row for row in _bucketed(logs, span).values("bucket").annotate(**CACHE_SUMS)
    }
    empty = dict.fromkeys(CACHE_SUMS, 0)
    by_model = sorted(logs.values("model").annotate(**CACHE_SUMS), key=lambda row: row["model"])
    return {
        "start": _iso(span.start),
        "end": _iso(span.end),
        "bucket": span.bucket,
        "buckets": [_iso(label) for label in labels],
        "series": [
            {"bucket": _iso(label), **cache_totals(per_bucket.get(label, empty))}
            for label in labels
        ],
        "models": [{"model": row["model"], **cache_totals(row)} for row in by_model],
        "total": cache_totals(logs.aggregate(**CACHE_SUMS)),
    }


# ---- Insights: cheaper models of the same capability class -----------------------------------


class ServedDeployment(Protocol):
    """What the insight reads of a served deployment (the gateway's providers.base.Deployment)."""

    id: str
    model_name: str
    provider: str
    upstream_model: str
    params: dict[str, Any]
    organization_id: int | None
    access_groups: tuple[str, ...]


def _no_deployments() -> Iterable[ServedDeployment]:
    return ()


# The deployments Ogem serves: the gateway's registry, set by GatewayConfig.ready().
_served: Callable[[], Iterable[ServedDeployment]] = _no_deployments


def analytics_deployments_set(lookup: Callable[[], Iterable[ServedDeployment]]) -> None:
    global _served
    _served = lookup


@dataclass(frozen=True, slots=True)
class ModelClass:
    """A model group's capability class: what it does (LiteLLM's ``model_info.mode``) and the
    capability flags it has, with its context window (``max_input_tokens``; None: not known)."""

    mode: str
    flags: frozenset[str]
    context_window: int | None


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A served model group as the insight sees it: its class, its cheapest token prices, and
    who may reach it."""

    name: str
    capability: ModelClass
    price: Price
    organization_ids: frozenset[int | None]  # None: every organization's
    access_groups: frozenset[str]


def _model_class(deployment: ServedDeployment, price: Price | None) -> ModelClass | None:
    info = deployment.params.get("model_info")
    info = info if isinstance(info, dict) else {}
    mode = info.get("mode")
    if not isinstance(mode, str) or not mode:
        # LiteLLM's default mode is chat; a model priced for input only is not known to chat.
        mode = "chat" if price is not None and price.output > 0 else ""
    if not mode:
        return None
    flags = frozenset(flag for flag in CAPABILITY_FLAGS if info.get(flag) is True)
    window = info.get("max_input_tokens")
    valid = isinstance(window, int) and not isinstance(window, bool) and window > 0
    return ModelClass(mode=mode, flags=flags, context_window=window if valid else None)


def served_model_list() -> list[ServedModel]:
    """Every served model group with a price and a class (wildcards left out): the first
    deployment's class, the cheapest deployment's prices (input, then output)."""
    groups: dict[str, list[tuple[ServedDeployment, Price, ModelClass]]] = {}
    for deployment in _served():
        if "*" in deployment.model_name:
            continue
        price = deployment_price(deployment=deployment)
        capability = _model_class(deployment, price)
        if price is None or capability is None:
            continue
        groups.setdefault(deployment.model_name, []).append((deployment, price, capability))
    served = []
    for name, members in groups.items():
        cheapest = min(members, key=lambda member: member[1].input + member[1].output)
        served.append(
            ServedModel(
                name=name,
                capability=members[0][2],
                price=cheapest[1],
                organization_ids=frozenset(member[0].organization_id for member in members),
                access_groups=frozenset(g for member in members for g in member[0].access_groups),
            )
        )
    return served


def _listed(allowed: list[str], model: ServedModel) -> bool:
    """An allow-list admits the model as the gateway's router does (names, access groups,
    wildcards; empty: everything)."""
    return (
        not allowed
        or model.name in allowed
        or any(group in allowed for group in model.access_groups)
        or any("*" in entry and fnmatchcase(model.name, entry) for entry in allowed)
    )


def _reachable(model: ServedModel, *, organization_id: int | None, lists: list[list[str]]) -> bool:
    visible = None in model.organization_ids or organization_id in model.organization_ids
    return visible and all(_listed(allowed, model) for allowed in lists)


def _fits(candidate: ModelClass, current: ModelClass, *, largest_prompt: int) -> bool:
    return (
        candidate.mode == current.mode
        and current.flags <= candidate.flags
        and (candidate.context_window is None or candidate.context_window >= largest_prompt)
    )


def _tokens_cost(price: Price, *, prompt: int, completion: int) -> Decimal:
    return (prompt * price.input + completion * price.output).quantize(COST_QUANTUM)


def insight_cheaper_model_list(
    *, principal: Principal, span: AnalyticsRange, filters: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Per team and model: the successful requests (not cache hits, not batch lines) that the
    cheapest model of the same capability class would have served for less, with the saving.

    A candidate is a served model group of the same mode, with every capability flag of the
    model used, whose context window (when known) holds the group's largest prompt, that the
    team may reach (visible to its organization, within the team's and organization's
    allow-lists) and whose list prices, applied to the group's prompt and completion tokens,
    come to less than what the requests cost. Groups whose model is not served now have no
    class and are left out."""
    served = {model.name: model for model in served_model_list()}
    logs = (
        _logs(principal=principal, span=span, filters=filters or {})
        .filter(_OK, cache_hit=False, batch_id="")
        .filter(model__in=list(served))
    )
    groups = logs.values("organization_id", "team_id", "model").annotate(
        largest_prompt=Max("prompt_tokens"),
        requests=Count("pk"),
        prompt_sum=Sum("prompt_tokens"),
        completion_sum=Sum("completion_tokens"),
        cost_sum=Sum("cost"),
    )
    groups = list(groups)
    teams = {
        team.pk: team
        for team in Team.objects.filter(pk__in={g["team_id"] for g in groups} - {None})
    }
    org_ids = {g["organization_id"] for g in groups} | {t.organization_id for t in teams.values()}
    org_models = dict(
        Organization.objects.filter(pk__in=org_ids - {None}).values_list("pk", "allowed_models")
    )
    rows = []
    for group in groups:
        current = served[group["model"]]
        team = teams.get(group["team_id"])
        organization_id = team.organization_id if team else group["organization_id"]
        lists = [list(org_models.get(organization_id) or [])]
        if team is not None:
            lists.append(list(team.allowed_models or []))
        prompt, completion = group["prompt_sum"] or 0, group["completion_sum"] or 0
        cost = Decimal(group["cost_sum"] or 0)
        best: tuple[Decimal, str] | None = None
        for candidate in served.values():
            if candidate.name == current.name:
                continue
            if not _fits(
                candidate.capability, current.capability, largest_prompt=group["largest_prompt"]
            ):
                continue
            if not _reachable(candidate, organization_id=organization_id, lists=lists):
                continue
            estimate = _tokens_cost(candidate.price, prompt=prompt, completion=completion)
            if estimate < cost and (best is None or (estimate, candidate.name) < best):
                best = (estimate, candidate.name)
        if best is None:
            continue
        rows.append(
            {
                "organization": organization_id,
                "team": group["team_id"],
                "team_name": team.name if team else None,
                "model": current.name,
                "mode": current.capability.mode,
                "requests": group["requests"],
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cost": cost,
                "cheaper_model": best[1],
                "estimated_cost": best[0],
                "saving": cost - best[0],
            }
        )
    rows.sort(key=lambda row: (-row["saving"], row["team"] or 0, row["model"]))
    total = sum((row["saving"] for row in rows), Decimal(0))
    return {
        "results": [
            {**row, **{name: usd_str(row[name]) for name in ("cost", "estimated_cost", "saving")}}
            for row in rows[:INSIGHT_ROWS_MAX]
        ],
        "total_saving": usd_str(total),
    }


# ---- Insights: unused keys -------------------------------------------------------------------


def insight_unused_key_list(
    *, principal: Principal, days: int = UNUSED_KEY_DAYS, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The caller's active keys (not revoked, not expired) older than ``days`` with no request
    in the last ``days``: never used (``last_used_at`` null) or last used before. The last use
    is the request log's newest row, else the newest rolled-up day."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    keys = (
        key_list(principal=principal)
        .filter(revoked_at__isnull=True, created_at__lte=since)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("created_at", "pk")
    )
    candidates = {key.pk: key for key in keys[: INSIGHT_ROWS_MAX * 4]}
    used = set(
        RequestLog.objects.filter(key_id__in=list(candidates), created_at__gte=since)
        .order_by()
        .values_list("key_id", flat=True)
        .distinct()
    )
    idle = [pk for pk in candidates if pk not in used]
    last_logged = dict(
        RequestLog.objects.filter(key_id__in=idle)
        .order_by()
        .values("key_id")
        .annotate(last=Max("created_at"))
        .values_list("key_id", "last")
    )
    last_rolled = dict(
        UsageRollup.objects.filter(key_id__in=idle)
        .order_by()
        .values("key_id")
        .annotate(last=Max("day"))
        .values_list("key_id", "last")
    )
    found = []
    for pk in idle[:INSIGHT_ROWS_MAX]:
        key = candidates[pk]
        last = last_logged.get(pk)
        if last is None and last_rolled.get(pk) is not None:
            last = datetime.combine(last_rolled[pk], datetime.min.time(), tzinfo=UTC)
        found.append(
            {
                "id": key.pk,
                "name": key.name,
                "prefix": key.prefix,
                "organization": key.organization_id,
                "team": key.team_id,
                "user": key.user_id,
                "created_at": _iso(key.created_at),
                "last_used_at": _iso(last) if last else None,
            }
        )
    return found


# ---- Insights: budget burn-down --------------------------------------------------------------


def _budget_logs(budget: Budget) -> QuerySet:
    scope = BudgetScope(budget.scope)
    logs = RequestLog.objects.order_by()
    if scope == BudgetScope.END_CUSTOMER:
        customer = budget.end_customer
        return logs.filter(
            organization_id=customer.organization_id, end_customer=customer.external_id
        )
    return logs.filter(
        **{f"{SCOPE_FIELDS[scope]}_id": getattr(budget, f"{SCOPE_FIELDS[scope]}_id")}
    )


def insight_budget_burn_list(
    *, principal: Principal, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Each limited budget the caller may read: spend so far in its period (from the request
    log, since the period started), the daily burn rate (the cost of the trailing
    ``BURN_RATE_DAYS`` days, or of the period so far when it is younger, per day), and the
    projected exhaustion: when the remaining budget runs out at that rate; null when nothing
    burns or the period resets first. Already spent budgets say ``exhausted``."""
    now = now or timezone.now()
    budgets = (
        budget_list(principal=principal)
        .filter(max_budget__isnull=False)
        .order_by("-spend", "pk")[:INSIGHT_ROWS_MAX]
    )
    found = []
    for budget in budgets:
        logs = _budget_logs(budget)
        period_start = budget.period_started_at or budget.created_at
        spent = Decimal(
            logs.filter(created_at__gte=period_start).aggregate(s=Sum("cost"))["s"] or 0
        )
        window_start = max(now - timedelta(days=BURN_RATE_DAYS), period_start)
        window_days = Decimal(str(max((now - window_start).total_seconds(), 0) / 86400))
        burned = Decimal(
            logs.filter(created_at__gte=window_start, created_at__lt=now).aggregate(s=Sum("cost"))[
                "s"
            ]
            or 0
        )
        rate = (burned / window_days).quantize(COST_QUANTUM) if window_days > 0 else Decimal(0)
        maximum = Decimal(budget.max_budget)
        remaining = maximum - spent
        exhausted = remaining <= 0
        projected = None
        if not exhausted and rate > 0:
            at = now + timedelta(days=float(remaining / rate))
            if budget.reset_at is None or at < budget.reset_at:
                projected = at
        target = SCOPE_FIELDS[BudgetScope(budget.scope)]
        found.append(
            {
                "id": budget.pk,
                "scope": budget.scope,
                target: getattr(budget, f"{target}_id"),
                "target_name": str(getattr(budget, target)),
                "max_budget": usd_str(maximum),
                "spend": usd_str(spent),
                "remaining": usd_str(max(remaining, Decimal(0))),
                "period_started_at": _iso(period_start),
                "reset_at": _iso(budget.reset_at) if budget.reset_at else None,
                "daily_burn_rate": usd_str(rate),
                "exhausted": exhausted,
                "projected_exhaustion_at": _iso(projected) if projected else None,
            }
        )
    return found


def analytics_insights_get(
    *,
    principal: Principal,
    span: AnalyticsRange,
    filters: dict[str, Any] | None = None,
    unused_days: int = UNUSED_KEY_DAYS,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The three insights together (docs/analytics.md)."""
    return {
        "start": _iso(span.start),
        "end": _iso(span.end),
        "cheaper_models": insight_cheaper_model_list(
            principal=principal, span=span, filters=filters
        ),
        "unused_keys": insight_unused_key_list(principal=principal, days=unused_days, now=now),
        "budgets": insight_budget_burn_list(principal=principal, now=now),
    }
