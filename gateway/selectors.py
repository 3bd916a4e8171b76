"""Reads for model deployments and named credentials."""

from __future__ import annotations

from django.db.models import QuerySet

from gateway.models import Credential
from tenants.principals import Principal


def credential_list(*, principal: Principal) -> QuerySet[Credential]:
    """Every credential for proxy admins; those granted to the caller's organizations otherwise."""
    if principal.is_proxy_admin:
        return Credential.objects.all()
    return Credential.objects.filter(organizations__in=principal.admin_org_ids()).distinct()
