from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet
from django.utils import timezone

from keys.budgets import key_budget_store
from keys.models import VirtualKey
from ogem_site.hashing import key_lookup_prefix, secret_matches
from tenants.selectors import principal_org_read_ids, principal_owns, principal_team_read_ids

if TYPE_CHECKING:
    from tenants.principals import Principal


def key_authenticate(*, secret: str) -> VirtualKey | None:
    """The active key for a secret (current or in its rotation grace period), else None. A key
    imported from LiteLLM is found by its legacy prefix and checked against its SHA-256."""
    prefix = key_lookup_prefix(secret)
    if prefix is None:
        return None
    key = (
        VirtualKey.objects.select_related("user", "team", "organization")
        .filter(Q(prefix=prefix) | Q(previous_prefix=prefix))
        .first()
    )
    if key is None:
        return None
    now = timezone.now()
    if key.prefix == prefix:
        valid = secret_matches(secret=secret, digest=key.digest, pepper_id=key.pepper_id)
    else:
        valid = (
            key.previous_expires_at is not None
            and key.previous_expires_at > now
            and key.previous_pepper_id is not None
            and secret_matches(
                secret=secret, digest=key.previous_digest, pepper_id=key.previous_pepper_id
            )
        )
    if not valid or not key_is_active(key=key, now=now):
        return None
    return key


def key_prefixes_list(
    *, team_id: int | None = None, organization_id: int | None = None
) -> list[str]:
    """The current and pre-rotation prefixes of a team's or an organization's keys."""
    keys = VirtualKey.objects.all()
    if team_id is not None:
        keys = keys.filter(team_id=team_id)
    if organization_id is not None:
        keys = keys.filter(
            Q(organization_id=organization_id) | Q(team__organization_id=organization_id)
        )
    prefixes: list[str] = []
    for prefix, previous in keys.values_list("prefix", "previous_prefix"):
        prefixes.append(prefix)
        if previous:
            prefixes.append(previous)
    return prefixes


def key_get_active(*, key_id: int, now: datetime) -> VirtualKey | None:
    """An active key by id, with its team and organization (the gateway's Caller needs them)."""
    key = (
        VirtualKey.objects.select_related("user", "team", "organization").filter(pk=key_id).first()
    )
    return key if key is not None and key_is_active(key=key, now=now) else None


def key_is_active(*, key: VirtualKey, now=None) -> bool:  # type: ignore[no-untyped-def]
    now = now or timezone.now()
    if key.revoked_at is not None:
        return False
    return key.expires_at is None or key.expires_at > now


def key_list(*, principal: Principal) -> QuerySet[VirtualKey]:
    """Keys the principal may see, with their key budget (if any) annotated as ``budget_*``."""
    keys = key_budget_store().annotate(
        VirtualKey.objects.select_related("organization", "team", "user")
    )
    if principal.is_proxy_admin:
        return keys
    return keys.filter(
        Q(organization_id__in=principal_org_read_ids(principal=principal))
        | Q(team_id__in=principal_team_read_ids(principal=principal))
        | principal_owns(principal=principal)
    )


def key_spend_attach(*, keys: list[VirtualKey]) -> list[VirtualKey]:
    """Give each key (from ``key_list``) its spend, one read for all of them, budget or not:
    ``total_spend``, everything it has spent; ``spend``, what it has spent in its current budget
    period when its budget has a limit (the live counter's, so up to date mid-period), else
    ``total_spend``."""
    store = key_budget_store()
    ids = [key.pk for key in keys]
    totals = store.spend(ids)
    limited_ids = [
        key.pk
        for key in keys
        if getattr(key, "budget_max", None) is not None
        or getattr(key, "budget_soft", None) is not None
    ]
    periods = store.period_spend(limited_ids) if limited_ids else {}
    with_budget = set(limited_ids)
    for key in keys:
        key.total_spend = totals.get(key.pk, Decimal("0"))  # type: ignore[attr-defined]
        period = periods.get(key.pk, getattr(key, "budget_spend", None))
        limited = key.pk in with_budget
        key.spend = period if limited and period is not None else key.total_spend  # type: ignore[attr-defined]
    return keys


def key_status(*, key: VirtualKey, now: datetime | None = None) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= (now or timezone.now()):
        return "expired"
    return "active"
