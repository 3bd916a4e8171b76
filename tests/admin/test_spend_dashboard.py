"""Admin's spend dashboard (charts from the daily rollups and today's request log, scoped by
role) and its warning about models used at zero cost for want of a price."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import ModelPrice, RequestLog, UnpricedUsage
from billing.pricing import price_overrides_flush
from billing.rollups import rollup_day
from billing.services import usage_events_record
from tenants.models import Role, User
from tests.factories import (
    MembershipFactory,
    ModelDeploymentFactory,
    OrganizationFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

URL = "/admin/spend/"
_ids = count()


def _today() -> Any:
    return timezone.now().astimezone(UTC).date()


def _client(user: User) -> Client:
    client = Client()
    client.force_login(User.objects.get(pk=user.pk))  # the password as stored
    return client


def _log(
    team: Any, *, days_ago: int, model: str, cost: str, tokens: int, status: int = 200
) -> None:
    day = _today() - timedelta(days=days_ago)
    RequestLog.objects.create(
        request_id=f"dash-{next(_ids)}",
        created_at=datetime.combine(day, time(12), tzinfo=UTC),
        organization_id=team.organization_id,
        team_id=team.pk,
        key_id=1,
        endpoint="chat/completions",
        model=model,
        provider="openai",
        status_code=status,
        prompt_tokens=tokens // 2,
        completion_tokens=tokens - tokens // 2,
        total_tokens=tokens,
        cost=Decimal(cost),
    )


def _roll(*days_ago: int) -> None:
    for offset in days_ago:
        rollup_day(day=_today() - timedelta(days=offset))


def _payload(response: Any) -> dict[str, Any]:
    match = re.search(
        rb'<script id="spend-data" type="application/json">(.*?)</script>', response.content, re.S
    )
    assert match is not None, "no chart data on the page"
    return json.loads(match.group(1))


@pytest.fixture
def world() -> dict[str, Any]:
    acme, globex = OrganizationFactory(name="Acme"), OrganizationFactory(name="Globex")
    search = TeamFactory(organization=acme, name="Search")
    ads = TeamFactory(organization=acme, name="Ads")
    secret = TeamFactory(organization=globex, name="Secret")
    _log(search, days_ago=2, model="gpt-4o", cost="1.5", tokens=100)
    _log(search, days_ago=2, model="claude-3", cost="0.5", tokens=40)
    _log(ads, days_ago=1, model="gpt-4o", cost="2", tokens=60)
    _log(secret, days_ago=1, model="globex-only-model", cost="7", tokens=700)
    _log(search, days_ago=40, model="gpt-4o", cost="9", tokens=900)  # before the default range
    _roll(40, 2, 1)
    _log(search, days_ago=0, model="gpt-4o", cost="3", tokens=30)  # today: not rolled yet
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    admin = UserFactory(username="acme-admin")
    MembershipFactory(user=admin, organization=acme, role=Role.ORG_ADMIN)
    return {
        "acme": acme,
        "globex": globex,
        "search": search,
        "ads": ads,
        "root": root,
        "admin": admin,
    }


def _series(payload: dict[str, Any], kind: str) -> dict[str, list[float]]:
    # Money arrives as decimal strings; compared here as numbers.
    return {s["label"]: [float(v) for v in s["spend"]] for s in payload[kind]}


def test_superuser_sees_every_team_and_model_from_the_rollups_and_today(world) -> None:
    page = _client(world["root"]).get(URL)
    assert page.status_code == 200
    assert page.templates[0].name == "admin/billing/spend_dashboard.html"
    assert b"vendor/chart.umd.min.js" in page.content
    assert b"billing/spend_dashboard.js" in page.content
    data = _payload(page)
    today = _today()
    assert len(data["labels"]) == 30
    assert (data["start"], data["end"]) == (
        (today - timedelta(days=29)).isoformat(),
        today.isoformat(),
    )
    assert data["rolled_through"] == (today - timedelta(days=1)).isoformat()
    # Rolled days from the rollups, today's request (not rolled yet) from the log, once each.
    assert data["total"] == {"spend": "14.00000000", "tokens": 930, "requests": 5}
    zeros = [0.0] * 27
    assert _series(data, "teams") == {
        "Search (Acme)": [*zeros, 2.0, 0.0, 3.0],
        "Secret (Globex)": [*zeros, 0.0, 7.0, 0.0],
        "Ads (Acme)": [*zeros, 0.0, 2.0, 0.0],
    }
    assert _series(data, "models") == {
        "gpt-4o": [*zeros, 1.5, 2.0, 3.0],
        "globex-only-model": [*zeros, 0.0, 7.0, 0.0],
        "claude-3": [*zeros, 0.5, 0.0, 0.0],
    }
    search = next(s for s in data["teams"] if s["label"] == "Search (Acme)")
    assert search["spend"][-3:] == ["2.00000000", "0.00000000", "3.00000000"]
    tokens = {s["label"]: s["tokens"] for s in data["teams"]}
    assert tokens["Search (Acme)"][-3:] == [140, 0, 30]
    assert b"<strong>$14.00</strong>" in page.content


def test_the_first_hour_shows_todays_spend_before_any_rollup() -> None:
    """Nothing rolled up yet: the dashboard reads today's requests from the log, and a few
    millionths of a dollar show as such, not as $0.0000 or 2.706e-05."""
    team = TeamFactory(organization=OrganizationFactory(name="Acme"), name="Search")
    _log(team, days_ago=0, model="gpt-4o-mini", cost="0.00002706", tokens=12)
    _log(team, days_ago=0, model="gpt-4o-mini", cost="0.00000006", tokens=1)
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    page = _client(root).get(URL)
    data = _payload(page)
    assert data["rolled_through"] is None
    assert data["total"] == {"spend": "0.00002712", "tokens": 13, "requests": 2}
    assert data["teams"] == [
        {
            "label": "Search (Acme)",
            "spend": [*["0.00000000"] * 29, "0.00002712"],
            "tokens": [*[0] * 29, 13],
        }
    ]
    assert b"<strong>$0.00002712</strong>" in page.content
    assert b"e-0" not in page.content

    # Rolling today up moves it from the log to the rollups: still counted once.
    _roll(0)
    assert _payload(_client(root).get(URL))["total"] == data["total"]


def test_org_admin_sees_only_their_organization(world) -> None:
    client = _client(world["admin"])
    page = client.get(URL)
    assert page.status_code == 200
    data = _payload(page)
    assert data["total"] == {"spend": "7.00000000", "tokens": 230, "requests": 4}
    assert set(_series(data, "teams")) == {"Search (Acme)", "Ads (Acme)"}
    assert set(_series(data, "models")) == {"gpt-4o", "claude-3"}
    assert b"Globex" not in page.content
    assert b"globex-only-model" not in page.content
    assert list(page.context["form"].fields["organization"].queryset) == [world["acme"]]

    # Asking for another organization (or its team) shows nothing of it.
    for query in ({"organization": world["globex"].pk}, {"team": world["globex"].teams.get().pk}):
        refused = client.get(URL, query)
        assert refused.status_code == 200
        assert refused.context["chart"] is None
        assert b"Select a valid choice" in refused.content
        assert b"globex-only-model" not in refused.content and b"spend-data" not in refused.content


def test_team_admin_sees_only_their_team(world) -> None:
    lead = UserFactory()
    MembershipFactory(
        user=lead, organization=world["acme"], team=world["ads"], role=Role.TEAM_ADMIN
    )
    data = _payload(_client(lead).get(URL))
    assert _series(data, "teams") == {"Ads (Acme)": [*[0.0] * 28, 2.0, 0.0]}
    assert data["total"] == {"spend": "2.00000000", "tokens": 60, "requests": 1}


def test_a_member_is_not_let_in(world) -> None:
    member = UserFactory()
    MembershipFactory(user=member, organization=world["globex"], role=Role.MEMBER)
    response = _client(member).get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_date_range_and_filters(world) -> None:
    client = _client(world["root"])
    today = _today()
    two_days_ago = (today - timedelta(days=2)).isoformat()
    data = _payload(client.get(URL, {"start": two_days_ago, "end": two_days_ago}))
    assert data["labels"] == [two_days_ago]
    assert _series(data, "teams") == {"Search (Acme)": [2.0]}
    assert data["total"] == {"spend": "2.00000000", "tokens": 140, "requests": 2}

    long_ago = (today - timedelta(days=45)).isoformat()
    data = _payload(client.get(URL, {"start": long_ago}))
    assert len(data["labels"]) == 46
    assert data["total"]["spend"] == "23.00000000"

    data = _payload(client.get(URL, {"organization": world["acme"].pk}))
    assert data["total"] == {"spend": "7.00000000", "tokens": 230, "requests": 4}
    data = _payload(client.get(URL, {"team": world["ads"].pk}))
    assert _series(data, "teams") == {"Ads (Acme)": [*[0.0] * 28, 2.0, 0.0]}
    assert _series(data, "models") == {"gpt-4o": [*[0.0] * 28, 2.0, 0.0]}

    backwards = client.get(URL, {"start": today.isoformat(), "end": two_days_ago})
    assert backwards.context["chart"] is None
    assert b"The end comes before the start." in backwards.content
    too_long = client.get(URL, {"start": (today - timedelta(days=400)).isoformat()})
    assert too_long.context["chart"] is None
    assert b"Choose at most 366 days." in too_long.content


def test_many_series_fold_into_other(world) -> None:
    for n in range(10):
        _log(world["search"], days_ago=3, model=f"model-{n:02}", cost=str(n + 1), tokens=10)
    _roll(3)
    data = _payload(_client(world["root"]).get(URL))
    labels = [s["label"] for s in data["models"]]
    assert len(labels) == 9
    # By spend, ties by tokens: globex-only-model (7 USD, 700 tokens) before model-06 (7, 10).
    assert labels[:6] == [
        "model-09",
        "model-08",
        "model-07",
        "globex-only-model",
        "model-06",
        "gpt-4o",  # 6.5, today's 3 with it
    ]
    assert labels[-1] == "Other"
    other = _series(data, "models")["Other"]
    # model-03 (4), model-02 (3), model-01 (2), model-00 (1) and claude-3 (0.5).
    assert sum(other) == pytest.approx(10.5)


def test_query_count_does_not_grow_with_data(world) -> None:
    client = _client(world["admin"])
    client.get(URL)  # warm the session and the site's caches

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(URL).status_code == 200
        return len(captured)

    few = queries()
    for n in range(12):
        team = TeamFactory(organization=world["acme"], name=f"T{n}")
        for days_ago in range(1, 20):
            _log(team, days_ago=days_ago, model=f"m{n % 5}", cost="0.1", tokens=10)
    _roll(*range(1, 20))
    assert queries() == few
    # Session, user, principal, watermark, 2 aggregates of the rollups and 2 of the log, team
    # names, the warning's one, the response cache's one, and admin's own (permission, app
    # list, organization choices).
    assert few <= 18


def test_index_and_organization_and_team_pages_link_to_it(world) -> None:
    client = _client(world["admin"])
    index = client.get("/admin/")
    assert b'href="/admin/spend/"' in index.content
    acme, search = world["acme"], world["search"]
    assert b'href="/admin/spend/"' in client.get("/admin/tenants/organization/").content
    org_page = client.get(f"/admin/tenants/organization/{acme.pk}/change/")
    assert f'href="/admin/spend/?organization={acme.pk}"'.encode() in org_page.content
    team_page = client.get(f"/admin/tenants/team/{search.pk}/change/")
    expected = f'href="/admin/spend/?organization={acme.pk}&amp;team={search.pk}"'
    assert expected.encode() in team_page.content


# ---- the unpriced-model warning ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_price_overrides() -> Iterator[None]:
    price_overrides_flush()
    yield
    price_overrides_flush()


def _event(
    request_id: str, *, model: str, cost: str, org: int, status: int = 200
) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "ts": timezone.now().timestamp(),
        "organization_id": org,
        "team_id": None,
        "key_id": 1,
        "endpoint": "chat/completions",
        "model": model,
        "provider": "openai",
        "deployment": "",
        "status_code": status,
        "prompt_tokens": 5,
        "completion_tokens": 5,
        "total_tokens": 10,
        "cost": cost,
    }


def _warnings(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"] if m.level_tag == "warning"]


def test_unpriced_usage_is_warned_about_from_the_database(world) -> None:
    acme, globex = world["acme"].pk, world["globex"].pk
    batch = [
        _event("u-1", model="house-llm", cost="0", org=acme),
        _event("u-2", model="house-llm", cost="0", org=acme),
        _event("u-3", model="house-llm", cost="0", org=acme, status=502),  # failed: no usage
        _event("u-4", model="gpt-4o", cost="0.01", org=acme),  # priced
        _event("u-5", model="gpt-4o", cost="0", org=acme),  # priced model, zero usage: no warning
        _event("u-6", model="globex-llm", cost="0", org=globex),
    ]
    usage_events_record(events=batch)
    usage_events_record(events=batch)  # a batch delivered twice counts once
    assert sorted(UnpricedUsage.objects.values_list("model", "requests")) == [
        ("globex-llm", 1),
        ("gpt-4o", 1),
        ("house-llm", 2),
    ]

    root = _client(world["root"])
    index = root.get("/admin/")
    link = b'<a href="/admin/billing/modelprice/add/?model=house-llm&amp;provider=openai">'
    assert link + b"Set a price</a>" in index.content  # rendered as HTML, not escaped
    warnings = _warnings(index)
    assert len(warnings) == 2
    assert warnings[0].startswith(
        "No price for <strong>openai/house-llm</strong>: 2 request(s) recorded at zero cost"
    )
    assert (
        '<a href="/admin/billing/modelprice/add/?model=house-llm&amp;provider=openai">'
        in warnings[0]
    )
    assert "openai/globex-llm" in warnings[1]
    assert len(_warnings(root.get(URL))) == 2

    # An org admin is warned about their organization's models only.
    mine = _warnings(_client(world["admin"]).get("/admin/"))
    assert (
        len(mine) == 1 and "house-llm" in mine[0] and "A proxy admin can set its price." in mine[0]
    )

    # A price set in admin (the link's prefilled form) ends the warning for that model.
    form = root.get("/admin/billing/modelprice/add/?model=house-llm&provider=openai")
    assert form.context["adminform"].form.initial == {"model": "house-llm", "provider": "openai"}
    created = root.post(
        "/admin/billing/modelprice/add/",
        {
            "model": "house-llm",
            "provider": "openai",
            "input_cost_per_token": "0.000001",
            "output_cost_per_token": "0.000002",
            "cost_per_image": "{}",
            "effective_from_0": "2020-01-01",
            "effective_from_1": "00:00:00",
        },
    )
    assert created.status_code == 302, created.context["adminform"].form.errors
    assert ModelPrice.objects.get().effective_from == datetime(2020, 1, 1, tzinfo=UTC)
    warnings = _warnings(root.get("/admin/"))
    assert len(warnings) == 1 and "globex-llm" in warnings[0]


def test_rollups_rewrite_the_unpriced_counts_exactly(world) -> None:
    today = _today()
    UnpricedUsage.objects.create(
        day=today, organization_id=world["acme"].pk, model="x", requests=99
    )
    _log(world["search"], days_ago=0, model="house-llm", cost="0", tokens=10)
    _log(world["search"], days_ago=0, model="house-llm", cost="0", tokens=10)
    _log(world["search"], days_ago=0, model="house-llm", cost="0", tokens=0, status=500)
    _roll(0)
    _roll(0)
    rows = list(
        UnpricedUsage.objects.filter(day=today).values_list("model", "requests", "provider")
    )
    assert rows == [("house-llm", 2, "openai")]


def test_the_warning_links_to_the_deployment_behind_the_usage(world) -> None:
    deployment = ModelDeploymentFactory(
        organization=world["acme"], model_name="house-llm", provider="hosted_vllm"
    )
    event = _event("d-1", model="house-llm", cost="0", org=world["acme"].pk)
    usage_events_record(
        events=[{**event, "provider": "hosted_vllm", "deployment": f"db:{deployment.pk}"}]
    )

    (warning,) = _warnings(_client(world["root"]).get(URL))
    assert "<strong>hosted_vllm/house-llm</strong> on deployment db:" in warning
    query = f"model=house-llm&amp;provider=hosted_vllm&amp;deployment={deployment.pk}"
    assert f'<a href="/admin/billing/modelprice/add/?{query}">Set a price</a>' in warning

    (warning,) = _warnings(_client(world["admin"]).get(URL))
    change = f"/admin/gateway/modeldeployment/{deployment.pk}/change/"
    assert f'<a href="{change}">Set input_cost_per_token and output_cost_per_token' in warning


def test_the_response_cache_hit_rate_and_saved_cost_are_shown() -> None:
    """Cache analytics on the dashboard: hits, hit rate and the cost the hits saved, per day."""
    team = TeamFactory(organization=OrganizationFactory(name="Acme"), name="Search")
    for result, saved in (
        ("miss", None),
        ("hit", "0.00002706"),
        ("semantic-hit", "0.5"),
        ("bypass", None),
    ):
        RequestLog.objects.create(
            request_id=f"dash-{next(_ids)}",
            created_at=datetime.combine(_today(), time(12), tzinfo=UTC),
            organization_id=team.organization_id,
            team_id=team.pk,
            endpoint="chat/completions",
            model="gpt-4o-mini",
            status_code=200,
            total_tokens=10,
            cache_hit=result.endswith("hit"),
            cache_result=result,
            cache_saved_cost=Decimal(saved) if saved else None,
            cache_saved_tokens=10 if saved else None,
        )
    root = UserFactory(username="root", is_superuser=True, is_staff=True)
    page = _client(root).get(URL)
    cache = _payload(page)["cache"]
    assert (cache["total"]["hits"], cache["total"]["misses"]) == (2, 1)
    assert cache["total"]["semantic_hits"] == 1
    assert b"Of them semantic<strong>1</strong>" in page.content
    assert cache["total"]["saved_cost"] == "0.50002706"
    assert cache["series"][0]["spend"][-1] == "0.50002706"
    assert cache["series"][0]["tokens"][-1] == 20
    assert b"<strong>67%</strong>" in page.content  # 2 hits of 3 looked up
    assert b"<strong>$0.50002706</strong>" in page.content
    assert b'id="cache-saved"' in page.content
