"""Portal writes: each checks the caller's role as /api/v1 does and records an audit event."""

from __future__ import annotations

from datetime import timedelta

from asgiref.sync import async_to_sync
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from gateway.auth import caller_by_key_id
from gateway.errors import AuthenticationError
from gateway.registry import registry_get
from gateway.router import deployments_for
from gateway.services import realtime_client_secret_create
from keys.models import VirtualKey
from keys.permissions import key_change_allowed, key_create_refusal
from keys.services import IssuedKey, key_create, key_revoke, key_rotate
from providers.base import Endpoint
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


# The playground's secrets live a minute: enough to open the session, which then outlives it.
PLAYGROUND_SECRET_SECONDS = 60
PLAYGROUND_SESSION = {"type": "realtime", "output_modalities": ["text"]}


def portal_realtime_secret_create(
    *, principal: Principal, key: VirtualKey, model: str
) -> tuple[str, int]:
    """An ephemeral Realtime client secret (`ek_...`) for one of the caller's own keys, so that
    the playground's browser session never holds the key; (secret, expires_at epoch seconds).
    Raises PermissionDenied for a key that is not the caller's, and a GatewayError (OpenAI's
    status and body) when the key may not open a session on `model`."""
    if key.user_id is None or key.user_id != getattr(principal.user, "pk", None):
        raise PermissionDenied("Secrets are minted for your own keys only.")
    caller = async_to_sync(caller_by_key_id)(key_id=key.pk)
    if caller is None:
        raise AuthenticationError("This key is revoked or expired.", code="invalid_api_key")
    # 404 for a model the key's tenant cannot see, 403 when not allowed, 400 without Realtime.
    deployments_for(caller=caller, model=model, endpoint=Endpoint.REALTIME, registry=registry_get())
    now = timezone.now()
    expires_at = now + timedelta(seconds=PLAYGROUND_SECRET_SECONDS)
    value, _ = realtime_client_secret_create(
        key_id=key.pk, model=model, session=dict(PLAYGROUND_SESSION), expires_at=expires_at, now=now
    )
    return value, int(expires_at.timestamp())
