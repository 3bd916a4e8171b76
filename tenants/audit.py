"""The audit log: who changed what, when, from where, and through which surface.

Services record changes with ``audit_record(...)``; they never see the request. The surface that
handles a request (admin, portal, management API, SCIM) sets the actor once, for the duration of
the request, with ``audit_actor(...)``::

    with audit_actor(actor=audit_actor_name(user=request.user), surface=AuditSurface.API,
                     user_id=request.user.pk, ip_address=audit_client_ip(request=request)):
        team_update(team=team, name="Platform")  # calls audit_record(...) inside

DRF views get this from ``AuditActorViewMixin`` (put it first in the bases).

    # inside a service:
    audit_record(
        action="team.update",            # "<target type>.<verb>", lower-case
        target=team,                     # or target_type="team", target_id="42"
        organization_id=team.organization_id,
        before=before_snapshot,          # audit_snapshot(...) of the old state, or None
        after=audit_snapshot(team),      # the new state, or None for a deletion
    )

Secrets never reach the log: snapshots drop every field whose name looks like a credential.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Model, QuerySet
from django.forms.models import model_to_dict

from ogem_site.env import env_str
from tenants.models import AuditEvent, AuditSurface

_SECRET_MARKERS = ("secret", "password", "digest", "token", "pepper", "api_key", "credential")
REDACTED = "[redacted]"
EXPORT_FIELDS = [
    "id",
    "occurred_at",
    "actor",
    "surface",
    "action",
    "target_type",
    "target_id",
    "organization_id",
    "ip_address",
    "request_id",
    "before",
    "after",
]


@dataclass(frozen=True)
class AuditActor:
    actor: str  # "user:<id>", "master-key" or "scim:<token prefix>"
    surface: str
    user_id: int | None = None
    ip_address: str | None = None
    request_id: str = ""


_current_actor: ContextVar[AuditActor | None] = ContextVar("ogem_audit_actor", default=None)
_SYSTEM_ACTOR = AuditActor(actor="system", surface=AuditSurface.SYSTEM)


def audit_actor_name(*, user: Any = None, scim_token_prefix: str | None = None) -> str:
    """The actor string for a user, the master key (a user without pk) or a SCIM token."""
    if scim_token_prefix is not None:
        return f"scim:{scim_token_prefix}"
    if user is None:
        return "system"
    if getattr(user, "audit_name", None):
        return user.audit_name  # e.g. "oidc:<subject>" for an identity provider's token
    if getattr(user, "pk", None) is None:
        return "master-key"
    return f"user:{user.pk}"


def audit_actor_set(
    *,
    actor: str,
    surface: str,
    user_id: int | None = None,
    ip_address: str | None = None,
    request_id: str = "",
) -> Token[AuditActor | None]:
    """Set the current actor; pass the returned token to ``audit_actor_reset``."""
    return _current_actor.set(
        AuditActor(
            actor=actor,
            surface=surface,
            user_id=user_id,
            ip_address=ip_address,
            request_id=request_id,
        )
    )


def audit_actor_reset(token: Token[AuditActor | None]) -> None:
    _current_actor.reset(token)


@contextmanager
def audit_actor(
    *,
    actor: str,
    surface: str,
    user_id: int | None = None,
    ip_address: str | None = None,
    request_id: str = "",
) -> Iterator[AuditActor]:
    token = audit_actor_set(
        actor=actor,
        surface=surface,
        user_id=user_id,
        ip_address=ip_address,
        request_id=request_id,
    )
    try:
        yield _current_actor.get() or _SYSTEM_ACTOR
    finally:
        audit_actor_reset(token)


def audit_actor_current() -> AuditActor:
    return _current_actor.get() or _SYSTEM_ACTOR


def _trusted_proxy_header() -> str:
    # e.g. "X-Forwarded-For"; empty means no proxy is trusted and REMOTE_ADDR is the client.
    return getattr(settings, "OGEM_TRUSTED_PROXY_HEADER", None) or env_str(
        "OGEM_TRUSTED_PROXY_HEADER"
    )


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def audit_client_ip(*, request: Any) -> str | None:
    """The client's address: REMOTE_ADDR, or the configured trusted proxy header when set.

    The proxy appends the address it saw last, so the right-most entry is the one it vouches for;
    anything to its left was written by the client and is not trusted.
    """
    header = _trusted_proxy_header()
    if header:
        meta_key = "HTTP_" + header.upper().replace("-", "_")
        raw = request.META.get(meta_key, "")
        if raw:
            address = _valid_ip(raw.split(",")[-1])
            if address:
                return address
    return _valid_ip(request.META.get("REMOTE_ADDR", "") or "")


def audit_actor_for_request(*, request: Any, surface: str, user: Any = None) -> AuditActor:
    """The actor of an HTTP request: its user (or ``user``), client address and request id."""
    user = user if user is not None else getattr(request, "user", None)
    return AuditActor(
        actor=audit_actor_name(user=user),
        surface=surface,
        user_id=getattr(user, "pk", None),
        ip_address=audit_client_ip(request=request),
        request_id=request.headers.get("x-request-id", "")[:100],
    )


class AuditActorViewMixin:
    """For DRF views: the authenticated caller is the audit actor for the whole request.

    ``audit_surface`` names the surface; override ``audit_actor_for`` to name the actor
    differently (SCIM names its token).
    """

    audit_surface: str = AuditSurface.API
    _audit_token: Token[AuditActor | None] | None = None

    def audit_actor_for(self, request: Any) -> AuditActor:
        return audit_actor_for_request(request=request, surface=self.audit_surface)

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]  # authenticates
        self._audit_token = _current_actor.set(self.audit_actor_for(request))

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        if self._audit_token is not None:
            _current_actor.reset(self._audit_token)
            self._audit_token = None
        return super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]


def _is_secret_field(name: str) -> bool:
    lowered = name.lower()
    return any(marker in lowered for marker in _SECRET_MARKERS)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            str(k): (REDACTED if _is_secret_field(str(k)) else _jsonable(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return f"{value:f}"  # fixed-point: str() gives "0E-8" for a zero read from the database
    if isinstance(value, Model):
        return value.pk
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def audit_snapshot(obj: Model | dict[str, Any] | None, *, exclude: tuple[str, ...] = ()) -> Any:
    """A JSON-safe copy of a model instance or dict with credential-like fields redacted."""
    if obj is None:
        return None
    data = model_to_dict(obj) if isinstance(obj, Model) else dict(obj)
    if isinstance(obj, Model):
        data["id"] = obj.pk
    for name in exclude:
        data.pop(name, None)
    return _jsonable(data)


def audit_record(
    *,
    action: str,
    target: Model | None = None,
    target_type: str = "",
    target_id: str | int | None = None,
    organization_id: int | None = None,
    before: Any = None,
    after: Any = None,
) -> AuditEvent:
    """Record one change made by the current actor (see ``audit_actor``).

    ``target`` names the changed object (its model name and pk), or pass ``target_type`` and
    ``target_id``. ``before``/``after`` are snapshots (``audit_snapshot``); they are redacted
    again here so a careless caller cannot log a secret.
    """
    actor = audit_actor_current()
    if target is not None:
        target_type = target_type or target._meta.model_name or ""
        target_id = target.pk if target_id is None else target_id
    return AuditEvent.objects.create(
        actor=actor.actor,
        actor_user_id=actor.user_id,
        surface=actor.surface,
        action=action,
        target_type=target_type,
        target_id="" if target_id is None else str(target_id),
        organization_id=organization_id,
        before=_jsonable(before),
        after=_jsonable(after),
        ip_address=actor.ip_address,
        request_id=actor.request_id,
    )


def audit_event_list(
    *,
    principal: Any,
    organization_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    actor: str | None = None,
    target_type: str | None = None,
) -> QuerySet[AuditEvent]:
    """Audit events the principal may read: a proxy admin all, an org owner/admin their orgs."""
    events = AuditEvent.objects.all()
    if not principal.is_proxy_admin:
        events = events.filter(organization_id__in=principal.admin_org_ids())
    if organization_id is not None:
        events = events.filter(organization_id=organization_id)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    if action:
        events = events.filter(action=action)
    if actor:
        events = events.filter(actor=actor)
    if target_type:
        events = events.filter(target_type=target_type)
    return events.order_by("-occurred_at", "-id")


def _export_row(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.pk,
        "occurred_at": event.occurred_at.isoformat(),
        "actor": event.actor,
        "surface": event.surface,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "organization_id": event.organization_id,
        "ip_address": event.ip_address,
        "request_id": event.request_id,
        "before": event.before,
        "after": event.after,
    }


def audit_events_export(*, events: QuerySet[AuditEvent], fmt: str) -> str:
    """Serialize events as ``json`` (a list of objects) or ``csv`` (before/after as JSON text)."""
    rows = [_export_row(event) for event in events.iterator()]
    if fmt == "json":
        return json.dumps(rows, sort_keys=True)
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS)
    writer.writeheader()
    for row in rows:
        row["before"] = json.dumps(row["before"], sort_keys=True)
        row["after"] = json.dumps(row["after"], sort_keys=True)
        writer.writerow(row)
    return buffer.getvalue()
