"""/key/generate, /key/info, /key/list, /key/update, /key/delete over /api/v1/keys."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from billing.models import BudgetScope
from billing.selectors import budget_list
from billing.services import budget_live_spend
from tenants.rest.base import request_principal
from tenants.selectors import user_list

from .base import (
    LiteLLMError,
    LiteLLMView,
    answer_or_raise,
    budget_duration_to_ogem,
    key_by_litellm_id,
    money,
    user_by_litellm_id,
)
from .budgets import template_values
from .dispatch import resource_call

# LiteLLM's names for the settings that Ogem's keys have under the same meaning.
_SAME_NAME = (
    "models",
    "max_budget",
    "soft_budget",
    "budget_duration",
    "tpm_limit",
    "rpm_limit",
    "max_parallel_requests",
    "metadata",
    "tags",
)
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def duration_parse(value: str) -> timedelta:
    """LiteLLM's durations: "30s", "20m", "1h", "7d", "2w"."""
    match = _DURATION.match(str(value).strip())
    if match is None:
        raise LiteLLMError(f"Invalid duration {value!r}: use e.g. 30s, 20m, 1h, 7d.")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def key_fields_to_ogem(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    """A LiteLLM key body as /api/v1/keys takes it (a `budget_id`'s limits filled in)."""
    body = template_values(body)
    data: dict[str, Any] = {name: body[name] for name in _SAME_NAME if name in body}
    if body.get("key_alias") is not None:
        data["name"] = body["key_alias"]
    if body.get("team_id") is not None:
        data["team"] = body["team_id"]
    if body.get("organization_id") is not None:
        data["organization"] = body["organization_id"]
    if body.get("user_id") is not None:
        data["user"] = user_by_litellm_id(
            principal=request_principal(request), user_id=body["user_id"]
        ).pk
    if body.get("duration") is not None:
        data["expires_at"] = (timezone.now() + duration_parse(body["duration"])).isoformat()
    if "budget_duration" in data:
        data["budget_duration"] = budget_duration_to_ogem(data["budget_duration"])
    if isinstance(body.get("guardrails"), list):
        # LiteLLM's per-key guardrails: Ogem reads them from the key's metadata
        # (docs/guardrails.md), which only the key's admins may write.
        data["metadata"] = {**(data.get("metadata") or {}), "guardrails": body["guardrails"]}
    return data


def usernames(request: Request, user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    visible = user_list(principal=request_principal(request)).filter(pk__in=user_ids)
    return dict(visible.values_list("pk", "username"))


def key_to_litellm(key: dict[str, Any], *, names: dict[int, str]) -> dict[str, Any]:
    """An /api/v1 key as LiteLLM shows it. `token` is Ogem's key id: LiteLLM's hashed token
    plays the same part (a name for the key that is not its secret)."""
    user = key.get("user")
    return {
        "token": str(key["id"]),
        "key_alias": key.get("name"),
        "key_name": key.get("key_prefix"),
        "spend": money(key.get("spend")) or 0.0,
        "max_budget": money(key.get("max_budget")),
        "soft_budget": money(key.get("soft_budget")),
        "budget_duration": key.get("budget_duration"),
        "budget_reset_at": key.get("budget_reset_at"),
        "models": key.get("models", []),
        "tpm_limit": key.get("tpm_limit"),
        "rpm_limit": key.get("rpm_limit"),
        "max_parallel_requests": key.get("max_parallel_requests"),
        "metadata": key.get("metadata") or {},
        "tags": key.get("tags") or [],
        "team_id": _str_or_none(key.get("team")),
        "organization_id": _str_or_none(key.get("organization")),
        "user_id": names.get(user, str(user)) if user is not None else None,
        "expires": key.get("expires_at"),
        "blocked": key.get("status") == "revoked",
        "created_at": key.get("created_at"),
        "updated_at": key.get("updated_at"),
    }


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None


def _shown(request: Request, key: dict[str, Any]) -> dict[str, Any]:
    user = key.get("user")
    shown = key_to_litellm(key, names=usernames(request, {user} if user is not None else set()))
    # A budgeted key's period spend lives in its budget's counter until the period ends; the
    # row Ogem's key answer reads is written then. LiteLLM clients poll /key/info for it.
    budget = (
        budget_list(principal=request_principal(request))
        .filter(scope=BudgetScope.KEY, key_id=key["id"])
        .first()
    )
    live = budget_live_spend(budget=budget) if budget is not None else None
    if live is not None:
        shown["spend"] = float(live)
    return shown


class KeyGenerateView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        if body.get("key"):
            raise LiteLLMError(
                "Ogem issues every key's secret itself: `key` cannot be chosen "
                "(import existing keys with manage.py import_litellm)."
            )
        data = key_fields_to_ogem(request, body)
        data.setdefault("name", "key")  # LiteLLM's alias is optional, Ogem's name is not
        created = answer_or_raise(resource_call(request, resource="keys", method="POST", body=data))
        shown = _shown(request, created)
        return Response({**shown, "key": created["key"]})


class KeyInfoView(LiteLLMView):
    def get(self, request: Request) -> Response:
        wanted = request.query_params.get("key")
        if wanted:
            key = key_by_litellm_id(principal=self.principal, key=wanted)
            key_id = key.pk
        else:
            if self.principal.via_key_id is None:
                raise LiteLLMError("Give the key: /key/info?key=sk-...")
            key_id = self.principal.via_key_id  # LiteLLM: the calling key's own info
            wanted = str(key_id)
        found = answer_or_raise(resource_call(request, resource="keys", method="GET", pk=key_id))
        return Response({"key": wanted, "info": _shown(request, found)})


class KeyListView(LiteLLMView):
    def get(self, request: Request) -> Response:
        params = request.query_params
        try:
            page = max(int(params.get("page", 1)), 1)
            size = min(max(int(params.get("size", 10)), 1), 100)
        except ValueError as exc:
            raise LiteLLMError("page and size must be integers.") from exc
        query: dict[str, Any] = {
            "limit": size,
            "offset": (page - 1) * size,
            "team": params.get("team_id"),
            "organization": params.get("organization_id"),
            "status": "active",
        }
        if params.get("user_id"):
            query["user"] = user_by_litellm_id(
                principal=self.principal, user_id=params["user_id"]
            ).pk
        if params.get("key_alias"):
            query["search"] = params["key_alias"]
        listed = answer_or_raise(resource_call(request, resource="keys", method="GET", query=query))
        rows = listed["results"]
        if params.get("key_alias"):
            rows = [row for row in rows if row.get("name") == params["key_alias"]]
        full = params.get("return_full_object", "false").lower() == "true"
        names = usernames(request, {row["user"] for row in rows if row.get("user") is not None})
        keys = [key_to_litellm(row, names=names) if full else str(row["id"]) for row in rows]
        total = listed["count"]
        return Response(
            {
                "keys": keys,
                "total_count": total,
                "current_page": page,
                "total_pages": max((total + size - 1) // size, 1),
            }
        )


class KeyUpdateView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        key = key_by_litellm_id(principal=self.principal, key=body.get("key"))
        data = key_fields_to_ogem(request, body)
        for moved in ("team", "organization"):
            if moved in data and str(data[moved]) != str(getattr(key, f"{moved}_id")):
                raise LiteLLMError(f"A key cannot move to another {moved}: create a new key.")
            data.pop(moved, None)
        updated = answer_or_raise(
            resource_call(request, resource="keys", method="PATCH", pk=key.pk, body=data)
        )
        return Response(_shown(request, updated))


class KeyDeleteView(LiteLLMView):
    def post(self, request: Request) -> Response:
        body = self.body()
        named = list(body.get("keys") or [])
        aliases = body.get("key_aliases") or []
        if not isinstance(named, list) or not isinstance(aliases, list):
            raise LiteLLMError("keys and key_aliases must be lists.")
        keys = [key_by_litellm_id(principal=self.principal, key=value) for value in named]
        for alias in aliases:
            listed = answer_or_raise(
                resource_call(request, resource="keys", method="GET", query={"search": alias})
            )
            matching = [row["id"] for row in listed["results"] if row.get("name") == alias]
            if not matching:
                raise LiteLLMError(f"Key not found: {alias}", status=404)
            keys.extend(key_by_litellm_id(principal=self.principal, key=pk) for pk in matching)
        for key in keys:
            answer_or_raise(resource_call(request, resource="keys", method="DELETE", pk=key.pk))
        return Response({"deleted_keys": named + list(aliases)})
