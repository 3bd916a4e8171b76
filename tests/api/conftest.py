"""Two tenants, A and B, with a caller for every role, each authenticated by a real virtual key."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from billing.models import Budget, BudgetScope
from billing.services import budget_upsert
from gateway.models import ModelDeployment
from keys.models import VirtualKey
from keys.services import key_create
from tenants.models import Membership, Organization, Role, Team, User
from tests.factories import (
    MembershipFactory,
    ModelDeploymentFactory,
    OrganizationFactory,
    TeamFactory,
    UserFactory,
)

ROLES = ["master", "org_admin", "team_admin", "member", "viewer"]


@dataclass
class Tenant:
    organization: Organization
    team: Team
    other_team: Team
    alice: User  # a plain member of `team`, the subject of user and membership tests
    alice_membership: Membership
    team_key: VirtualKey
    team_budget: Budget
    deployment: ModelDeployment


@dataclass
class World:
    a: Tenant
    b: Tenant
    users: dict[str, User] = field(default_factory=dict)
    clients: dict[str, APIClient] = field(default_factory=dict)


def bearer_client(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def _tenant(name: str) -> Tenant:
    organization = OrganizationFactory(name=f"Org {name}", slug=f"org-{name}")
    team = TeamFactory(organization=organization, name=f"Team {name}", slug=f"team-{name}")
    other_team = TeamFactory(organization=organization, name=f"Other {name}", slug=f"other-{name}")
    alice = UserFactory(username=f"alice-{name}")
    alice_membership = MembershipFactory(user=alice, organization=organization, team=team)
    team_key = key_create(name=f"ci-{name}", team=team).key
    team_budget = budget_upsert(scope=BudgetScope.TEAM, target=team, max_budget=Decimal("100"))
    deployment = ModelDeploymentFactory(model_name=f"model-{name}", organization=organization)
    return Tenant(
        organization=organization,
        team=team,
        other_team=other_team,
        alice=alice,
        alice_membership=alice_membership,
        team_key=team_key,
        team_budget=team_budget,
        deployment=deployment,
    )


def _member(*, username: str, organization: Organization, team: Team | None, role: str) -> User:
    user = UserFactory(username=username)
    # The factory sets the password after saving and does not save again.
    user.save(update_fields=["password"])
    MembershipFactory(user=user, organization=organization, team=team, role=role)
    return user


@pytest.fixture
def world(db: None, master_key: str) -> World:
    a = _tenant("a")
    b = _tenant("b")
    users = {
        "org_admin": _member(
            username="org-admin-a", organization=a.organization, team=None, role=Role.ORG_ADMIN
        ),
        "team_admin": _member(
            username="team-admin-a", organization=a.organization, team=a.team, role=Role.TEAM_ADMIN
        ),
        "member": _member(
            username="member-a", organization=a.organization, team=a.team, role=Role.MEMBER
        ),
        "viewer": _member(
            username="viewer-a", organization=a.organization, team=None, role=Role.VIEWER
        ),
    }
    clients = {"master": bearer_client(master_key)}
    for role, user in users.items():
        issued = key_create(name=f"{role}-personal", organization=a.organization, user=user)
        clients[role] = bearer_client(issued.secret)
    return World(a=a, b=b, users=users, clients=clients)


def ids(response: Any) -> set[int]:
    body = response.json()
    rows = body["results"] if isinstance(body, dict) and "results" in body else body
    return {row["id"] for row in rows}
