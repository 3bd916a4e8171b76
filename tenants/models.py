from __future__ import annotations

import ipaddress

from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.db import models


class Role(models.TextChoices):
    """Roles, strongest first. Proxy admin is a user flag (superuser), not a membership."""

    PROXY_ADMIN = "proxy_admin", "Proxy admin"
    ORG_OWNER = "org_owner", "Organization owner"
    ORG_ADMIN = "org_admin", "Organization admin"
    TEAM_ADMIN = "team_admin", "Team admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


ORG_WIDE_ROLES = frozenset({Role.ORG_OWNER, Role.ORG_ADMIN})
MEMBERSHIP_ROLES = [choice for choice in Role.choices if choice[0] != Role.PROXY_ADMIN]


class User(AbstractUser):
    email = models.EmailField("email address", blank=True, db_index=True)
    display_name = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["username"]

    @property
    def is_proxy_admin(self) -> bool:
        return self.is_superuser


def networks_validate(value: object) -> None:
    """A list of CIDR networks ("10.20.0.0/16", "fd00::/8"; an address alone is its /32)."""
    if not isinstance(value, list):
        raise ValidationError("Give a list of CIDR networks.")
    for item in value:
        try:
            ipaddress.ip_network(str(item), strict=False)
        except ValueError:
            raise ValidationError(f"{item!r} is not a CIDR network.") from None


class Organization(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Public model names or model access groups that bound every key of this organization; empty: no
    # bound. Named `models` on the management API, in admin and in the docs.
    allowed_models = models.JSONField(
        "models",
        default=list,
        blank=True,
        help_text=(
            "Model names or access groups the organization's keys may use (a key's own list "
            "must fit within it). Empty: every model."
        ),
    )
    # Set by proxy admins only: private networks this organization's deployments may reach.
    upstream_networks = models.JSONField(
        default=list,
        blank=True,
        validators=[networks_validate],
        help_text=(
            "CIDR networks (e.g. 10.20.0.0/16) the organization's own deployments may connect "
            "to although they are private, loopback or link-local. Proxy admins only."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100)
    metadata = models.JSONField(default=dict, blank=True)
    # Public model names or model access groups that bound every key of this team; empty: no
    # bound. Named `models` on the management API, in admin and in the docs.
    allowed_models = models.JSONField(
        "models",
        default=list,
        blank=True,
        help_text=(
            "Model names or access groups the team's keys may use (a key's own list "
            "must fit within it). Empty: every model."
        ),
    )
    # Set by SCIM when the team is provisioned from an identity provider's group.
    external_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization__name", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "slug"], name="team_slug_unique_per_org"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization.slug}/{self.name}"


class Membership(models.Model):
    """A user's role in an organization (team is null) or in one of its teams."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="memberships", null=True, blank=True
    )
    role = models.CharField(max_length=20, choices=MEMBERSHIP_ROLES, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization", "team"],
                name="membership_unique",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        scope = self.team.name if self.team_id else self.organization.name
        return f"{self.user} @ {scope}: {self.role}"


class EndCustomer(models.Model):
    """The `user` field an application sends on /v1, tracked for spend and budgets."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="end_customers"
    )
    external_id = models.CharField(max_length=255)
    alias = models.CharField(max_length=200, blank=True)
    blocked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="end_customer_unique_per_org"
            ),
        ]

    def __str__(self) -> str:
        return self.alias or self.external_id


class ScimToken(models.Model):
    """A per-organization bearer token for SCIM provisioning, stored as a digest."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="scim_tokens"
    )
    name = models.CharField(max_length=200, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    pepper_id = models.PositiveSmallIntegerField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.organization.slug}: scim-{self.prefix}…"


class ScimUser(models.Model):
    """SCIM state of one user in one organization: what an IdP provisioned beyond the User row.

    Deactivation (``active = False``) removes the user's memberships in the organization, so every
    surface that reads memberships stops granting access without knowing about SCIM; the removed
    roles are kept in ``suspended_memberships`` and restored on reactivation.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="scim_users"
    )
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="scim_users")
    external_id = models.CharField(max_length=255, blank=True)
    # None: the IdP never set it (treated as active).
    active = models.BooleanField(null=True, blank=True)
    emails = models.JSONField(default=list, blank=True)
    suspended_memberships = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization__name", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "user"], name="scim_user_unique_per_org"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.organization.slug}: {self.user}"


class AuditSurface(models.TextChoices):
    ADMIN = "admin", "Admin"
    PORTAL = "portal", "Portal"
    API = "api", "Management API"
    SCIM = "scim", "SCIM"
    SYSTEM = "system", "System"


class AuditEvent(models.Model):
    """One change made through admin, portal, management API or SCIM. Append-only.

    ``before`` and ``after`` are JSON snapshots with secrets removed (see tenants/audit.py).
    """

    occurred_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # "user:<id>", "master-key" or "scim:<token prefix>"
    actor = models.CharField(max_length=100)
    actor_user = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    surface = models.CharField(max_length=20, choices=AuditSurface.choices)
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=100, blank=True)
    organization = models.ForeignKey(
        Organization,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["organization", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action}"


class OrganizationIdentityProvider(models.Model):
    """An organization's own sign-in: an allauth social app (OIDC) tied to the organization.

    People who sign in through it join the organization just in time under ``default_role`` (and
    ``default_team`` when set); the sign-in page sends an email address whose domain is in
    ``domains`` to this provider.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="identity_providers"
    )
    social_app = models.OneToOneField(
        "socialaccount.SocialApp", on_delete=models.CASCADE, related_name="ogem_identity_provider"
    )
    # Lower-case email domains, e.g. ["acme.com", "acme.co.uk"].
    domains = models.JSONField(default=list, blank=True)
    default_role = models.CharField(max_length=20, choices=MEMBERSHIP_ROLES, default=Role.MEMBER)
    default_team = models.ForeignKey(
        Team, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["organization__name"]
        verbose_name = "organization identity provider"

    def __str__(self) -> str:
        return f"{self.organization.slug}: {self.social_app.name}"
