from __future__ import annotations

from typing import Any

from tenants.models import ORG_WIDE_ROLES, Membership, Role
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


__all__ = ["ORG_WIDE_ROLES", "principal_for_user", "proxy_admin_principal"]
