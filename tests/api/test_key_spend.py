"""Every key's spend on /api/v1/keys and in admin, budget or not, as decimal strings."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from itertools import count

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.counters import budget_counter_key, usd_to_units
from billing.models import Budget, BudgetScope, RequestLog
from billing.rollups import rollup_day
from billing.selectors import budget_snapshot_from
from keys.models import VirtualKey
from keys.services import key_create
from ogem_site.redis import redis_client_sync
from tests.api.conftest import World

_ids = count()


def _log(key: VirtualKey, *, cost: str, days_ago: int = 0) -> None:
    day = timezone.now().astimezone(UTC).date() - timedelta(days=days_ago)
    moment = timezone.now() if days_ago == 0 else datetime.combine(day, time(12), tzinfo=UTC)
    RequestLog.objects.create(
        request_id=f"key-spend-{next(_ids)}",
        created_at=moment,
        organization_id=key.organization_id,
        team_id=key.team_id,
        key_id=key.pk,
        endpoint="chat/completions",
        model="mock-chat",
        status_code=200,
        cost=Decimal(cost),
    )


def test_a_key_without_a_budget_has_its_spend(world: World) -> None:
    key = world.a.team_key  # no budget of its own
    assert not Budget.objects.filter(scope=BudgetScope.KEY, key=key).exists()
    _log(key, cost="0.00002706")
    _log(world.b.team_key, cost="5")  # another key's spend is not this one's
    client = world.clients["master"]

    body = client.get(f"/api/v1/keys/{key.pk}").json()
    assert (body["spend"], body["total_spend"]) == ("0.00002706", "0.00002706")
    listed = {row["id"]: row for row in client.get("/api/v1/keys").json()["results"]}
    assert listed[key.pk]["spend"] == "0.00002706"
    assert listed[world.b.team_key.pk]["spend"] == "5.00000000"
    assert all(
        row["spend"] == "0.00000000"
        for pk, row in listed.items()
        if pk not in {key.pk, world.b.team_key.pk}
    )
    assert "e-" not in client.get("/api/v1/keys").content.decode()

    # A rolled day counts once: from the rollups, today's from the log.
    _log(key, cost="0.5", days_ago=1)
    rollup_day(day=timezone.now().astimezone(UTC).date() - timedelta(days=1))
    assert client.get(f"/api/v1/keys/{key.pk}").json()["spend"] == "0.50002706"


def test_a_budgeted_key_shows_its_period_and_its_total(world: World) -> None:
    created = world.clients["master"].post(
        "/api/v1/keys",
        {
            "name": "capped",
            "team": world.a.team.pk,
            "max_budget": "0.00001",
            "budget_duration": "1d",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["max_budget"] == "0.00001000"
    key = VirtualKey.objects.get(pk=created.json()["id"])
    _log(key, cost="0.00000300", days_ago=3)  # an earlier period
    _log(key, cost="0.00000006")
    Budget.objects.filter(scope=BudgetScope.KEY, key=key).update(spend=Decimal("0.00000006"))
    body = world.clients["master"].get(f"/api/v1/keys/{key.pk}").json()
    assert (body["spend"], body["total_spend"]) == ("0.00000006", "0.00000306")
    budget = world.clients["master"].get("/api/v1/budgets", {"key": key.pk}).json()["results"]
    assert [(b["max_budget"], b["spend"]) for b in budget] == [("0.00001000", "0.00000006")]


@pytest.mark.skipif(not settings.REDIS_URL, reason="the live counters are Redis's here")
def test_a_budgeted_keys_period_spend_is_the_live_counters(world: World) -> None:
    """Mid-period, the budget row's spend is what the last reset persisted; the live counter
    has every settled request since: the key shows the counter's."""
    created = world.clients["master"].post(
        "/api/v1/keys",
        {"name": "live", "team": world.a.team.pk, "max_budget": "10", "budget_duration": "1d"},
        format="json",
    )
    key = VirtualKey.objects.get(pk=created.json()["id"])
    budget = Budget.objects.select_related("key").get(scope=BudgetScope.KEY, key=key)
    counter = budget_counter_key(snapshot=budget_snapshot_from(budget=budget))
    redis_client_sync().hset(counter, "s", usd_to_units(Decimal("0.25")))
    try:
        client = world.clients["master"]
        assert client.get(f"/api/v1/keys/{key.pk}").json()["spend"] == "0.25000000"
        listed = {row["id"]: row for row in client.get("/api/v1/keys").json()["results"]}
        assert listed[key.pk]["spend"] == "0.25000000"
    finally:
        redis_client_sync().delete(counter)
    # No counter (a new period, or Redis flushed): the persisted spend.
    Budget.objects.filter(pk=budget.pk).update(spend=Decimal("0.125"))
    body = world.clients["master"].get(f"/api/v1/keys/{key.pk}").json()
    assert body["spend"] == "0.12500000"


def test_the_key_list_reads_spend_once_per_page(world: World) -> None:
    client = world.clients["master"]

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/keys").status_code == 200
        return len(captured)

    few = queries()
    for n in range(6):
        key = key_create(name=f"more-{n}", team=world.a.team).key
        _log(key, cost="0.1")
    assert queries() == few


def test_admin_lists_every_keys_spend(admin_client: Client) -> None:
    client = admin_client
    key = key_create(name="no-budget").key
    _log(key, cost="0.00002706")
    changelist = client.get("/admin/keys/virtualkey/")
    assert changelist.status_code == 200
    assert b'<td class="field-spend">0.00002706</td>' in changelist.content
    change = client.get(f"/admin/keys/virtualkey/{key.pk}/change/")
    assert change.content.count(b"0.00002706") == 2  # spend and total spend
