from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from tenants.models import (
    ORG_WIDE_ROLES,
    EndCustomer,
    Membership,
    Organization,
    Role,
    ScimToken,
    Team,
    User,
)
from tenants.principals import MasterKeyUser, Principal

_ROLE_RANK = {role: rank for rank, role in enumerate(Role.values)}


def _stronger(current: str | None, candidate: str) -> str:
    if current is None or _ROLE_RANK[candidate] < _ROLE_RANK[current]:
        return candidate
    return current


def proxy_admin_principal() -> Principal:
    return Principal(user=MasterKeyUser(), is_proxy_admin=True)


def principal_for_user(*, user: Any, via_key: Any = None) -> Principal:
    if getattr(user, "is_superuser", False):
        return Principal(user=user, is_proxy_admin=True, via_key_id=getattr(via_key, "pk", None))
    org_roles: dict[int, str] = {}
    team_roles: dict[int, str] = {}
    team_orgs: dict[int, int] = {}
    memberships = Membership.objects.filter(user=user).values_list(
        "organization_id", "team_id", "role"
    )
    for organization_id, team_id, role in memberships:
        if team_id is None:
            org_roles[organization_id] = _stronger(org_roles.get(organization_id), role)
        else:
            team_roles[team_id] = _stronger(team_roles.get(team_id), role)
            team_orgs[team_id] = organization_id
    return Principal(
        user=user,
        org_roles=org_roles,
        team_roles=team_roles,
        team_orgs=team_orgs,
        via_key_id=getattr(via_key, "pk", None),
    )


# Roles that see everything in their organization or team (members see only what is theirs).
_ORG_READ_ROLES = frozenset({Role.ORG_OWNER, Role.ORG_ADMIN, Role.VIEWER})
_TEAM_READ_ROLES = frozenset({Role.TEAM_ADMIN, Role.VIEWER})


def principal_org_read_ids(*, principal: Principal) -> set[int]:
    """Organizations whose every team, member, key and budget the principal may read."""
    return {org for org, role in principal.org_roles.items() if role in _ORG_READ_ROLES}


def principal_team_read_ids(*, principal: Principal) -> set[int]:
    """Teams whose every member, key and budget the principal may read."""
    return {team for team, role in principal.team_roles.items() if role in _TEAM_READ_ROLES}


def principal_user_id(*, principal: Principal) -> int | None:
    """The caller's user row id; None for the master key and identity provider tokens."""
    return getattr(principal.user, "pk", None)


def principal_owns(*, principal: Principal, field: str = "user_id") -> Q:
    """Rows whose ``field`` is the caller's user row.

    A principal without a row (the master key, an identity provider token) owns nothing: a
    lookup on its None id would read ``field IS NULL`` and match every unowned row of every
    tenant.
    """
    user_id = principal_user_id(principal=principal)
    if user_id is None:
        return Q(pk__in=[])
    return Q(**{field: user_id})


def principal_writes_in(*, principal: Principal, organization_id: int | None) -> bool:
    """Whether the caller holds a role above viewer anywhere in the organization."""
    if principal.is_proxy_admin:
        return True
    roles = [principal.org_roles.get(organization_id)]
    roles += [
        role
        for team, role in principal.team_roles.items()
        if principal.team_orgs.get(team) == organization_id
    ]
    return any(role is not None and role != Role.VIEWER for role in roles)


def principal_can_create_own_key(*, principal: Principal, team: Team) -> bool:
    """Members (and anyone administering the team) may create keys for themselves in it."""
    if principal.is_team_admin(team.pk, team.organization_id):
        return True
    return principal.team_roles.get(team.pk) == Role.MEMBER


def principal_can_grant(*, principal: Principal, organization_id: int, role: str) -> bool:
    """Org admins grant up to org admin; only owners (and proxy admins) make owners."""
    if principal.is_proxy_admin:
        return True
    if role == Role.ORG_OWNER:
        return principal.org_roles.get(organization_id) == Role.ORG_OWNER
    return principal.is_org_admin(organization_id)


def organization_list(*, principal: Principal) -> QuerySet[Organization]:
    organizations = Organization.objects.all()
    if principal.is_proxy_admin:
        return organizations
    return organizations.filter(pk__in=principal.visible_org_ids())


def team_list(*, principal: Principal) -> QuerySet[Team]:
    teams = Team.objects.select_related("organization")
    if principal.is_proxy_admin:
        return teams
    return teams.filter(
        Q(organization_id__in=principal_org_read_ids(principal=principal))
        | Q(pk__in=principal.visible_team_ids())
    )


def user_list(*, principal: Principal) -> QuerySet[User]:
    users = User.objects.all()
    if principal.is_proxy_admin:
        return users
    visible = User.objects.filter(
        principal_owns(principal=principal, field="pk")
        | Q(memberships__organization_id__in=principal_org_read_ids(principal=principal))
        | Q(memberships__team_id__in=principal_team_read_ids(principal=principal))
    ).values("pk")
    return users.filter(pk__in=visible)


def membership_list(*, principal: Principal) -> QuerySet[Membership]:
    memberships = Membership.objects.select_related("user", "organization", "team")
    if principal.is_proxy_admin:
        return memberships
    return memberships.filter(
        principal_owns(principal=principal)
        | Q(organization_id__in=principal_org_read_ids(principal=principal))
        | Q(team_id__in=principal_team_read_ids(principal=principal))
    )


def end_customer_list(*, principal: Principal) -> QuerySet[EndCustomer]:
    customers = EndCustomer.objects.select_related("organization")
    if principal.is_proxy_admin:
        return customers
    return customers.filter(organization_id__in=principal_org_read_ids(principal=principal))


def scim_token_list(*, principal: Principal, organization: Organization) -> QuerySet[ScimToken]:
    tokens = ScimToken.objects.filter(organization=organization)
    if principal.is_org_admin(organization.pk):
        return tokens
    return tokens.none()


__all__ = [
    "ORG_WIDE_ROLES",
    "end_customer_list",
    "membership_list",
    "organization_list",
    "principal_can_create_own_key",
    "principal_can_grant",
    "principal_for_user",
    "principal_org_read_ids",
    "principal_owns",
    "principal_team_read_ids",
    "principal_user_id",
    "principal_writes_in",
    "proxy_admin_principal",
    "scim_token_list",
    "team_list",
    "user_list",
]
