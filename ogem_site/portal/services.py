"""Portal writes: each checks the caller's role as /api/v1 does and records an audit event."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction

from keys.models import VirtualKey
from keys.permissions import key_change_allowed, key_create_refusal
from keys.services import IssuedKey, key_create, key_revoke, key_rotate
from tenants.audit import audit_record, audit_snapshot
from tenants.models import Team
from tenants.principals import Principal

_KEY_SNAPSHOT_EXCLUDE = ("digest", "previous_digest")


@transaction.atomic
def portal_key_create(*, principal: Principal, team: Team, name: str) -> IssuedKey:
    """A key owned by the caller in one of their teams; the secret is returned this once."""
    refusal = key_create_refusal(
        principal=principal, team=team, organization=None, user=principal.user, settings=["name"]
    )
    if refusal is not None:
        raise PermissionDenied(refusal)
    issued = key_create(name=name, team=team, user=principal.user, created_by=principal.user)
    audit_record(
        action="key.create",
        target=issued.key,
        organization_id=issued.key.organization_id,
        after=audit_snapshot(issued.key, exclude=_KEY_SNAPSHOT_EXCLUDE),
    )
    return issued


@transaction.atomic
def portal_key_revoke(*, principal: Principal, key: VirtualKey) -> VirtualKey:
    if not key_change_allowed(principal=principal, key=key):
        raise PermissionDenied("You cannot change this key.")
    before = audit_snapshot(key, exclude=_KEY_SNAPSHOT_EXCLUDE)
    key = key_revoke(key=key)
    audit_record(
        action="key.revoke",
        target=key,
        organization_id=key.organization_id,
        before=before,
        after=audit_snapshot(key, exclude=_KEY_SNAPSHOT_EXCLUDE),
    )
    return key


@transaction.atomic
def portal_key_rotate(*, principal: Principal, key: VirtualKey) -> IssuedKey:
    if not key_change_allowed(principal=principal, key=key):
        raise PermissionDenied("You cannot change this key.")
    if key.revoked_at is not None:
        raise PermissionDenied("A revoked key cannot be rotated.")
    before = audit_snapshot(key, exclude=_KEY_SNAPSHOT_EXCLUDE)
    issued = key_rotate(key=key)
    audit_record(
        action="key.rotate",
        target=issued.key,
        organization_id=issued.key.organization_id,
        before=before,
        after=audit_snapshot(issued.key, exclude=_KEY_SNAPSHOT_EXCLUDE),
    )
    return issued
