"""The strict Content-Security-Policy in a real browser (Chromium, the live Ogem): admin, portal and
Swagger UI work and the browser refuses nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tenants.models import User
from tests.live import LiveServer
from tests.portal.conftest import chromium_page

pytestmark = pytest.mark.live

PASSWORD = "a long enough passphrase 42"


def test_admin_portal_and_api_docs_run_under_the_policy(live_ogem: LiveServer) -> None:
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    refused: list[str] = []
    with chromium_page() as page:

        def watch(message: Any) -> None:
            if "Content Security Policy" in message.text:  # how Chromium reports a refusal
                refused.append(f"{page.url} {message.text}")

        page.on("console", watch)
        page.goto(f"{live_ogem.url}/admin/login/?next=/admin/tenants/organization/add/")
        page.fill("#id_username", "root")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_ogem.url}/admin/tenants/organization/add/")
        # The admin's own scripts run: the slug is filled in from the name as one types.
        page.type("#id_name", "Acme Labs")
        slug = page.input_value("#id_slug")
        page.goto(f"{live_ogem.url}/admin/spend/")
        page.wait_for_load_state("networkidle")
        page.goto(f"{live_ogem.url}/playground/")
        page.wait_for_load_state("networkidle")
        page.goto(f"{live_ogem.url}/api/v1/docs/")
        title = page.locator(".swagger-ui .info .title").inner_text()
        operations = page.locator(".opblock").count()
    assert slug == "acme-labs"
    assert title.startswith("Ogem management API")
    assert operations > 10
    assert refused == []
