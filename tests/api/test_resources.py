"""Every /api/v1 resource: CRUD per role on tenant A, and isolation from tenant B."""

from __future__ import annotations

from typing import Any

from tests.api.base import ResourceTests
from tests.api.conftest import Tenant

OK = 200
CREATED = 201
GONE = 204
FORBIDDEN = 403
NOT_FOUND = 404


def _by_role(
    master: int, org_admin: int, team_admin: int, member: int, viewer: int
) -> dict[str, int]:
    return {
        "master": master,
        "org_admin": org_admin,
        "team_admin": team_admin,
        "member": member,
        "viewer": viewer,
    }


class TestOrganizations(ResourceTests):
    path = "organizations"
    retrieve = _by_role(OK, OK, OK, OK, OK)
    create = _by_role(CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN)
    update = _by_role(OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN)
    # Only owners (and proxy admins) delete an organization.
    delete = _by_role(GONE, FORBIDDEN, FORBIDDEN, FORBIDDEN, FORBIDDEN)
    # Creating organizations is for proxy admins: refused before any tenant is involved.
    foreign_create_status = FORBIDDEN

    def obj(self, tenant: Tenant) -> Any:
        return tenant.organization

    def create_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {"name": "New org", "slug": f"new-{tenant.organization.slug}"}

    def update_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {"name": "Renamed"}


class TestTeams(ResourceTests):
    path = "teams"
    retrieve = _by_role(OK, OK, OK, OK, OK)
    create = _by_role(CREATED, CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN)
    update = _by_role(OK, OK, OK, FORBIDDEN, FORBIDDEN)
    delete = _by_role(GONE, GONE, FORBIDDEN, FORBIDDEN, FORBIDDEN)

    def obj(self, tenant: Tenant) -> Any:
        return tenant.team

    def create_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {"organization": tenant.organization.pk, "name": "Research"}

    def update_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {"name": "Renamed"}


class TestUsers(ResourceTests):
    path = "users"
    # A member sees only themselves; team admins see their team; org viewers their organization.
    retrieve = _by_role(OK, OK, OK, NOT_FOUND, OK)
    create = _by_role(CREATED, CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN)
    # A user may belong to several organizations: only proxy admins change other users.
    update = _by_role(OK, FORBIDDEN, FORBIDDEN, NOT_FOUND, FORBIDDEN)
    delete = _by_role(GONE, FORBIDDEN, FORBIDDEN, NOT_FOUND, FORBIDDEN)

    def obj(self, tenant: Tenant) -> Any:
        return tenant.alice

    def create_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {
            "username": f"new-{tenant.organization.slug}",
            "email": "new@example.com",
            "organization": tenant.organization.pk,
            "role": "member",
        }

    def update_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {"display_name": "Alice Renamed"}


class TestMemberships(ResourceTests):
    path = "memberships"
    retrieve = _by_role(OK, OK, OK, NOT_FOUND, OK)
    # The payload is an organization-wide membership: team admins may not grant those.
    create = _by_role(CREATED, CREATED, FORBIDDEN, NOT_FOUND, FORBIDDEN)
    update = _by_role(OK, OK, OK, NOT_FOUND, FORBIDDEN)
    delete = _by_role(GONE, GONE, GONE, NOT_FOUND, FORBIDDEN)

    def obj(self, tenant: Tenant) -> Any:
        return tenant.alice_membership

    def create_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {"user": tenant.alice.pk, "organization": tenant.organization.pk, "role": "viewer"}

    def update_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {"role": "viewer"}


class TestKeys(ResourceTests):
    path = "keys"
    # The object is a team key with no owner: a member of the team does not see it.
    retrieve = _by_role(OK, OK, OK, NOT_FOUND, OK)
    create = _by_role(CREATED, CREATED, CREATED, CREATED, FORBIDDEN)
    update = _by_role(OK, OK, OK, NOT_FOUND, FORBIDDEN)
    delete = _by_role(GONE, GONE, GONE, NOT_FOUND, FORBIDDEN)

    def obj(self, tenant: Tenant) -> Any:
        return tenant.team_key

    def create_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {"name": "new key", "team": tenant.team.pk, "models": ["mock-chat"]}

    def update_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {"name": "renamed", "rpm_limit": 7}


class TestBudgets(ResourceTests):
    path = "budgets"
    # The object is the team's budget; everyone in the team or organization may read it.
    retrieve = _by_role(OK, OK, OK, OK, OK)
    # The payload is a budget on the team's key: team admins manage their keys' budgets.
    create = _by_role(CREATED, CREATED, CREATED, NOT_FOUND, FORBIDDEN)
    update = _by_role(OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN)
    delete = _by_role(GONE, GONE, FORBIDDEN, FORBIDDEN, FORBIDDEN)

    def obj(self, tenant: Tenant) -> Any:
        return tenant.team_budget

    def create_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {
            "scope": "key",
            "key": tenant.team_key.pk,
            "max_budget": 5,
            "budget_duration": "7d",
        }

    def update_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {"max_budget": "250.00000000"}  # money leaves as a decimal string


class TestModels(ResourceTests):
    path = "models"
    retrieve = _by_role(OK, OK, OK, OK, OK)
    create = _by_role(CREATED, CREATED, FORBIDDEN, FORBIDDEN, FORBIDDEN)
    update = _by_role(OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN)
    delete = _by_role(GONE, GONE, FORBIDDEN, FORBIDDEN, FORBIDDEN)

    def obj(self, tenant: Tenant) -> Any:
        return tenant.deployment

    def create_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {
            "model_name": "gpt-4o-mini",
            "provider": "openai",
            "upstream_model": "gpt-4o-mini",
            "organization": tenant.organization.pk,
            # The organization's own key: server references are for shared deployments only.
            "api_key": "sk-tenant-own",
        }

    def update_payload(self, tenant: Tenant) -> dict[str, Any]:
        return {"weight": 5, "enabled": False}
