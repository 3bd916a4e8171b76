"""scim2-tester, the SCIM compliance checker, against /scim/v2/ on a live server."""

from __future__ import annotations

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from tenants.scim.services import scim_token_create
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.live


def test_scim2_tester_reports_no_error(live_ogem) -> None:  # type: ignore[no-untyped-def]
    organization = OrganizationFactory()
    _, secret = scim_token_create(organization=organization, name="compliance")
    with httpx2.Client(
        base_url=f"{live_ogem.url}/scim/v2",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    ) as http:
        results = check_server(SyncSCIMClient(http))

    # Anything but SUCCESS fails: errors, but also skipped checks and SHOULD-level deviations.
    failures = [
        f"{r.resource_type or '-'} {r.title}: {r.status.name}: {r.reason}"
        for r in results
        if r.status != Status.SUCCESS
    ]
    assert failures == []
    assert len(results) >= 70
    succeeded = {(r.resource_type, r.title) for r in results if r.status == Status.SUCCESS}
    # The checker really exercised both resource types end to end.
    for resource_type in ("User", "Group"):
        for title in ("object_creation", "object_query", "object_replacement", "object_deletion"):
            assert (resource_type, title) in succeeded
