"""Reads of the portal's sign-in: organization identity providers and the instance-wide SSO."""

from __future__ import annotations

from django.conf import settings

from tenants.models import OrganizationIdentityProvider


def identity_provider_for_email(*, email: str) -> OrganizationIdentityProvider | None:
    """The organization IdP whose domains include the email's domain (discovery)."""
    domain = email.rpartition("@")[2].strip().lower()
    if not domain:
        return None
    providers = OrganizationIdentityProvider.objects.select_related(
        "social_app", "organization"
    ).filter(enabled=True)
    for provider in providers:
        if domain in {d.strip().lower() for d in provider.domains}:
            return provider
    return None


def identity_providers_exist() -> bool:
    """Whether any organization signs in with its own IdP (the sign-in page's SSO discovery)."""
    return OrganizationIdentityProvider.objects.filter(enabled=True).exists()


def identity_provider_for_app(*, provider_id: str) -> OrganizationIdentityProvider | None:
    return (
        OrganizationIdentityProvider.objects.select_related(
            "organization", "default_team", "social_app"
        )
        .filter(enabled=True, social_app__provider_id=provider_id)
        .first()
    )


def instance_sso() -> dict[str, str] | None:
    """The instance-wide OIDC button (OGEM_OIDC_*), or None when it is not configured."""
    if not (settings.OGEM_OIDC_ISSUER and settings.OGEM_OIDC_CLIENT_ID):
        return None
    return {"provider_id": settings.OGEM_OIDC_PROVIDER_ID, "name": settings.OGEM_OIDC_NAME}
