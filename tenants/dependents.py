"""What a tenancy change means for the apps built on tenants.

tenants imports no app above it (docs/architecture.md), yet keys hang off organizations, teams
and users: a user SCIM removes from an organization loses their keys there, a deleted team its
keys, and a changed team or organization must reach the /v1 key cache (its cached callers carry
the team's and organization's routing metadata). An app registers what it does on each event
from its AppConfig.ready() (keys/apps.py); tenants calls the registered functions, in order,
synchronously and inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tenants.models import Organization, Team, User


@dataclass(frozen=True, slots=True)
class TenantDependent:
    # A user leaves an organization (SCIM deactivation or removal); with an audit reason, what
    # goes with them is audited under it.
    member_removed: Callable[[User, Organization, str | None], None]
    # A team is being deleted (called first, while what hangs off it can still be listed).
    team_removed: Callable[[Team], None]
    # A team or an organization changed or is being deleted (exactly one of the two is given).
    tenant_changed: Callable[[Team | None, Organization | None], None]


_dependents: list[TenantDependent] = []


def tenant_dependent_register(dependent: TenantDependent) -> None:
    if dependent not in _dependents:
        _dependents.append(dependent)


def tenant_member_removed(
    *, user: User, organization: Organization, audit_reason: str | None
) -> None:
    for dependent in _dependents:
        dependent.member_removed(user, organization, audit_reason)


def tenant_team_removed(*, team: Team) -> None:
    for dependent in _dependents:
        dependent.team_removed(team)


def tenant_changed(*, team: Team | None = None, organization: Organization | None = None) -> None:
    for dependent in _dependents:
        dependent.tenant_changed(team, organization)
