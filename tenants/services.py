"""Writes on organizations, teams, users and memberships (SCIM tokens: tenants/scim).

Authorization is decided by the caller (REST views, admin) with the Principal; these functions
only keep the data consistent.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from tenants.dependents import tenant_changed
from tenants.models import EndCustomer, Membership, Organization, Role, Team, User


class TenancyError(ValueError):
    """A write that would leave tenancy data inconsistent (duplicate, wrong organization...)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def organization_create(
    *,
    name: str,
    slug: str = "",
    metadata: dict[str, Any] | None = None,
    upstream_networks: list[str] | None = None,
    allowed_models: list[str] | None = None,
) -> Organization:
    slug = slug or _unique_slug(base=slugify(name) or "org", taken=Organization.objects.all())
    if Organization.objects.filter(slug=slug).exists():
        raise TenancyError(f"an organization with slug {slug!r} already exists", field="slug")
    return Organization.objects.create(
        name=name,
        slug=slug,
        metadata=dict(metadata or {}),
        upstream_networks=list(upstream_networks or []),
        allowed_models=list(allowed_models or []),
    )


def organization_update(*, organization: Organization, **fields: Any) -> Organization:
    _assign(
        instance=organization,
        fields=fields,
        allowed={"name", "slug", "metadata", "upstream_networks", "allowed_models"},
    )
    if (
        "slug" in fields
        and Organization.objects.filter(slug=organization.slug).exclude(pk=organization.pk).exists()
    ):
        raise TenancyError(
            f"an organization with slug {organization.slug!r} already exists", field="slug"
        )
    organization.save()
    _callers_forget(organization=organization)
    return organization


def organization_delete(*, organization: Organization) -> None:
    _callers_forget(organization=organization)
    organization.delete()


def team_create(
    *,
    organization: Organization,
    name: str,
    slug: str = "",
    metadata: dict[str, Any] | None = None,
    external_id: str = "",
    allowed_models: list[str] | None = None,
) -> Team:
    siblings = Team.objects.filter(organization=organization)
    slug = slug or _unique_slug(base=slugify(name) or "team", taken=siblings)
    if siblings.filter(slug=slug).exists():
        raise TenancyError(
            f"team slug {slug!r} is already used in {organization.slug}", field="slug"
        )
    return Team.objects.create(
        organization=organization,
        name=name,
        slug=slug,
        metadata=dict(metadata or {}),
        external_id=external_id,
        allowed_models=list(allowed_models or []),
    )


def team_update(*, team: Team, **fields: Any) -> Team:
    _assign(
        instance=team,
        fields=fields,
        allowed={"name", "slug", "metadata", "external_id", "allowed_models"},
    )
    if (
        "slug" in fields
        and Team.objects.filter(organization_id=team.organization_id, slug=team.slug)
        .exclude(pk=team.pk)
        .exists()
    ):
        raise TenancyError(
            f"team slug {team.slug!r} is already used in this organization", field="slug"
        )
    team.save()
    _callers_forget(team=team)
    return team


def team_delete(*, team: Team) -> None:
    _callers_forget(team=team)
    team.delete()


@transaction.atomic
def user_create(
    *,
    username: str,
    email: str = "",
    password: str | None = None,
    display_name: str = "",
    is_superuser: bool = False,
    organization: Organization | None = None,
    role: str = Role.MEMBER,
) -> User:
    """Create a user; with ``organization``, also make them a member of it with ``role``."""
    if User.objects.filter(username=username).exists():
        raise TenancyError(f"a user named {username!r} already exists", field="username")
    user = User(
        username=username,
        email=email,
        display_name=display_name,
        is_superuser=is_superuser,
        is_staff=is_superuser,
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    if organization is not None:
        membership_create(user=user, organization=organization, role=role)
    return user


def user_update(*, user: User, password: str | None = None, **fields: Any) -> User:
    _assign(
        instance=user,
        fields=fields,
        allowed={"email", "display_name", "first_name", "last_name", "is_active"},
    )
    if password:
        user.set_password(password)
    user.save()
    return user


def user_delete(*, user: User) -> None:
    user.delete()


def membership_create(
    *,
    user: User,
    organization: Organization,
    team: Team | None = None,
    role: str = Role.MEMBER,
) -> Membership:
    role = _membership_role(role=role, team=team)
    if team is not None and team.organization_id != organization.pk:
        raise TenancyError("the team belongs to another organization", field="team")
    # The unique constraint (nulls not distinct) exists only where the database supports it.
    if Membership.objects.filter(user=user, organization=organization, team=team).exists():
        raise TenancyError("this user already has a membership there", field="user")
    try:
        with transaction.atomic():
            return Membership.objects.create(
                user=user, organization=organization, team=team, role=role
            )
    except IntegrityError as exc:
        raise TenancyError("this user already has a membership there", field="user") from exc


def membership_update(*, membership: Membership, role: str) -> Membership:
    membership.role = _membership_role(role=role, team=membership.team)
    membership.save(update_fields=["role"])
    return membership


def membership_delete(*, membership: Membership) -> None:
    membership.delete()


def end_customer_create(
    *, organization: Organization, external_id: str, alias: str = "", blocked: bool = False
) -> EndCustomer:
    """Register an end customer (the `user` an application sends on /v1) ahead of its traffic,
    to give it a budget or block it."""
    if not external_id:
        raise TenancyError("an end customer needs its id", field="user_id")
    if EndCustomer.objects.filter(organization=organization, external_id=external_id).exists():
        raise TenancyError(
            f"end customer {external_id!r} already exists in {organization.slug}", field="user_id"
        )
    return EndCustomer.objects.create(
        organization=organization, external_id=external_id, alias=alias, blocked=blocked
    )


def _membership_role(*, role: str, team: Team | None) -> str:
    if role not in Role.values or role == Role.PROXY_ADMIN:
        raise TenancyError(f"{role!r} is not a membership role", field="role")
    if team is not None and role in (Role.ORG_OWNER, Role.ORG_ADMIN):
        raise TenancyError(
            "organization roles are held on the organization, not on a team", field="role"
        )
    return role


def _callers_forget(*, team: Team | None = None, organization: Organization | None = None) -> None:
    """The /v1 key cache holds each key's caller with its team's and organization's routing
    metadata: a change (or a deletion) must reach every worker, as a key change does."""
    tenant_changed(team=team, organization=organization)


def _assign(*, instance: Any, fields: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(fields) - allowed
    if unknown:
        raise TenancyError(f"cannot update {sorted(unknown)}")
    for name, value in fields.items():
        setattr(instance, name, value)


def _unique_slug(*, base: str, taken: Any) -> str:
    base = base[:90]
    slug = base
    suffix = 2
    while taken.filter(slug=slug).exists():
        slug = f"{base}-{suffix}"
        suffix += 1
    return slug
