"""Deployments stored in the database (`gateway.ModelDeployment`, edited in admin or the API).

Rows are read on load and on reload only, never per request. Callers in an event loop are served
from a worker thread, because the ORM is synchronous. An organization's row gets the address
policy of its organization (providers/addresses.py), checked at every connect; a row with a
negative price is skipped and reported, never served at that price.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from django.db import connections
from django.db.models import Count, Max

from billing.pricing import price_params_problems
from gateway.config.credentials import (
    API_KEY,
    ambient_credential_problem,
    credential_problem,
    credential_secret,
)
from gateway.config.guardrails import (
    guardrail_definition_read,
    guardrail_entry,
    guardrail_references,
)
from gateway.config.problems import Location, Problems
from gateway.config.provider_names import (
    provider_canonical,
    provider_is_servable,
    provider_model_problem,
    provider_unservable_reason,
)
from gateway.config.secrets import SecretError, secret_is_reference, secret_resolve
from gateway.config.types import GuardrailSpec
from gateway.deployments import organization_address_policy
from gateway.models import Credential, GuardrailDefinition, ModelDeployment
from ogem_site.crypto import DecryptionError, secrets_decrypt
from providers.base import Deployment, Timeouts
from tenants.models import Organization

T = TypeVar("T")


def run_sync(func: Callable[[], T]) -> T:
    """Run ORM work here, or in a short-lived thread when this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return func()

    def in_thread() -> T:
        try:
            return func()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ogem-config") as pool:
        return pool.submit(in_thread).result()


def database_deployments(
    *, problems: Problems, environ: Mapping[str, str] | None = None
) -> list[Deployment]:
    """Enabled rows as Deployments (`id="db:<pk>"`); a row with a problem is skipped, reported."""

    deployments: list[Deployment] = []
    rows = (
        ModelDeployment.objects.filter(enabled=True)
        .select_related("organization", "credential")
        .prefetch_related("credential__organizations")
        .order_by("id")
    )
    for row in rows:
        where = Location(f"database:ModelDeployment#{row.pk}")
        priced_wrong = price_params_problems(row.params if isinstance(row.params, dict) else {})
        if priced_wrong:
            problems.error(where, f"{'; '.join(priced_wrong)}; skipped")
            continue
        provider = provider_canonical(row.provider)
        if not provider_is_servable(provider):
            problems.warning(where, f"{provider_unservable_reason(provider)}; skipped")
            continue
        unservable = provider_model_problem(provider=provider, upstream_model=row.upstream_model)
        if unservable is not None:
            problems.warning(where, f"{unservable}; skipped")
            continue
        # Checked here too, so a row written before the rule (or behind the API) reads nothing.
        problem = credential_problem(
            organization_id=row.organization_id,
            credential_ref=row.credential_ref,
            credential=row.credential,
        )
        if problem is not None:
            problems.error(where, f"{problem}; skipped")
            continue
        try:
            secrets = secrets_decrypt(row.encrypted_secrets)
        except DecryptionError as exc:
            problems.error(where, f"encrypted_secrets: {exc}; skipped")
            continue
        api_key = secrets.pop(API_KEY, None)
        try:
            if row.credential_ref:
                if not secret_is_reference(row.credential_ref):
                    problems.error(
                        where,
                        "credential_ref must be a reference (os.environ/NAME, file:///path); "
                        "skipped",
                    )
                    continue
                api_key = secret_resolve(row.credential_ref, environ=environ)
            elif row.credential is not None:
                api_key = credential_secret(credential=row.credential, environ=environ)
        except (SecretError, DecryptionError) as exc:
            problems.error(where, f"{exc}; skipped")
            continue
        params = {**(row.params or {}), **secrets}
        flags = _flags_pop(params)
        if row.organization_id is not None:
            problem = ambient_credential_problem(
                provider=provider, params=params, has_key=api_key is not None
            )
            if problem is not None:
                problems.error(where, f"{problem}; skipped")
                continue
        deployments.append(
            Deployment(
                id=f"db:{row.pk}",
                model_name=row.model_name,
                provider=provider,
                upstream_model=row.upstream_model,
                api_base=row.api_base,
                api_key=api_key,
                api_version=row.api_version,
                region=row.region,
                organization_id=row.organization_id,
                access_groups=tuple(row.access_groups or ()),
                weight=row.weight,
                priority=row.priority,
                tags=tuple(row.tags or ()),
                rpm=row.rpm,
                tpm=row.tpm,
                timeouts=Timeouts(
                    connect=row.connect_timeout,
                    first_byte=row.first_byte_timeout,
                    total=row.total_timeout,
                ),
                params=params,
                **flags,
                address_policy=(
                    None
                    if row.organization is None
                    else organization_address_policy(row.organization)
                ),
            )
        )
    return deployments


def _flags_pop(params: dict[str, Any]) -> dict[str, Any]:
    """A row keeps LiteLLM's per-deployment `max_parallel_requests`, `drop_params` and
    `modify_params` in its params; they are the Deployment's own fields, not sent upstream."""
    flags: dict[str, Any] = {}
    limit = params.pop("max_parallel_requests", None)
    if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1:
        flags["max_parallel_requests"] = limit
    for name in ("drop_params", "modify_params"):
        value = params.pop(name, None)
        if isinstance(value, bool):
            flags[name] = value
    return flags


GUARDRAIL_COLUMNS = (
    "name",
    "kind",
    "modes",
    "action",
    "default_on",
    "enforced",
    "requestable",
    "restore",
    "fail_open",
    "timeout",
    "model_groups",
)


def database_guardrails(
    *, problems: Problems
) -> list[tuple[GuardrailSpec, tuple[str, ...], Location]]:
    """Enabled admin-defined guardrails (gateway.GuardrailDefinition), each read by the file's
    own guardrail reader: (spec, the model groups that run it, where). A row with a problem is
    skipped and reported: its tenants' requests then fail closed, as for any missing guardrail."""
    found: list[tuple[GuardrailSpec, tuple[str, ...], Location]] = []
    rows = GuardrailDefinition.objects.filter(enabled=True).select_related("organization")
    for row in rows.order_by("id"):
        where = Location(f"database:GuardrailDefinition#{row.pk}")
        try:
            secrets = secrets_decrypt(row.encrypted_secrets or {})
        except DecryptionError as exc:
            problems.error(where, f"encrypted_secrets: {exc}; skipped")
            continue
        options = row.options if isinstance(row.options, dict) else {}
        if row.organization_id is not None:
            # Checked on load too, so a row written before the rule reads nothing of the server.
            if row.kind == "custom":
                problems.error(where, "a custom guardrail is the operator's (shared); skipped")
                continue
            references = sorted(guardrail_references({**options, **secrets}))
            if references:
                problems.error(where, f"{', '.join(references)}: secret references; skipped")
                continue
        entry = guardrail_entry(
            fields={column: getattr(row, column) for column in GUARDRAIL_COLUMNS},
            options=options,
            secrets=secrets,
        )
        read = Problems()
        spec, groups = guardrail_definition_read(fields=entry, source=where.source, problems=read)
        problems.items.extend(read.items)
        if spec is None:
            problems.error(where, f'guardrail "{row.name}" skipped')
            continue
        policy = None if row.organization is None else organization_address_policy(row.organization)
        spec = replace(spec, organization_id=row.organization_id, address_policy=policy)
        found.append((spec, groups, where))
    return found


def database_fingerprint() -> tuple[object, ...]:
    """Changes whenever a row or a credential is added, edited, enabled, disabled or deleted."""

    stats = ModelDeployment.objects.aggregate(
        count=Count("id"), last_edit=Max("updated_at"), last_id=Max("id")
    )
    # An organization's upstream_networks shape its deployments' address policy.
    networks = Organization.objects.filter(deployments__isnull=False).aggregate(
        last_edit=Max("updated_at")
    )
    # A credential's new value or a grant given or taken back changes what rows may use.
    credentials = Credential.objects.aggregate(count=Count("id"), last_edit=Max("updated_at"))
    grants = Credential.organizations.through.objects.count()
    guardrails = GuardrailDefinition.objects.aggregate(
        count=Count("id"), last_edit=Max("updated_at"), last_id=Max("id")
    )
    return (
        guardrails["count"],
        guardrails["last_edit"],
        guardrails["last_id"],
        stats["count"],
        stats["last_edit"],
        stats["last_id"],
        networks["last_edit"],
        credentials["count"],
        credentials["last_edit"],
        grants,
    )


def organization_ids(slugs: set[str]) -> dict[str, int]:
    return dict(Organization.objects.filter(slug__in=slugs).values_list("slug", "id"))
