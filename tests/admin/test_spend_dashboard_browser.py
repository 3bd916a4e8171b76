"""The admin spend dashboard in a real browser (Chromium, the live Ogem): Chart.js, served from
Ogem itself, draws the four charts from the page's rollup data."""

from __future__ import annotations

import os
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from billing.models import RequestLog
from billing.rollups import rollup_day
from tenants.models import User
from tests.factories import OrganizationFactory, TeamFactory
from tests.live import LiveServer
from tests.portal.conftest import chromium_page

pytestmark = pytest.mark.live

_CHARTS = ("team-spend", "team-tokens", "model-spend", "model-tokens")


def test_dashboard_draws_its_charts(live_ogem: LiveServer) -> None:
    acme = OrganizationFactory(name="Acme")
    teams = [TeamFactory(organization=acme, name=name) for name in ("Search", "Ads")]
    yesterday = timezone.now().astimezone(UTC).date() - timedelta(days=1)
    for n, (team, model) in enumerate([(teams[0], "gpt-4o"), (teams[1], "claude-3")]):
        RequestLog.objects.create(
            request_id=f"browser-{n}",
            created_at=datetime.combine(yesterday, time(9), tzinfo=UTC),
            organization_id=acme.pk,
            team_id=team.pk,
            endpoint="chat/completions",
            model=model,
            status_code=200,
            total_tokens=100 * (n + 1),
            cost=Decimal("1.25") * (n + 1),
        )
    rollup_day(day=yesterday)
    User.objects.create_superuser("root", "root@example.com", "a long enough passphrase 42")

    with chromium_page() as page:
        page.goto(f"{live_ogem.url}/admin/login/?next=/admin/spend/")
        page.fill("#id_username", "root")
        page.fill("#id_password", "a long enough passphrase 42")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_ogem.url}/admin/spend/")
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
    assert drawn == [
        ["bar", 30, [["Ads (Acme)", 2.5], ["Search (Acme)", 1.25]]],
        ["bar", 30, [["Ads (Acme)", 200], ["Search (Acme)", 100]]],
        ["bar", 30, [["claude-3", 2.5], ["gpt-4o", 1.25]]],
        ["bar", 30, [["claude-3", 200], ["gpt-4o", 100]]],
    ]


def test_small_spend_is_drawn_in_plain_decimals(live_ogem: LiveServer) -> None:
    """Today's first requests cost millionths of a dollar: the axis says $0.00001, not 1E-5."""
    acme = OrganizationFactory(name="Acme")
    team = TeamFactory(organization=acme, name="Search")
    RequestLog.objects.create(
        request_id="browser-tiny",
        created_at=timezone.now(),
        organization_id=acme.pk,
        team_id=team.pk,
        endpoint="chat/completions",
        model="gpt-4o-mini",
        status_code=200,
        total_tokens=12,
        cost=Decimal("0.00002706"),
    )
    User.objects.create_superuser("root", "root@example.com", "a long enough passphrase 42")

    with chromium_page() as page:
        page.goto(f"{live_ogem.url}/admin/login/?next=/admin/spend/")
        page.fill("#id_username", "root")
        page.fill("#id_password", "a long enough passphrase 42")
        page.click("input[type=submit]")
        page.wait_for_url(f"{live_ogem.url}/admin/spend/")
        drawn = page.evaluate(
            """() => {
                const chart = Chart.getChart("team-spend");
                return [chart.data.datasets[0].data.at(-1),
                        chart.scales.y.ticks.map(t => t.label)];
            }"""
        )
    value, ticks = drawn
    assert value == 0.00002706
    assert ticks[0] == "$0" and len(ticks) > 2
    assert all(label.startswith("$0") and "E" not in label.upper() for label in ticks), ticks
