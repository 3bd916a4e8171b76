"""GET /api/v1/guardrails/decisions: the guardrails' audit (docs/guardrails.md, "Audit"), scoped
per tenant like /api/v1/spend: each role against tenant A's decisions (its team's and its other
team's) and tenant B's, which no caller of A ever sees."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count

import pytest

from billing.models import GuardrailDecision
from tests.api.conftest import ROLES, World

URL = "/api/v1/guardrails/decisions"
_ids = count()

# role -> which decisions it lists: A's team, A's other team, B's team
VISIBLE = {
    "master": {"a-team", "a-other", "b-team"},
    "org_admin": {"a-team", "a-other"},
    "team_admin": {"a-team"},
    "member": set(),  # a member reads their own keys' requests only (none of these)
    "viewer": {"a-team", "a-other"},  # an organization's viewer reads all of it
}


def _decision(*, request_id: str, organization_id: int, team_id: int, **fields: object) -> None:
    GuardrailDecision.objects.create(
        request_id=request_id,
        created_at=datetime(2026, 12, 6, 12, next(_ids) % 60, tzinfo=UTC),
        organization_id=organization_id,
        team_id=team_id,
        endpoint="chat/completions",
        model="mock-chat",
        guardrail=fields.get("guardrail", "pii"),
        phase=fields.get("phase", "pre_call"),
        action=fields.get("action", "mask"),
        category=fields.get("category", "EMAIL_ADDRESS"),
    )


@pytest.fixture
def decisions(world: World) -> World:
    _decision(request_id="a-team", organization_id=world.a.organization.pk, team_id=world.a.team.pk)
    _decision(
        request_id="a-other",
        organization_id=world.a.organization.pk,
        team_id=world.a.other_team.pk,
        guardrail="no-secrets",
        action="block",
        category="OPENAI_API_KEY",
    )
    _decision(request_id="b-team", organization_id=world.b.organization.pk, team_id=world.b.team.pk)
    return world


@pytest.mark.parametrize("role", ROLES)
def test_each_role_lists_its_tenants_decisions_only(decisions: World, role: str) -> None:
    response = decisions.clients[role].get(URL)
    assert response.status_code == 200, response.content
    listed = {row["request_id"] for row in response.json()["results"]}
    assert listed == VISIBLE[role]


@pytest.mark.parametrize("role", ROLES)
def test_filters_never_widen_the_scope(decisions: World, role: str) -> None:
    client = decisions.clients[role]
    by_org = client.get(URL, {"organization": decisions.b.organization.pk})
    assert by_org.status_code == 200
    assert {row["request_id"] for row in by_org.json()["results"]} == VISIBLE[role] & {"b-team"}
    blocked = client.get(URL, {"action": "block"})
    assert {row["request_id"] for row in blocked.json()["results"]} == VISIBLE[role] & {"a-other"}


def test_bad_filters_are_400_and_anonymous_callers_401(decisions: World) -> None:
    from rest_framework.test import APIClient

    assert decisions.clients["master"].get(URL, {"action": "allow"}).status_code == 400
    assert decisions.clients["master"].get(URL, {"team": "x"}).status_code == 400
    assert APIClient().get(URL).status_code in (401, 403)
