"""Who is calling, and what they may reach: one object used by the API, admin, portal and SCIM."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tenants.models import ORG_WIDE_ROLES, Role


class MasterKeyUser:
    """The request user when the master key authenticated: a proxy admin with no account row."""

    pk = None
    id = None
    username = "master-key"
    is_active = True
    is_staff = True
    is_superuser = True
    is_authenticated = True
    is_anonymous = False
    is_proxy_admin = True

    def __str__(self) -> str:
        return self.username


@dataclass(frozen=True)
class Principal:
    user: Any
    is_proxy_admin: bool = False
    # organization id → the strongest org-wide role held there
    org_roles: dict[int, str] = field(default_factory=dict)
    # team id → the strongest team role held there (org-wide roles are not repeated here)
    team_roles: dict[int, str] = field(default_factory=dict)
    # organization of each team in team_roles
    team_orgs: dict[int, int] = field(default_factory=dict)
    via_key_id: int | None = None

    def is_org_admin(self, organization_id: int | None) -> bool:
        if self.is_proxy_admin:
            return True
        return organization_id is not None and self.org_roles.get(organization_id) in ORG_WIDE_ROLES

    def is_team_admin(self, team_id: int | None, organization_id: int | None) -> bool:
        if self.is_org_admin(organization_id):
            return True
        return team_id is not None and self.team_roles.get(team_id) == Role.TEAM_ADMIN

    def admin_org_ids(self) -> set[int]:
        return {org for org, role in self.org_roles.items() if role in ORG_WIDE_ROLES}

    def admin_team_ids(self) -> set[int]:
        return {team for team, role in self.team_roles.items() if role == Role.TEAM_ADMIN}

    def visible_org_ids(self) -> set[int]:
        return set(self.org_roles) | set(self.team_orgs.values())

    def visible_team_ids(self) -> set[int]:
        return set(self.team_roles)
