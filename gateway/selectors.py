"""Reads for model deployments and named credentials (API and admin call these)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTransform

from gateway.config.credentials import REDACTED
from gateway.context import Caller
from gateway.models import (
    Credential,
    DebugCapture,
    GuardrailDefinition,
    ModelDeployment,
    RealtimeCall,
    RealtimeClientSecret,
    SemanticCacheEntry,
    StoredCompletion,
    StoredResponse,
)
from gateway.registry import registry_get
from gateway.stored_response_columns import STORED_RESPONSE_FIELDS, stored_response_names
from ogem_site.pagination import queryset_page
from ogem_site.pg import pg_fetchone
from providers.base import Deployment, param_is_secret
from tenants.principals import Principal

# Where a deployment comes from, as the API and admin say it.
SOURCE_DATABASE = "database"
SOURCE_CONFIG = "config"  # the OGEM_CONFIG file
SOURCE_BUILTIN = "builtin"  # the embedded default's offline mock models (OGEM_CONFIG unset)


def deployment_list(*, principal: Principal) -> QuerySet[ModelDeployment]:
    """Shared deployments plus those of the caller's organizations."""
    deployments = ModelDeployment.objects.select_related("organization", "credential")
    if principal.is_proxy_admin:
        return deployments
    return deployments.filter(
        Q(organization__isnull=True) | Q(organization_id__in=principal.visible_org_ids())
    )


def guardrail_definition_list(*, principal: Principal) -> QuerySet[GuardrailDefinition]:
    """Every admin-defined guardrail for proxy admins; their organizations' own otherwise."""
    guardrails = GuardrailDefinition.objects.select_related("organization")
    if principal.is_proxy_admin:
        return guardrails
    return guardrails.filter(organization_id__in=principal.admin_org_ids())


def guardrail_definition_owners(*, names: Iterable[str]) -> dict[str, int]:
    """name -> organization id, for those of `names` that are an organization's own guardrail."""
    return dict(
        GuardrailDefinition.objects.filter(
            name__in=list(names), organization__isnull=False
        ).values_list("name", "organization_id")
    )


def credential_list(*, principal: Principal) -> QuerySet[Credential]:
    """Every credential for proxy admins; those granted to the caller's organizations otherwise."""
    if principal.is_proxy_admin:
        return Credential.objects.all()
    return Credential.objects.filter(organizations__in=principal.admin_org_ids()).distinct()


def credential_get(*, name: str) -> Credential | None:
    """The credential of that name, granted or not (whether a deployment may use it is
    gateway.credentials.credential_problem's question)."""
    return Credential.objects.filter(name=name).first()


def deployment_source(deployment: Deployment) -> str:
    if deployment.id.startswith("db:"):
        return SOURCE_DATABASE
    return SOURCE_BUILTIN if deployment.id.startswith("builtin:") else SOURCE_CONFIG


def config_deployment_list(*, principal: Principal) -> list[Deployment]:
    """The deployments being served that are not database rows (the configuration file's, or the
    built-in mock models), that the caller may see: shared ones plus its organizations'. They
    are read from the registry, never from the file again; they cannot be edited here."""
    found = [
        deployment
        for deployment in registry_get().by_id.values()
        if deployment_source(deployment) != SOURCE_DATABASE
        and (
            principal.is_proxy_admin
            or deployment.organization_id is None
            or deployment.organization_id in principal.visible_org_ids()
        )
    ]
    return sorted(found, key=lambda d: (d.model_name, d.priority, d.id))


def config_deployment_shown(deployment: Deployment) -> dict[str, Any]:
    """A configuration deployment as the API shows a database row: its secrets never (the key
    only as `has_credential`, secret params as REDACTED)."""
    timeouts = deployment.timeouts
    return {
        "id": None,
        "deployment_id": deployment.id,
        "source": deployment_source(deployment),
        "model_name": deployment.model_name,
        "provider": deployment.provider,
        "upstream_model": deployment.upstream_model,
        "api_base": deployment.api_base,
        "api_version": deployment.api_version,
        "credential": None,
        "has_credential": bool(deployment.api_key),
        "organization": deployment.organization_id,
        "access_groups": list(deployment.access_groups),
        "region": deployment.region,
        "weight": deployment.weight,
        "priority": deployment.priority,
        "tags": list(deployment.tags),
        "rpm": deployment.rpm,
        "tpm": deployment.tpm,
        "connect_timeout": timeouts.connect,
        "first_byte_timeout": timeouts.first_byte,
        "total_timeout": timeouts.total,
        "params": {
            name: REDACTED if param_is_secret(name) else value
            for name, value in deployment.params.items()
        },
        "enabled": True,
        "created_at": None,
        "updated_at": None,
    }


# ---- Stored chat completions --------------------------------------------------------------------


def stored_completions_visible(*, caller: Caller) -> QuerySet[StoredCompletion]:
    """The stored completions a /v1 caller may see: a team's key, its team's; an organization's
    key (no team), its whole organization's; the master key, all; any other key, its own."""
    stored = StoredCompletion.objects.all()
    if caller.is_master:
        return stored
    if caller.team_id is not None:
        return stored.filter(organization_id=caller.organization_id, team_id=caller.team_id)
    if caller.organization_id is not None:
        return stored.filter(organization_id=caller.organization_id)
    if caller.key_id is not None:
        return stored.filter(organization__isnull=True, key_id=caller.key_id)
    return stored.none()


def stored_completion_get(*, caller: Caller, completion_id: str) -> StoredCompletion | None:
    return stored_completions_visible(caller=caller).filter(completion_id=completion_id).first()


def stored_completion_page(
    *,
    caller: Caller,
    model: str | None,
    metadata: dict[str, str],
    after: StoredCompletion | None,
    limit: int,
    descending: bool,
) -> tuple[list[StoredCompletion], bool]:
    """One page of the caller's stored completions in creation order, after the cursor row;
    and whether more follow. `model` matches the answer's model or the name asked for."""
    stored = stored_completions_visible(caller=caller)
    if model:
        stored = stored.filter(Q(model=model) | Q(request_model=model))
    for number, (key, value) in enumerate(sorted(metadata.items())):
        # KeyTransform takes the key literally (a `__` in it is no lookup), and its exact lookup
        # compares JSON values on every database (KeyTextTransform breaks on SQLite).
        name = f"metadata_{number}"
        stored = stored.alias(**{name: KeyTransform(key, "metadata")}).filter(**{name: value})
    return queryset_page(stored, after=after, limit=limit, descending=descending)


# ---- The response cache's semantic tier (gateway/semantic.py) ----------------------------------

# What a worker's vector index needs of an entry (never its answer: fetched on a hit).
SEMANTIC_INDEX_FIELDS = ("id", "label", "scope", "namespace", "partition", "vector", "expires_at")


def semantic_cache_entries_after(
    *, after_id: int, limit: int, now: datetime
) -> list[dict[str, Any]]:
    """Unexpired entries with an id above `after_id`, oldest first (index rebuilds and catch-up)."""
    return list(
        SemanticCacheEntry.objects.filter(id__gt=after_id, expires_at__gt=now)
        .order_by("id")
        .values(*SEMANTIC_INDEX_FIELDS)[:limit]
    )


def semantic_cache_entry_get(*, label: int) -> bytes | None:
    """A stored entry's JSON (the answer and its times), or None when it is gone."""
    entry = SemanticCacheEntry.objects.filter(label=label).values_list("entry", flat=True).first()
    return bytes(entry) if entry is not None else None


def response_cache_namespaces(*, organization_id: int) -> dict[str, dict[str, int]]:
    """The response cache's namespaces of an organization (every scope inside it), each with
    its entries in Redis (`exact`) and in the semantic tier (`semantic`); "-" is the default
    namespace. A worker's in-process entries are copies of these and S3 objects are not
    counted."""
    from django.conf import settings
    from django.db.models import Count

    from gateway.cache import cache_purge_patterns
    from ogem_site.redis import redis_client_sync, redis_key

    spaces: dict[str, dict[str, int]] = {}
    if settings.REDIS_URL:
        start = len(redis_key("cache:"))
        client = redis_client_sync()
        for pattern in cache_purge_patterns(organization_id=organization_id):
            for key in client.scan_iter(match=pattern, count=1000):
                name = key.decode() if isinstance(key, bytes) else key
                # <prefix>:cache:<scope>:<namespace>:<digest>
                namespace = name[start:].split(":")[1]
                space = spaces.setdefault(namespace, {"exact": 0, "semantic": 0})
                space["exact"] += 1
    semantic = (
        SemanticCacheEntry.objects.filter(organization_id=organization_id)
        .values("namespace")
        .annotate(count=Count("id"))
    )
    for row in semantic:
        space = spaces.setdefault(row["namespace"] or "-", {"exact": 0, "semantic": 0})
        space["semantic"] += row["count"]
    return dict(sorted(spaces.items()))


def realtime_client_secret_get(*, secret: str, now: datetime) -> RealtimeClientSecret | None:
    """The unexpired client secret `secret` is (compared in constant time), else None."""
    from ogem_site.hashing import secret_matches, secret_prefix

    prefix = secret_prefix(secret, kind_prefix="ek_")
    if prefix is None:
        return None
    row = RealtimeClientSecret.objects.filter(prefix=prefix, expires_at__gt=now).first()
    if row is None or not secret_matches(secret=secret, digest=row.digest, pepper_id=row.pepper_id):
        return None
    return row


def realtime_call_get(*, call_id: str, now: datetime) -> RealtimeCall | None:
    """The WebRTC call `call_id` while it may still run (not ended, not expired), else None."""
    return RealtimeCall.objects.filter(
        call_id=call_id, ended_at__isnull=True, expires_at__gt=now
    ).first()


# ---- Stored responses (the Responses API) -------------------------------------------------------


def stored_responses_visible(*, caller: Caller) -> QuerySet[StoredResponse]:
    """The stored responses a /v1 caller may see, scoped as stored completions are: a team's
    key, its team's; an organization's key (no team), its organization's; the master key, all;
    any other key, its own."""
    stored = StoredResponse.objects.all()
    if caller.is_master:
        return stored
    if caller.team_id is not None:
        return stored.filter(organization_id=caller.organization_id, team_id=caller.team_id)
    if caller.organization_id is not None:
        return stored.filter(organization_id=caller.organization_id)
    if caller.key_id is not None:
        return stored.filter(organization__isnull=True, key_id=caller.key_id)
    return stored.none()


def stored_response_get(*, caller: Caller, response_id: str) -> StoredResponse | None:
    return stored_responses_visible(caller=caller).filter(response_id=response_id).first()


_response_select_sql = ""


def _response_select() -> str:
    global _response_select_sql
    if not _response_select_sql:
        names = stored_response_names()
        # The model's own names, quoted; the values go as parameters.
        _response_select_sql = (
            f"SELECT {names.columns} FROM {names.table} "  # noqa: S608
            f"WHERE {names.response_id} = %s"
        )
    return _response_select_sql


async def stored_response_find(*, caller: Caller, response_id: str) -> StoredResponse | None:
    """`stored_response_get` on PostgreSQL from the event loop (the `previous_response_id` of a
    /v1 request): one SELECT on the unique id, scoped as `stored_responses_visible`, no ORM."""
    if caller.is_master:
        scope, params = "", ()
    elif caller.team_id is not None:
        scope = " AND organization_id IS NOT DISTINCT FROM %s AND team_id = %s"
        params = (caller.organization_id, caller.team_id)
    elif caller.organization_id is not None:
        scope, params = " AND organization_id = %s", (caller.organization_id,)
    elif caller.key_id is not None:
        scope, params = " AND organization_id IS NULL AND key_id = %s", (caller.key_id,)
    else:
        return None
    row = await pg_fetchone(_response_select() + scope, (response_id, *params))
    if row is None:
        return None
    return StoredResponse(**dict(zip(STORED_RESPONSE_FIELDS, row, strict=True)))


def debug_capture_list(
    *, principal: Principal, now: datetime | None = None
) -> QuerySet[DebugCapture]:
    """The request-debugging captures not yet expired that the principal may read: every one
    for the proxy admin, else those of the organizations they administer (docs/debugging.md)."""
    from django.utils import timezone

    captures = DebugCapture.objects.filter(expires_at__gt=now or timezone.now())
    if principal.is_proxy_admin:
        return captures
    return captures.filter(organization_id__in=principal.admin_org_ids())
