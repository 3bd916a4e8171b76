from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from keys.budgets import KeyBudget, key_budget_store
from keys.cache import key_cache_invalidation_record
from keys.models import VirtualKey
from keys.permissions import (
    KEY_BUDGET_SETTINGS,
    KEY_FIELDS,
    KEY_ISSUER_MISSING,
    KEY_SETTINGS,
    key_issuer_missing,
    key_settings_changeable,
)
from keys.selectors import key_prefixes_list
from ogem_site.hashing import LEGACY_SHA256, current_pepper_id, secret_digest, secret_generate
from tenants.audit import audit_record
from tenants.models import Organization, Team, User
from tenants.principals import Principal
from tenants.selectors import principal_user_id


@dataclass(frozen=True)
class IssuedKey:
    key: VirtualKey
    secret: str


@transaction.atomic
def key_create(
    *,
    name: str,
    organization: Organization | None = None,
    team: Team | None = None,
    user: User | None = None,
    created_by: User | None = None,
    models: list[str] | None = None,
    expires_at: datetime | None = None,
    metadata: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    max_parallel_requests: int | None = None,
    endpoint_limits: dict[str, dict[str, int]] | None = None,
    max_budget: Decimal | None = None,
    soft_budget: Decimal | None = None,
    budget_duration: str | None = None,
) -> IssuedKey:
    """Create a key. The returned secret exists nowhere else: show it once."""
    if team is not None:
        organization = team.organization
    new = secret_generate()
    key = VirtualKey.objects.create(
        name=name,
        organization=organization,
        team=team,
        user=user,
        created_by=created_by,
        prefix=new.prefix,
        digest=new.digest,
        pepper_id=new.pepper_id,
        allowed_models=list(models or []),
        expires_at=expires_at,
        metadata=dict(metadata or {}),
        tags=list(tags or []),
        rpm_limit=rpm_limit,
        tpm_limit=tpm_limit,
        max_parallel_requests=max_parallel_requests,
        endpoint_limits=dict(endpoint_limits or {}),
    )
    if max_budget is not None or soft_budget is not None:
        key_budget_store().set(
            key,
            KeyBudget(
                max_budget=max_budget, soft_budget=soft_budget, duration=budget_duration or ""
            ),
        )
    return IssuedKey(key=key, secret=new.secret)


def key_legacy_create(
    *,
    lookup_prefix: str,
    sha256_digest: str,
    organization: Organization | None,
    team: Team | None,
    **fields: Any,
) -> VirtualKey:
    """A key imported from another gateway, which stored sha256(secret): it keeps working with
    the secret its holder has (ogem_site/hashing.py, LEGACY_SHA256)."""
    unknown = set(fields) - set(KEY_FIELDS)
    if unknown:
        raise ValueError(f"cannot set {sorted(unknown)}")
    if team is not None:
        organization = team.organization
    return VirtualKey.objects.create(
        prefix=lookup_prefix,
        digest=sha256_digest,
        pepper_id=LEGACY_SHA256,
        organization=organization,
        team=team,
        **fields,
    )


def key_digest_upgrade(*, key: VirtualKey, secret: str) -> bool:
    """Replace an imported key's LiteLLM SHA-256 with Ogem's HMAC under the current pepper, once
    its secret has been verified. Conditional on the row still holding that SHA-256, so two
    workers upgrading at once write once. The lookup prefix stays (the secret has no other)."""
    if key.pepper_id != LEGACY_SHA256:
        return False
    pepper_id = current_pepper_id()
    digest = secret_digest(secret=secret, pepper_id=pepper_id)
    updated = VirtualKey.objects.filter(
        pk=key.pk, pepper_id=LEGACY_SHA256, digest=key.digest
    ).update(digest=digest, pepper_id=pepper_id)
    key.digest, key.pepper_id = digest, pepper_id
    return bool(updated)


def key_revoke(*, key: VirtualKey) -> VirtualKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at", "updated_at"])
    _key_changed(key=key)
    return key


@transaction.atomic
def key_rotate(*, key: VirtualKey, grace_period: timedelta | None = None) -> IssuedKey:
    """Issue a new secret. The old one keeps working for ``grace_period`` (default: not at all)."""
    new = secret_generate()
    if grace_period and grace_period.total_seconds() > 0:
        key.previous_prefix = key.prefix
        key.previous_digest = key.digest
        key.previous_pepper_id = key.pepper_id
        key.previous_expires_at = timezone.now() + grace_period
    else:
        key.previous_prefix = None
        key.previous_digest = ""
        key.previous_pepper_id = None
        key.previous_expires_at = None
    old_prefix = key.prefix
    key.prefix = new.prefix
    key.digest = new.digest
    key.pepper_id = new.pepper_id
    key.save()
    _key_changed(key=key, extra_prefixes=[old_prefix])
    return IssuedKey(key=key, secret=new.secret)


def key_update(*, key: VirtualKey, **fields: Any) -> VirtualKey:
    unknown = set(fields) - set(KEY_FIELDS)
    if unknown:
        raise ValueError(f"cannot update {sorted(unknown)}")
    for name, value in fields.items():
        setattr(key, name, value)
    key.save()
    _key_changed(key=key)
    return key


@transaction.atomic
def key_change(*, principal: Principal, key: VirtualKey, changes: dict[str, Any]) -> VirtualKey:
    """Apply ``changes`` (key settings, names as in keys.permissions.KEY_SETTINGS) for the
    principal, or raise PermissionDenied naming the settings their role does not change.

    Values equal to the stored ones are no change, so a full form or PUT that repeats them passes.
    """
    unknown = set(changes) - KEY_SETTINGS
    if unknown:
        raise ValueError(f"cannot change {sorted(unknown)}")
    stored = VirtualKey.objects.select_related("user").get(pk=key.pk)
    budget = key_budget_store().get(stored)
    current: dict[str, Any] = {
        name: getattr(stored, name) for name in changes if name not in KEY_BUDGET_SETTINGS
    }
    current["max_budget"] = budget.max_budget if budget else None
    current["soft_budget"] = budget.soft_budget if budget else None
    current["budget_duration"] = (budget.duration if budget else None) or None
    if "budget_duration" in changes:  # "" and None both mean "never resets"
        changes = {**changes, "budget_duration": changes["budget_duration"] or None}
    changed = {name: value for name, value in changes.items() if value != current[name]}
    refused = sorted(set(changed) - key_settings_changeable(principal=principal, key=stored))
    if refused:
        raise PermissionDenied(f"Only the key's team admins change {', '.join(refused)}.")
    fields = {name: value for name, value in changed.items() if name not in KEY_BUDGET_SETTINGS}
    if "user" in fields:
        # Reassigning issues the key to its new owner: record by whom, so that it acts as them
        # on /api/v1 only when they or a proxy admin did (key_grants_management).
        if key_issuer_missing(principal=principal):
            raise PermissionDenied(KEY_ISSUER_MISSING)
        key.created_by = principal.user if principal_user_id(principal=principal) else None
    if fields:
        key = key_update(key=key, **fields)
    if any(name in changed for name in KEY_BUDGET_SETTINGS):
        key_budget_set(
            key=key,
            max_budget=changed.get("max_budget", current["max_budget"]),
            soft_budget=changed.get("soft_budget", current["soft_budget"]),
            budget_duration=changed.get("budget_duration", current["budget_duration"]),
        )
    return key


def _key_changed(*, key: VirtualKey, extra_prefixes: list[str] | None = None) -> None:
    """Tell every worker's key cache to forget this key (after the transaction commits)."""
    prefixes = [key.prefix, *(extra_prefixes or [])]
    if key.previous_prefix:
        prefixes.append(key.previous_prefix)
    key_cache_invalidation_record(prefixes=prefixes)


def key_cache_forget(*, team: Team | None = None, organization: Organization | None = None) -> None:
    """Every worker forgets the cached callers of a team's or organization's keys (after the
    transaction commits): their routing settings (regions, priority, tags) come from the team's
    and organization's metadata. Call before deleting, while the keys can still be listed."""
    prefixes = key_prefixes_list(
        team_id=team.pk if team is not None else None,
        organization_id=organization.pk if organization is not None else None,
    )
    if prefixes:
        key_cache_invalidation_record(prefixes=prefixes)


def key_revoke_all(
    *,
    user: User | None = None,
    organization: Organization | None = None,
    team: Team | None = None,
    audit_reason: str | None = None,
) -> None:
    """Revoke the live keys of a user in an organization (they left it), or of a team (it is being
    deleted). With ``audit_reason``, each revocation is audited under it."""
    keys = VirtualKey.objects.filter(revoked_at__isnull=True)
    if user is not None:
        keys = keys.filter(user=user, organization=organization)
    else:
        keys = keys.filter(team=team)
    for key in keys:
        key_revoke(key=key)
        if audit_reason is not None:
            audit_record(
                action="key.revoke",
                target=key,
                organization_id=key.organization_id,
                before={"revoked_at": None},
                after={"revoked_at": key.revoked_at, "reason": audit_reason},
            )


def key_delete(*, key: VirtualKey) -> None:
    """Delete a key for good; caches forget it like a revocation."""
    _key_changed(key=key)
    key.delete()


def key_budget_set(
    *,
    key: VirtualKey,
    max_budget: Decimal | None,
    soft_budget: Decimal | None = None,
    budget_duration: str | None = None,
) -> None:
    """Set the key's own budget (``max_budget`` None and no soft budget removes the limit)."""
    key_budget_store().set(
        key,
        KeyBudget(max_budget=max_budget, soft_budget=soft_budget, duration=budget_duration or ""),
    )
    _key_changed(key=key)
