"""Admin's Analytics page in a real browser (Chromium, the live Ogem): Chart.js, served from Ogem
itself, draws every chart from the page's data, without a script error."""

from __future__ import annotations

import os
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from tenants.models import User
from tests.factories import OrganizationFactory, RequestLogFactory, TeamFactory
from tests.live import LiveServer
from tests.portal.conftest import chromium_page

pytestmark = pytest.mark.live

_CHARTS = (
    "latency-p50",
    "latency-p95",
    "ttft-p50",
    "error-rate",
    "throughput",
    "team-spend",
    "model-tokens",
    "cache-rate",
)


def test_the_analytics_page_draws_its_charts(live_ogem: LiveServer) -> None:
    acme = OrganizationFactory(name="Acme")
    search = TeamFactory(organization=acme, name="Search")
    yesterday = timezone.now().astimezone(UTC).date() - timedelta(days=1)
    for latency, status in ((100, 200), (300, 200), (900, 502)):
        RequestLogFactory(
            created_at=datetime.combine(yesterday, time(9), tzinfo=UTC),
            organization_id=acme.pk,
            team_id=search.pk,
            model="gpt-4o",
            latency_ms=latency,
            ttft_ms=latency // 2,
            status_code=status,
            prompt_tokens=10,
            completion_tokens=5,
            cost=Decimal("0.5"),
        )
    User.objects.create_superuser("root", "root@example.com", "a long enough passphrase 42")

    with chromium_page() as page:
        # Script errors, and any of the page's own requests that fails (the browser's own
        # favicon request is not the page's).
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "response",
            lambda response: errors.append(response.url) if response.status >= 400 else None,
        )
        page.goto(f"{live_ogem.url}/admin/login/?next=/admin/analytics/")
        page.fill("#id_username", "root")
        page.fill("#id_password", "a long enough passphrase 42")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_ogem.url}/admin/analytics/")
        drawn = page.evaluate(
            """ids => ids.map(id => {
                const chart = Chart.getChart(id);
                return chart && [chart.config.type, chart.data.labels.length,
                                 chart.data.datasets.map(d => [d.label, d.data.at(-2)])];
            })""",
            list(_CHARTS),
        )
        if os.environ.get("OGEM_SCREENSHOT"):
            page.screenshot(path=os.environ["OGEM_SCREENSHOT"], full_page=True)
    assert errors == []
    assert drawn == [
        ["line", 7, [["gpt-4o", 200]]],  # p50 of 100 and 300: the 502 is not a success
        ["line", 7, [["gpt-4o", 290]]],
        ["line", 7, [["gpt-4o", 100]]],
        ["line", 7, [["gpt-4o", 0.3333]]],
        ["line", 7, [["gpt-4o", 0.0021]]],
        ["bar", 7, [["Search", 1.5]]],
        ["bar", 7, [["gpt-4o", 45]]],
        ["line", 7, [["Hit rate", None]]],
    ]
