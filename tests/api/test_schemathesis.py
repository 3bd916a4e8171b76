"""schemathesis over /api/v1/schema/: no operation answers a 5xx (issue 14, point 15).

The management API is fuzzed on a live Ogem with the master key, against two tenants whose
objects the `{id}` paths address (so updates, rotations and deletions reach the services).
"""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import World
from tests.fuzz import server_errors
from tests.live import LiveServer

# Some 700 requests on a live server: beside parallel test workers on a loaded machine it takes
# longer than the suite's default 300 s timeout.
pytestmark = [pytest.mark.live, pytest.mark.timeout(900)]

EXAMPLES = 15  # fuzzed cases per operation, besides the coverage phase's


def test_management_api_answers_no_server_error(
    live_ogem: LiveServer, master_key: str, world: World
) -> None:
    headers = {"Authorization": f"Bearer {master_key}"}
    document = httpx.get(
        f"{live_ogem.url}/api/v1/schema/", params={"format": "json"}, headers=headers
    ).json()
    tenant = world.a
    ids = {
        "organizations": tenant.organization.pk,
        "teams": tenant.team.pk,
        "users": tenant.alice.pk,
        "memberships": tenant.alice_membership.pk,
        "keys": tenant.team_key.pk,
        "budgets": tenant.team_budget.pk,
        "models": tenant.deployment.pk,
    }

    failures = server_errors(
        document=document,
        base_url=live_ogem.url,
        headers=headers,
        max_examples=EXAMPLES,
        operations=[
            {"include-path-regex": f"^/api/v1/{name}/", "parameters": {"path.id": pk}}
            for name, pk in ids.items()
        ],
    )
    assert failures == []
