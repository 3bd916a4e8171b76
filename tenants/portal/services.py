"""Writes of the portal's sign-in: just-in-time memberships from an organization's IdP, and IdP
client secrets stored encrypted. Each records an audit event."""

from __future__ import annotations

from allauth.socialaccount.models import SocialApp
from django.db import transaction

from ogem_site.crypto import secret_encrypt, secret_is_encrypted, secret_reencrypt
from tenants.audit import audit_record, audit_snapshot
from tenants.models import Membership, OrganizationIdentityProvider, ScimUser, Team, User


@transaction.atomic
def identity_provider_membership_grant(
    *, identity_provider: OrganizationIdentityProvider, user: User
) -> list[Membership]:
    """Just-in-time membership: the IdP's organization (and default team) under its default role.

    Existing memberships are left as they are, so a role raised by an admin is never lowered. A
    person SCIM deactivated in the organization gets nothing: provisioning decides, not sign-in.
    """
    organization = identity_provider.organization
    if ScimUser.objects.filter(organization=organization, user=user, active=False).exists():
        return []
    scopes: list[Team | None] = [None]
    if identity_provider.default_team_id is not None:
        scopes.append(identity_provider.default_team)
    created = []
    for team in scopes:
        membership, was_created = Membership.objects.get_or_create(
            user=user,
            organization=organization,
            team=team,
            defaults={"role": identity_provider.default_role},
        )
        if was_created:
            created.append(membership)
            audit_record(
                action="membership.create",
                target=membership,
                organization_id=organization.pk,
                after=audit_snapshot(membership),
            )
    return created


# A SocialApp's secret column holds 191 characters: a Fernet token of up to 79.
SOCIAL_APP_SECRET_MAX = 79


def social_app_secret_set(*, app: SocialApp, secret: str | None) -> None:
    """Store an IdP client secret encrypted (None keeps it, "" removes it); the caller saves."""
    if secret is not None:
        app.secret = secret_encrypt(secret) if secret else ""


@transaction.atomic
def social_app_secrets_reencrypt() -> tuple[int, int, int]:
    """Every client secret (re-)encrypted under the first key: how many were re-encrypted, how
    many were in clear and are now encrypted, how many stay in clear (too long to encrypt)."""
    reencrypted = encrypted = too_long = 0
    for app in SocialApp.objects.select_for_update().exclude(secret=""):
        if secret_is_encrypted(app.secret):
            app.secret = secret_reencrypt(app.secret)
            reencrypted += 1
        elif len(app.secret) <= SOCIAL_APP_SECRET_MAX:
            app.secret = secret_encrypt(app.secret)  # written in clear before encryption
            encrypted += 1
        else:
            too_long += 1
            continue
        app.save(update_fields=["secret"])
    return reencrypted, encrypted, too_long
