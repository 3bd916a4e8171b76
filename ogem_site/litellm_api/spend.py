"""/spend/logs and /global/spend/report over Ogem's request log, scoped like /api/v1/spend."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from billing.models import RequestLog
from billing.selectors import request_log_list
from tenants.selectors import team_list, user_list

from .base import LiteLLMError, LiteLLMView, key_by_litellm_id, user_by_litellm_id

# The newest rows /spend/logs returns at most: LiteLLM's own route is unbounded, a gateway's
# request log is not small.
SPEND_LOGS_MAX = 1000


def _day(value: str | None, *, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise LiteLLMError(f"{name} must be a date (YYYY-MM-DD).") from exc


def _range(request: Request, logs: Any) -> Any:
    start = _day(request.query_params.get("start_date"), name="start_date")
    end = _day(request.query_params.get("end_date"), name="end_date")
    zone = timezone.get_current_timezone()
    if start is not None:
        logs = logs.filter(created_at__gte=datetime.combine(start, time.min, tzinfo=zone))
    if end is not None:
        following = datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone)
        logs = logs.filter(created_at__lt=following)
    return logs


def _log_to_litellm(log: RequestLog, *, usernames: dict[int, str]) -> dict[str, Any]:
    ended = log.created_at + timedelta(milliseconds=log.latency_ms)
    return {
        "request_id": log.request_id,
        "call_type": log.endpoint,
        "api_key": str(log.key_id) if log.key_id is not None else None,
        "spend": float(log.cost),
        "total_tokens": log.total_tokens,
        "prompt_tokens": log.prompt_tokens,
        "completion_tokens": log.completion_tokens,
        "startTime": log.created_at.isoformat(),
        "endTime": ended.isoformat(),
        "model": log.model,
        "model_group": log.model,
        "custom_llm_provider": log.provider,
        "user": usernames.get(log.user_id, "") if log.user_id is not None else "",
        "team_id": str(log.team_id) if log.team_id is not None else None,
        "organization_id": str(log.organization_id) if log.organization_id is not None else None,
        "end_user": log.end_customer,
        "status": "success" if log.status_code < 400 else "failure",
        "cache_hit": str(log.cache_hit),
        "request_tags": log.tags,
        "metadata": {"status_code": log.status_code},
    }


class SpendLogsView(LiteLLMView):
    def get(self, request: Request) -> Response:
        params = request.query_params
        principal = self.principal
        logs = request_log_list(principal=principal)
        if params.get("api_key"):
            logs = logs.filter(
                key_id=key_by_litellm_id(principal=principal, key=params["api_key"]).pk
            )
        if params.get("user_id"):
            user = user_by_litellm_id(principal=principal, user_id=params["user_id"])
            logs = logs.filter(user_id=user.pk)
        if params.get("request_id"):
            logs = logs.filter(request_id=params["request_id"])
        if params.get("team_id"):
            logs = (
                logs.filter(team_id=params["team_id"])
                if params["team_id"].isdigit()
                else logs.none()
            )
        rows = list(_range(request, logs).order_by("-created_at")[:SPEND_LOGS_MAX])
        user_ids = {row.user_id for row in rows if row.user_id is not None}
        names = dict(
            user_list(principal=principal).filter(pk__in=user_ids).values_list("pk", "username")
        )
        return Response([_log_to_litellm(row, usernames=names) for row in rows])


_GROUPS = {
    "team": ("team_id", "teams"),
    "customer": ("end_customer", "customers"),
    "api_key": ("key_id", "api_keys"),
}


class GlobalSpendReportView(LiteLLMView):
    """Spend per day, per team (LiteLLM's default), customer or key, with each model's share."""

    def get(self, request: Request) -> Response:
        group_by = request.query_params.get("group_by") or "team"
        if group_by not in _GROUPS:
            raise LiteLLMError("group_by is team, customer or api_key.")
        column, plural = _GROUPS[group_by]
        logs = _range(request, request_log_list(principal=self.principal))
        rows = (
            logs.annotate(day=TruncDate("created_at"))
            .values("day", column, "model")
            .annotate(spend=Sum("cost"), tokens=Sum("total_tokens"), requests=Count("id"))
            .order_by("day", column, "model")
        )
        team_names: dict[int, str] = {}
        if group_by == "team":
            team_names = dict(team_list(principal=self.principal).values_list("pk", "name"))
        days: dict[Any, dict[Any, dict[str, Any]]] = defaultdict(dict)
        for row in rows:
            group = row[column]
            entry = days[row["day"]].setdefault(group, {"total_spend": 0.0, "metadata": []})
            entry["total_spend"] += float(row["spend"] or 0)
            entry["metadata"].append(
                {
                    "model": row["model"],
                    "spend": float(row["spend"] or 0),
                    "total_tokens": row["tokens"] or 0,
                    "api_requests": row["requests"],
                }
            )
        report = []
        for day, groups in sorted(days.items()):
            entries = []
            for group, entry in groups.items():
                name_field = {"team": "team_name", "customer": "customer", "api_key": "api_key"}
                label = team_names.get(group, str(group)) if group_by == "team" else group
                entries.append(
                    {name_field[group_by]: label if group is not None else None, **entry}
                )
            report.append({"group_by_day": day.isoformat(), plural: entries})
        return Response(report)
