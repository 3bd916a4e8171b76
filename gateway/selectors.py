"""Reads for model deployments and named credentials (API and admin call these)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from gateway.config.credentials import REDACTED
from gateway.models import Credential, ModelDeployment
from gateway.registry import registry_get
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
