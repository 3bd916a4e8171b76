"""Portal reads: the caller's keys, teams, models and usage, as /api/v1 shows them."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from batches.selectors import batch_list
from billing.models import BudgetScope
from billing.selectors import budget_list, cache_stats_summary, spend_summary
from fine_tuning.models import FineTuningJob
from fine_tuning.selectors import job_list
from gateway.model_health import deployment_kind
from gateway.registry import registry_get
from keys.budgets import usd_str
from keys.models import VirtualKey
from keys.selectors import key_list, key_status
from providers.base import Endpoint
from providers.registry import adapter_get
from tenants.models import Role, Team
from tenants.principals import Principal
from tenants.selectors import principal_can_create_own_key, team_list
from vector_stores.selectors import store_file_counts_map, store_list, store_status

# The chat model the portal offers first when it is served (the embedded default's).
PREFERRED_CHAT_MODEL = "mock-chat"


def portal_batch_rows(*, principal: Principal, limit: int = 50) -> list[dict[str, Any]]:
    """The newest batches the principal may see, with their progress (done and percent)."""
    rows = []
    for batch in batch_list(principal=principal).order_by("-created_at", "-pk")[:limit]:
        done = batch.request_completed + batch.request_failed
        total = batch.request_total
        percent = min(100, round(100 * done / total)) if total else 0
        rows.append({"batch": batch, "done": done, "percent": percent})
    return rows


def portal_vector_store_rows(*, principal: Principal, limit: int = 50) -> list[dict[str, Any]]:
    """The newest vector stores the principal may see (the same as admin's), with their files
    by status and their indexing progress (files done and percent)."""
    stores = list(store_list(principal=principal).order_by("-created_at", "-pk")[:limit])
    counted = store_file_counts_map(store_pks=[store.pk for store in stores])
    rows = []
    for store in stores:
        counts = counted[store.pk]
        done = counts["total"] - counts["in_progress"]
        percent = min(100, round(100 * done / counts["total"])) if counts["total"] else 100
        rows.append(
            {
                "store": store,
                "counts": counts,
                "status": store_status(store=store, counts=counts),
                "done": done,
                "percent": percent,
            }
        )
    return rows


def portal_fine_tuning_jobs(*, principal: Principal, limit: int = 50) -> list[FineTuningJob]:
    """The newest fine-tuning jobs the principal may see."""
    return list(job_list(principal=principal).order_by("-created_at", "-pk")[:limit])


def portal_key_list(*, principal: Principal) -> QuerySet[VirtualKey]:
    """The same keys the management API shows this caller, newest first."""
    return key_list(principal=principal).order_by("-created_at")


def portal_key_get(*, principal: Principal, key_id: int) -> VirtualKey | None:
    return key_list(principal=principal).filter(pk=key_id).first()


def portal_key_teams(*, principal: Principal) -> list[Team]:
    """Teams in which the caller may create a key for themselves (viewers get none)."""
    return [
        team
        for team in team_list(principal=principal)
        if principal_can_create_own_key(principal=principal, team=team)
    ]


def portal_team_rows(*, principal: Principal) -> list[dict[str, Any]]:
    """The caller's teams with their role there and the team budget, if any."""
    budgets = {
        budget.team_id: budget
        for budget in budget_list(principal=principal).filter(scope=BudgetScope.TEAM)
    }
    rows = []
    for team in team_list(principal=principal):
        role = principal.team_roles.get(team.pk) or principal.org_roles.get(team.organization_id)
        if role is None and principal.is_proxy_admin:
            role = Role.PROXY_ADMIN
        budget = budgets.get(team.pk)
        rows.append(
            {
                "team": team,
                "role": role or "",
                "role_label": Role(role).label if role else "",
                "budget": budget,
                "used_percent": _percent(budget),
            }
        )
    return rows


def _percent(budget: Any) -> int | None:
    if budget is None or not budget.max_budget:
        return None
    return min(100, round(float(budget.spend) * 100 / float(budget.max_budget)))


def portal_model_list(*, principal: Principal) -> list[dict[str, Any]]:
    """Model names served to the caller's organizations (or to every organization), each marked
    `chat` when a deployment of it serves chat completions (docs/portal.md)."""
    org_ids = principal.visible_org_ids()
    models: dict[str, dict[str, Any]] = {}
    for name, deployments in sorted(registry_get().by_model.items()):
        usable = [
            d
            for d in deployments
            if principal.is_proxy_admin or d.organization_id is None or d.organization_id in org_ids
        ]
        if usable:
            models[name] = {
                "name": name,
                "providers": sorted({d.provider for d in usable}),
                "deployments": len(usable),
                "chat": any(deployment_kind(d) == Endpoint.CHAT for d in usable),
                # A provider that can hold a Realtime session (the playground's realtime mode).
                "realtime": any(_realtime_capable(d.provider) for d in usable),
            }
    return list(models.values())


def _realtime_capable(provider: str) -> bool:
    adapter = adapter_get(provider)
    return adapter is not None and Endpoint.REALTIME in adapter.endpoints


def portal_realtime_keys(*, principal: Principal) -> list[VirtualKey]:
    """The caller's own active keys: those the playground may mint a Realtime secret for."""
    user_id = getattr(principal.user, "pk", None)
    if user_id is None:
        return []
    now = timezone.now()
    return [
        key
        for key in key_list(principal=principal).filter(user_id=user_id).order_by("-created_at")
        if key_status(key=key, now=now) == "active"
    ]


def portal_chat_model_default(*, models: list[dict[str, Any]]) -> str | None:
    """The chat model the portal preselects and shows in examples: `mock-chat` when served,
    else the first chat model by name, else None."""
    chat = [model["name"] for model in models if model["chat"]]
    if PREFERRED_CHAT_MODEL in chat:
        return PREFERRED_CHAT_MODEL
    return chat[0] if chat else None


def portal_usage(*, principal: Principal, days: int = 30) -> dict[str, Any]:
    """Daily spend and tokens of the last ``days`` days (UTC, today's not rolled up yet too),
    and totals by model and by key; money as decimal strings."""
    end = timezone.now().astimezone(UTC).date()
    start = end - timedelta(days=days - 1)
    by_day = spend_summary(principal=principal, group_by="day", start=start, end=end)
    by_model = spend_summary(principal=principal, group_by="model", start=start, end=end)
    by_key = spend_summary(principal=principal, group_by="key", start=start, end=end)
    per_day = {row["day"]: row for row in by_day["results"]}
    labels = [(start + timedelta(days=offset)).isoformat() for offset in range(days)]
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "total": by_day["total"],
        "chart": {
            "labels": labels,
            "spend": [per_day.get(day, {}).get("spend", usd_str(0)) for day in labels],
            "tokens": [per_day.get(day, {}).get("total_tokens", 0) for day in labels],
        },
        "cache": cache_stats_summary(principal=principal, group_by="model", start=start, end=end),
        "by_model": by_model["results"],
        "by_key": [
            {**row, "name": row["key_name"] or f"deleted key {row['key']}"}
            for row in by_key["results"]
        ],
    }
