"""Reads for model deployments and named credentials (API and admin call these)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from gateway.models import Credential, ModelDeployment
from tenants.principals import Principal


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
