from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Aggregate, Count, FloatField, Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import TruncDate

from billing.models import (
    Budget,
    BudgetScope,
    BudgetTemplate,
    GuardrailDecision,
    RequestLog,
    UnpricedUsage,
    UsageRollup,
)
from billing.pricing import deployment_pk_from_id, price_known
from billing.rollups import rollup_watermark
from keys.budgets import KeyBudget, usd_str
from keys.models import VirtualKey
from keys.selectors import key_list
from tenants.models import Organization, Team, User
from tenants.principals import Principal
from tenants.selectors import (
    principal_org_read_ids,
    principal_owns,
    principal_team_read_ids,
    team_list,
)

SPEND_GROUPS = {
    "key": "key_id",
    "team": "team_id",
    "organization": "organization_id",
    "user": "user_id",
    "end_customer": "end_customer",
    "model": "model",
    "tag": "tag",
    "day": "day",
}


def budget_list(*, principal: Principal) -> QuerySet[Budget]:
    budgets = Budget.objects.select_related("organization", "team", "user", "key", "end_customer")
    if principal.is_proxy_admin:
        return budgets

    org_ids = principal_org_read_ids(principal=principal)
    return budgets.filter(
        Q(scope=BudgetScope.ORGANIZATION, organization_id__in=principal.visible_org_ids())
        | Q(scope=BudgetScope.TEAM, team__in=team_list(principal=principal).values("pk"))
        | Q(scope=BudgetScope.KEY, key__in=key_list(principal=principal).values("pk"))
        | (Q(scope=BudgetScope.USER) & principal_owns(principal=principal))
        | Q(scope=BudgetScope.END_CUSTOMER, end_customer__organization_id__in=org_ids)
    )


def _spend_scope(*, principal: Principal) -> Q | None:
    """What of the log (and its rollups) the caller may read; None: everything."""
    if principal.is_proxy_admin:
        return None

    own_keys = key_list(principal=principal).values("pk")
    return (
        Q(organization_id__in=principal_org_read_ids(principal=principal))
        | Q(team_id__in=principal_team_read_ids(principal=principal))
        | Q(key_id__in=own_keys)
    )


def request_log_list(*, principal: Principal) -> QuerySet[RequestLog]:
    scope = _spend_scope(principal=principal)
    logs = RequestLog.objects.all()
    return logs if scope is None else logs.filter(scope)


def guardrail_decision_list(
    *, principal: Principal, filters: dict[str, Any] | None = None
) -> QuerySet[GuardrailDecision]:
    """Guardrail decisions of the requests the principal may see (scoped like spend), newest
    first; `filters`: field lookups (guardrail, action, category, request_id, key_id, ...)."""
    scope = _spend_scope(principal=principal)
    decisions = GuardrailDecision.objects.all()
    if scope is not None:
        decisions = decisions.filter(scope)
    return decisions.filter(**(filters or {})).order_by("-created_at", "-pk")


_TOTALS = ("spend", "prompt_tokens", "completion_tokens", "total_tokens", "requests")
_TOKEN_SUMS = {
    "prompt_tokens": Sum("prompt_tokens"),
    "completion_tokens": Sum("completion_tokens"),
    "total_tokens": Sum("total_tokens"),
}
_ROLLUP_SUMS = {**_TOKEN_SUMS, "spend": Sum("spend"), "requests": Sum("requests")}
_LOG_SUMS = {**_TOKEN_SUMS, "spend": Sum("cost"), "requests": Count("pk")}

# What spend rows name a request made without a virtual key (the master key, or an identity
# provider's token): RequestLog keeps no key id for it.
NO_KEY_NAME = "master key"


@dataclass(frozen=True, slots=True)
class UsageSources:
    """One date range split where the rollups end: days up to the watermark from ``UsageRollup``,
    later (still open) days, today's included, from ``RequestLog``. No day is in both."""

    rollups: QuerySet[UsageRollup] | None
    logs: QuerySet[RequestLog] | None
    watermark: date | None


def _usage_sources(
    *, scope: Q | None, start: date | None, end: date | None, filters: dict[str, Any]
) -> UsageSources:
    watermark = rollup_watermark()
    rollups = logs = None
    if watermark is not None and (start is None or start <= watermark):
        rolled_end = watermark if end is None else min(end, watermark)
        rollups = UsageRollup.objects.filter(day__lte=rolled_end, **filters).order_by()
        if scope is not None:
            rollups = rollups.filter(scope)
        if start is not None:
            rollups = rollups.filter(day__gte=start)
    if watermark is not None:
        after = watermark + timedelta(days=1)
        start = max(start, after) if start is not None else after
    if end is None or start is None or start <= end:
        logs = RequestLog.objects.filter(**filters).order_by()
        if scope is not None:
            logs = logs.filter(scope)
        if start is not None:
            logs = logs.filter(created_at__gte=_day_start(start))
        if end is not None:
            logs = logs.filter(created_at__lt=_day_start(end + timedelta(days=1)))
    return UsageSources(rollups=rollups, logs=logs, watermark=watermark)


def usage_totals_list(*, sources: UsageSources, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    """Spend (a Decimal), tokens and requests per combination of ``columns`` (RequestLog
    dimensions, and ``day``) over both halves of ``sources``, merged; no columns: one total."""
    parts: list[Any] = []
    if sources.rollups is not None:
        rolled = sources.rollups.filter(tag="")  # tagged rows repeat requests
        parts.append((rolled, _ROLLUP_SUMS))
    if sources.logs is not None:
        logs = sources.logs
        if "day" in columns:
            logs = logs.annotate(day=TruncDate("created_at", tzinfo=UTC))
        parts.append((logs, _LOG_SUMS))
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for queryset, sums in parts:
        rows = (
            queryset.values(*columns).annotate(**sums) if columns else [queryset.aggregate(**sums)]
        )
        for row in rows:
            group = tuple(row[column] for column in columns)
            _add(merged.setdefault(group, _zero()), row)
    if not columns and not merged:
        merged[()] = _zero()
    return [{**dict(zip(columns, group, strict=True)), **row} for group, row in merged.items()]


def usage_sources_get(
    *,
    principal: Principal,
    start: date | None = None,
    end: date | None = None,
    filters: dict[str, Any] | None = None,
) -> UsageSources:
    """The caller's usage from ``start`` to ``end`` (inclusive UTC dates, None: unbounded),
    narrowed by ``filters`` on RequestLog fields: what ``usage_totals_list`` sums. Rolled days
    come from the daily rollups, the days after them (today's included) from the request log, so
    a request shows once drained, before any rollup, and a rolled day counts once. The spend API,
    the admin dashboard and the portal all read spend this way."""
    return _usage_sources(
        scope=_spend_scope(principal=principal), start=start, end=end, filters=filters or {}
    )


def key_spend_map(*, key_ids: list[int]) -> dict[int, Decimal]:
    """Everything each key has spent (USD), every key with or without a budget: rollups and
    the request log, as ``usage_sources_get`` splits them (unscoped: the caller already sees
    these keys)."""
    if not key_ids:
        return {}
    sources = _usage_sources(scope=None, start=None, end=None, filters={"key_id__in": key_ids})
    return {
        row["key_id"]: row["spend"]
        for row in usage_totals_list(sources=sources, columns=("key_id",))
    }


def spend_summary(
    *,
    principal: Principal,
    group_by: str,
    start: date | None = None,
    end: date | None = None,
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Spend and token totals of the caller's requests, grouped by one dimension.

    ``start`` and ``end`` are inclusive UTC dates. ``filters`` narrows on RequestLog fields
    (``organization_id``, ``team_id``, ``key_id``, ``model``) within the caller's scope. Days up to
    the rollup watermark are read from ``UsageRollup``; later (still open) days from the log.
    Grouped by tag, a request counts under each of its tags; the total counts it once. Money is
    a fixed-point decimal string; key, team, organization and user rows carry the name too.
    """

    if group_by not in SPEND_GROUPS:
        raise ValueError(f"group_by must be one of {sorted(SPEND_GROUPS)}")
    requested = _requested_range(start=start, end=end)
    sources = usage_sources_get(principal=principal, start=start, end=end, filters=filters)
    column = SPEND_GROUPS[group_by]
    if group_by == "tag":
        groups = _tag_groups(sources=sources)
    else:
        groups = {row[column]: row for row in usage_totals_list(sources=sources, columns=(column,))}
    if group_by == "end_customer":
        # RequestLog stores an absent end customer as "": the API says null.
        groups = {value or None: row for value, row in groups.items()}
    (overall,) = usage_totals_list(sources=sources, columns=())
    ordered = sorted(groups.items(), key=lambda item: (item[0] is None, item[0]))
    names = _group_names(group_by=group_by, values=[value for value, _ in ordered])
    return {
        "group_by": group_by,
        "start": requested[0],
        "end": requested[1],
        "results": [
            _spend_row(group_by=group_by, value=value, row=row, names=names)
            for value, row in ordered
        ],
        "total": _totals(overall),
    }


def _zero() -> dict[str, Any]:
    return {"spend": Decimal("0"), **dict.fromkeys(_TOTALS[1:], 0)}


def _add(target: dict[str, Any], row: dict[str, Any]) -> None:
    for name in _TOTALS:
        target[name] += row[name] or 0


def _tag_groups(*, sources: UsageSources) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, dict[str, Any]] = {}
    if sources.rollups is not None:
        for row in sources.rollups.exclude(tag="").values("tag").annotate(**_ROLLUP_SUMS):
            _add(groups.setdefault(row["tag"], _zero()), row)
    if sources.logs is not None:
        fields = ("tags", "prompt_tokens", "completion_tokens", "total_tokens", "cost")
        for log in sources.logs.exclude(tags=[]).values(*fields).iterator(chunk_size=2000):
            row = {**log, "spend": log["cost"], "requests": 1}
            for tag in dict.fromkeys(str(t)[:200] for t in log["tags"] or ()):
                _add(groups.setdefault(tag, _zero()), row)
    return groups


_NAMED_GROUPS: dict[str, tuple[Any, str]] = {
    "key": (VirtualKey, "name"),
    "team": (Team, "name"),
    "organization": (Organization, "name"),
    "user": (User, "username"),
}


# The groups whose spend rows carry a ``<group>_name`` beside the id.
SPEND_NAMED_GROUPS = frozenset(_NAMED_GROUPS)


def _group_names(*, group_by: str, values: list[Any]) -> dict[Any, str | None]:
    """Names of the grouped keys, teams, organizations or users (one query; a deleted one has
    none). Requests without a key are the master key's (or an identity provider token's)."""
    if group_by not in _NAMED_GROUPS:
        return {}
    model, field = _NAMED_GROUPS[group_by]
    ids = [value for value in values if value is not None]
    names: dict[Any, str | None] = dict(model.objects.filter(pk__in=ids).values_list("pk", field))
    if group_by == "key":
        names[None] = NO_KEY_NAME
    return names


def _requested_range(*, start: date | None, end: date | None) -> tuple[str | None, str | None]:
    return (start.isoformat() if start else None, end.isoformat() if end else None)


def _spend_row(
    *, group_by: str, value: Any, row: dict[str, Any], names: dict[Any, str | None]
) -> dict[str, Any]:
    named = {f"{group_by}_name": names.get(value)} if group_by in _NAMED_GROUPS else {}
    if isinstance(value, date):
        value = value.isoformat()
    return {group_by: value, **named, **_totals(row)}


def _totals(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "spend": usd_str(row["spend"] or Decimal("0")),
        "prompt_tokens": row["prompt_tokens"] or 0,
        "completion_tokens": row["completion_tokens"] or 0,
        "total_tokens": row["total_tokens"] or 0,
        "requests": row["requests"] or 0,
    }


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


# ---- Admin's spend dashboard and unpriced-model warning ----------------------------------------

CHART_SERIES_LIMIT = 8


def spend_chart_data(
    *,
    principal: Principal,
    start: date,
    end: date,
    organization_id: int | None = None,
    team_id: int | None = None,
    series_limit: int = CHART_SERIES_LIMIT,
) -> dict[str, Any]:
    """Daily spend and tokens per team and per model, for charts (money as decimal strings).

    ``start`` and ``end`` are inclusive UTC dates, read as ``usage_sources_get`` splits them: rolled
    days from ``UsageRollup``, the days after them (today's requests too) from the request log.
    Each breakdown keeps its ``series_limit`` biggest series by spend and folds the rest into
    "Other". The same few queries whatever the range: two aggregates per source, team names.
    """

    filters: dict[str, Any] = {}
    if organization_id is not None:
        filters["organization_id"] = organization_id
    if team_id is not None:
        filters["team_id"] = team_id
    sources = usage_sources_get(principal=principal, start=start, end=end, filters=filters)
    by_team = usage_totals_list(sources=sources, columns=("day", "team_id"))
    by_model = usage_totals_list(sources=sources, columns=("day", "model"))
    team_ids = {row["team_id"] for row in by_team} - {None}
    names = {
        team.pk: f"{team.name} ({team.organization.name})"
        for team in Team.objects.filter(pk__in=team_ids).select_related("organization")
    }
    labels = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
    watermark = sources.watermark
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "rolled_through": watermark.isoformat() if watermark else None,
        "labels": [day.isoformat() for day in labels],
        "total": {
            "spend": usd_str(sum((row["spend"] for row in by_team), Decimal(0))),
            "tokens": sum(row["total_tokens"] for row in by_team),
            "requests": sum(row["requests"] for row in by_team),
        },
        "teams": _chart_series(
            rows=by_team,
            column="team_id",
            labels=labels,
            name=lambda team: names.get(team, f"team {team}") if team else "No team",
            limit=series_limit,
        ),
        "models": _chart_series(
            rows=by_model, column="model", labels=labels, name=str, limit=series_limit
        ),
    }


def _chart_series(
    *, rows: list[dict[str, Any]], column: str, labels: list[date], name: Any, limit: int
) -> list[dict[str, Any]]:
    index = {day: position for position, day in enumerate(labels)}
    series: dict[Any, dict[str, Any]] = {}
    for row in rows:
        entry = series.setdefault(
            row[column],
            {"spend": [Decimal(0)] * len(labels), "tokens": [0] * len(labels), "sum": Decimal(0)},
        )
        position = index[row["day"]]
        entry["spend"][position] += row["spend"]
        entry["tokens"][position] += row["total_tokens"]
        entry["sum"] += row["spend"]
    ranked = sorted(
        series.items(), key=lambda item: (-item[1]["sum"], -sum(item[1]["tokens"]), str(item[0]))
    )
    kept = [(name(value), entry) for value, entry in ranked[:limit]]
    if len(ranked) > limit:
        other = {"spend": [Decimal(0)] * len(labels), "tokens": [0] * len(labels)}
        for _, entry in ranked[limit:]:
            for position in range(len(labels)):
                other["spend"][position] += entry["spend"][position]
                other["tokens"][position] += entry["tokens"][position]
        kept.append(("Other", other))
    return [
        {
            "label": label,
            "spend": [usd_str(value) for value in entry["spend"]],
            "tokens": entry["tokens"],
        }
        for label, entry in kept
    ]


def unpriced_usage_list(*, principal: Principal, since: date) -> list[dict[str, Any]]:
    """Models that served requests at zero cost since ``since`` and still have no price.

    Read from ``UnpricedUsage`` (written by the drain and the rollups, so every process sees
    it); a group whose model has a price by now (set since, or a deliberate zero) is left out.
    Org owners/admins and viewers see their organizations'; team admins none (they set no price).
    """

    rows = UnpricedUsage.objects.filter(day__gte=since).order_by()
    if not principal.is_proxy_admin:
        rows = rows.filter(organization_id__in=principal_org_read_ids(principal=principal))
    grouped = rows.values("provider", "model", "deployment").annotate(
        requests=Sum("requests"), last_day=Max("day")
    )
    found = [
        {**row, "deployment_pk": deployment_pk_from_id(row["deployment"])}
        for row in grouped
        if not price_known(
            provider=row["provider"], model=row["model"], deployment_id=row["deployment"]
        )
    ]
    return sorted(found, key=lambda row: (-row["requests"], row["provider"], row["model"]))


# ---- Governance snapshots: what the /v1 hot path needs to know about budgets and limits -------


@dataclass(frozen=True, slots=True)
class BudgetSnapshot:
    """One Budget row as the data plane caches it (no ORM objects on the request path)."""

    id: int
    scope: str
    target_id: int
    organization_id: int | None  # the tenant the target belongs to (None for a user)
    max_budget: Decimal | None
    soft_budget: Decimal | None
    mode: str
    period_started_at: datetime | None
    reset_at: datetime | None
    spend: Decimal
    rpm_limit: int | None
    tpm_limit: int | None
    max_parallel_requests: int | None


# ("organization", id), ("team", id), ("user", id), ("key", id) or ("end_customer", org_id, name)
SnapshotKey = tuple[Any, ...]


def budget_snapshot_from(*, budget: Budget) -> BudgetSnapshot:
    scope = BudgetScope(budget.scope)
    if scope == BudgetScope.ORGANIZATION:
        target_id, org_id = budget.organization_id, budget.organization_id
    elif scope == BudgetScope.TEAM:
        target_id, org_id = budget.team_id, budget.team.organization_id
    elif scope == BudgetScope.USER:
        target_id, org_id = budget.user_id, None
    elif scope == BudgetScope.KEY:
        target_id, org_id = budget.key_id, budget.key.organization_id
    else:
        target_id, org_id = budget.end_customer_id, budget.end_customer.organization_id
    return BudgetSnapshot(
        id=budget.pk,
        scope=str(scope),
        target_id=target_id,
        organization_id=org_id,
        max_budget=budget.max_budget,
        soft_budget=budget.soft_budget,
        mode=budget.mode,
        period_started_at=budget.period_started_at,
        reset_at=budget.reset_at,
        spend=budget.spend,
        rpm_limit=budget.rpm_limit,
        tpm_limit=budget.tpm_limit,
        max_parallel_requests=budget.max_parallel_requests,
    )


def budget_snapshots_load(*, keys: list[SnapshotKey]) -> dict[SnapshotKey, BudgetSnapshot | None]:
    """The budgets of the given entities in one query; entities without one map to None."""
    found: dict[SnapshotKey, BudgetSnapshot | None] = dict.fromkeys(keys)
    if not keys:
        return found
    condition = Q()
    for key in keys:
        scope = key[0]
        if scope == BudgetScope.END_CUSTOMER:
            condition |= Q(
                scope=scope,
                end_customer__organization_id=key[1],
                end_customer__external_id=key[2],
            )
        else:
            condition |= Q(scope=scope, **{f"{scope}_id": key[1]})
    budgets = Budget.objects.select_related("team", "key", "end_customer").filter(condition)
    for budget in budgets:
        snapshot = budget_snapshot_from(budget=budget)
        if snapshot.scope == BudgetScope.END_CUSTOMER:
            key = (snapshot.scope, snapshot.organization_id, budget.end_customer.external_id)
        else:
            key = (snapshot.scope, snapshot.target_id)
        if key in found:
            found[key] = snapshot
    return found


def key_budget_get(key: VirtualKey) -> KeyBudget | None:
    """The key's own budget, as keys reads it (keys.budgets' store)."""
    budget = Budget.objects.filter(scope=BudgetScope.KEY, key=key).first()
    if budget is None:
        return None
    return KeyBudget(
        max_budget=budget.max_budget, soft_budget=budget.soft_budget, duration=budget.duration
    )


def key_budget_annotate(keys: QuerySet[VirtualKey]) -> QuerySet[VirtualKey]:
    """Each key's own budget (if any) annotated as ``budget_*``, in the same query."""
    budgets = Budget.objects.filter(scope=BudgetScope.KEY, key=OuterRef("pk"))
    return keys.annotate(
        budget_max=Subquery(budgets.values("max_budget")[:1]),
        budget_soft=Subquery(budgets.values("soft_budget")[:1]),
        budget_duration=Subquery(budgets.values("duration")[:1]),
        budget_spend=Subquery(budgets.values("spend")[:1]),
        budget_reset_at=Subquery(budgets.values("reset_at")[:1]),
    )


# ---- Response cache analytics (docs/caching.md) --------------------------------------------------

CACHE_STATS_GROUPS = {
    "organization": "organization_id",
    "team": "team_id",
    "key": "key_id",
    "model": "model",
    "day": "day",
}
CACHE_SUMS = {
    "hits": Count("pk", filter=Q(cache_result__in=("hit", "semantic-hit"))),
    "semantic_hits": Count("pk", filter=Q(cache_result="semantic-hit")),
    "misses": Count("pk", filter=Q(cache_result="miss")),
    "bypasses": Count("pk", filter=Q(cache_result="bypass")),
    "saved_cost": Sum("cache_saved_cost"),
    "saved_tokens": Sum("cache_saved_tokens"),
    "saved_latency_ms": Sum("cache_saved_latency_ms"),
}


def cache_stats_summary(
    *,
    principal: Principal,
    group_by: str,
    start: date | None = None,
    end: date | None = None,
    filters: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Response cache hits, misses, hit rate and savings of the caller's requests (the spend
    API's scope), grouped by one dimension, from the request log: a row there says what the cache
    did (``cache_result``) and what a hit saved. Requests the cache did not see are not counted.
    Hits count the semantic tier's too (``semantic_hits`` says how many of them it answered).
    The hit rate is hits / (hits + misses), null without either. Money is a decimal string."""
    if group_by not in CACHE_STATS_GROUPS:
        raise ValueError(f"group_by must be one of {sorted(CACHE_STATS_GROUPS)}")
    logs = request_log_list(principal=principal).filter(**(filters or {})).exclude(cache_result="")
    if start is not None:
        logs = logs.filter(created_at__gte=_day_start(start))
    if end is not None:
        logs = logs.filter(created_at__lt=_day_start(end + timedelta(days=1)))
    logs = logs.order_by()
    column = CACHE_STATS_GROUPS[group_by]
    grouped = logs
    if group_by == "day":
        grouped = logs.annotate(day=TruncDate("created_at", tzinfo=UTC))
    rows = sorted(
        grouped.values(column).annotate(**CACHE_SUMS),
        key=lambda row: (row[column] is None, row[column]),
    )
    names = _group_names(group_by=group_by, values=[row[column] for row in rows])
    results = []
    for row in rows:
        value = row[column]
        named = {f"{group_by}_name": names.get(value)} if group_by in _NAMED_GROUPS else {}
        shown = value.isoformat() if isinstance(value, date) else value
        results.append({group_by: shown, **named, **cache_totals(row)})
    requested = _requested_range(start=start, end=end)
    return {
        "group_by": group_by,
        "start": requested[0],
        "end": requested[1],
        "results": results,
        "total": cache_totals(_cache_sum(rows)),  # the groups do not overlap: one query
    }


def _cache_sum(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {name: sum((row[name] or 0) for row in rows) for name in CACHE_SUMS}


def cache_totals(row: dict[str, Any]) -> dict[str, Any]:
    hits, misses, bypasses = row["hits"] or 0, row["misses"] or 0, row["bypasses"] or 0
    looked_up = hits + misses
    return {
        "requests": hits + misses + bypasses,
        "hits": hits,
        "semantic_hits": row["semantic_hits"] or 0,
        "misses": misses,
        "bypasses": bypasses,
        "hit_rate": round(hits / looked_up, 4) if looked_up else None,
        "saved_cost": usd_str(row["saved_cost"] or Decimal("0")),
        "saved_tokens": row["saved_tokens"] or 0,
        "saved_latency_ms": row["saved_latency_ms"] or 0,
    }


def cache_chart_data(
    *,
    principal: Principal,
    start: date,
    end: date,
    organization_id: int | None = None,
    team_id: int | None = None,
) -> dict[str, Any]:
    """The response cache's totals and daily hits and saved cost (admin's spend dashboard and the
    portal), read as ``cache_stats_summary`` reads them."""
    filters: dict[str, Any] = {}
    if organization_id is not None:
        filters["organization_id"] = organization_id
    if team_id is not None:
        filters["team_id"] = team_id
    summary = cache_stats_summary(
        principal=principal, group_by="day", start=start, end=end, filters=filters
    )
    per_day = {row["day"]: row for row in summary["results"]}
    labels = [
        (start + timedelta(days=offset)).isoformat() for offset in range((end - start).days + 1)
    ]
    return {
        "total": summary["total"],
        "series": [
            {
                "label": "Saved by cache hits",
                "spend": [per_day.get(day, {}).get("saved_cost", usd_str(0)) for day in labels],
                "tokens": [per_day.get(day, {}).get("saved_tokens", 0) for day in labels],
            }
        ],
        "hits": [per_day.get(day, {}).get("hits", 0) for day in labels],
    }


def budget_template_list() -> QuerySet[BudgetTemplate]:
    return BudgetTemplate.objects.all()


def budget_template_get(*, budget_id: str) -> BudgetTemplate | None:
    return BudgetTemplate.objects.filter(budget_id=budget_id).first()


# ---- alerts (gateway/alerting.py evaluates them, billing/incidents.py keeps the incidents) ----


@dataclass(frozen=True, slots=True)
class DeploymentStats:
    requests: int
    errors: int  # answers of 500 and above
    p95_latency_ms: float | None  # of the successful answers not served by the cache


def deployment_request_stats(
    *, since: datetime, until: datetime, max_samples: int = 20_000
) -> dict[str, DeploymentStats]:
    """Per deployment, the requests logged in [since, until): count, errors, p95 latency. The
    p95 is PostgreSQL's percentile_cont, elsewhere computed here over at most `max_samples`
    latencies per deployment (the embedded default's traffic)."""
    logs = RequestLog.objects.filter(created_at__gte=since, created_at__lt=until).exclude(
        deployment=""
    )
    counts = logs.values("deployment").annotate(
        requests=Count("pk"), errors=Count("pk", filter=Q(status_code__gte=500))
    )
    ok = logs.filter(status_code__lt=400, cache_hit=False)
    p95: dict[str, float] = {}
    if connection.vendor == "postgresql":
        for row in ok.values("deployment").annotate(p95=_Percentile95("latency_ms")):
            p95[row["deployment"]] = float(row["p95"])
    else:
        samples: dict[str, list[int]] = {}
        for deployment, latency in ok.values_list("deployment", "latency_ms")[:max_samples]:
            samples.setdefault(deployment, []).append(latency)
        p95 = {name: _p95(values) for name, values in samples.items()}
    return {
        row["deployment"]: DeploymentStats(
            requests=row["requests"],
            errors=row["errors"],
            p95_latency_ms=p95.get(row["deployment"]),
        )
        for row in counts
    }


class _Percentile95(Aggregate):
    function = "percentile_cont"
    template = "%(function)s(0.95) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


def _p95(values: list[int]) -> float:
    """percentile_cont(0.95): linear interpolation between the closest ranks."""
    ordered = sorted(values)
    position = 0.95 * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spend_by_day(*, scope: str, since: date, until: date) -> dict[tuple[int, date], Decimal]:
    """Spend per (organization or team id, UTC day) over the days [since, until]."""
    column = {"organization": "organization_id", "team": "team_id"}[scope]
    rows = (
        RequestLog.objects.filter(
            created_at__gte=_day_start(since), created_at__lt=_day_start(until + timedelta(days=1))
        )
        .exclude(**{f"{column}__isnull": True})
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values(column, "day")
        .annotate(spend=Sum("cost"))
    )
    return {(row[column], row["day"]): row["spend"] or Decimal("0") for row in rows}
