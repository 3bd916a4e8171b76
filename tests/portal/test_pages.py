"""The portal's read pages show the caller's own usage, teams, budgets and models."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from billing.models import BudgetDuration, BudgetScope, RequestLog
from billing.services import budget_upsert
from gateway import registry as deployment_registry
from gateway.registry import registry_install
from keys.services import key_create
from providers.base import Deployment
from tenants.models import Role, User
from tests.factories import MembershipFactory, OrganizationFactory, TeamFactory, UserFactory

pytestmark = pytest.mark.django_db


def _client(user: User) -> Client:
    client = Client()
    client.force_login(User.objects.get(pk=user.pk))
    return client


def _log(n: int, *, key, model: str, cost: str, tokens: int, days_ago: int = 0) -> None:  # type: ignore[no-untyped-def]
    RequestLog.objects.create(
        request_id=f"req-{n}",
        created_at=timezone.now() - timedelta(days=days_ago),
        organization_id=key.organization_id,
        team_id=key.team_id,
        key_id=key.pk,
        user_id=key.user_id,
        endpoint="chat/completions",
        model=model,
        status_code=200,
        prompt_tokens=tokens // 2,
        completion_tokens=tokens - tokens // 2,
        total_tokens=tokens,
        cost=Decimal(cost),
    )


def test_usage_shows_my_spend_by_day_model_and_key_and_not_others() -> None:
    team = TeamFactory()
    me = MembershipFactory(organization=team.organization, team=team, role=Role.MEMBER).user
    other = MembershipFactory(organization=team.organization, team=team, role=Role.MEMBER).user
    mine = key_create(name="notebook", team=team, user=me).key
    theirs = key_create(name="theirs", team=team, user=other).key
    _log(1, key=mine, model="mock-chat", cost="0.0100", tokens=30)
    _log(2, key=mine, model="gpt-x", cost="0.0250", tokens=70, days_ago=2)
    _log(3, key=theirs, model="mock-chat", cost="5", tokens=1000)

    page = _client(me).get("/usage/")
    assert page.status_code == 200
    usage = page.context["usage"]
    assert usage["total"]["requests"] == 2
    assert usage["total"]["spend"] == "0.03500000"
    assert usage["total"]["total_tokens"] == 100
    assert [(r["model"], r["requests"]) for r in usage["by_model"]] == [
        ("gpt-x", 1),
        ("mock-chat", 1),
    ]
    assert [(r["name"], r["total_tokens"]) for r in usage["by_key"]] == [("notebook", 100)]
    chart = json.loads(
        page.content.split(b'id="usage-data" type="application/json">')[1].split(b"<")[0]
    )
    assert len(chart["labels"]) == 30
    assert chart["labels"][-1] == timezone.now().date().isoformat()
    assert chart["spend"][-1] == "0.01000000"
    assert chart["spend"][-3] == "0.02500000"
    assert chart["spend"][-2] == "0.00000000"
    assert sum(chart["tokens"]) == 100
    assert b"vendor/chart.umd.min.js" in page.content


def test_usage_shows_my_cache_hit_rate_and_saved_cost() -> None:
    team = TeamFactory()
    me = MembershipFactory(organization=team.organization, team=team, role=Role.MEMBER).user
    mine = key_create(name="notebook", team=team, user=me).key
    for n, result in enumerate(("miss", "hit", "semantic-hit", "hit")):
        RequestLog.objects.create(
            request_id=f"cached-{n}",
            created_at=timezone.now(),
            organization_id=mine.organization_id,
            team_id=mine.team_id,
            key_id=mine.pk,
            endpoint="chat/completions",
            model="mock-chat",
            status_code=200,
            cache_hit=result != "miss",
            cache_result=result,
            cache_saved_cost=Decimal("0.0125") if result != "miss" else None,
            cache_saved_tokens=40 if result != "miss" else None,
        )
    page = _client(me).get("/usage/")
    cache = page.context["usage"]["cache"]
    assert (cache["total"]["hits"], cache["total"]["hit_rate"]) == (3, 0.75)
    assert cache["results"][0]["semantic_hits"] == 1
    assert b"Of them semantic" in page.content
    assert cache["total"]["saved_cost"] == "0.03750000"
    assert b"75%" in page.content
    assert b"$0.0375" in page.content
    assert b"Response cache by model" in page.content


def test_teams_page_shows_my_role_and_the_team_budget() -> None:
    team = TeamFactory(name="Research")
    me = MembershipFactory(organization=team.organization, team=team, role=Role.TEAM_ADMIN).user
    TeamFactory(organization=team.organization, name="Not mine")
    budget = budget_upsert(
        scope=BudgetScope.TEAM,
        target=team,
        max_budget=Decimal("40"),
        duration=BudgetDuration.MONTHLY,
    )
    budget.spend = Decimal("10")
    budget.save(update_fields=["spend"])

    page = _client(me).get("/teams/")
    rows = page.context["teams"]
    assert [(r["team"].name, r["role"], r["used_percent"]) for r in rows] == [
        ("Research", Role.TEAM_ADMIN, 25)
    ]
    assert b"$10.00 of $40.00" in page.content
    assert b'<meter min="0" max="100"' in page.content


def test_models_page_lists_shared_models_and_my_organizations_only(install_deployments) -> None:  # type: ignore[no-untyped-def]
    org = OrganizationFactory()
    me = MembershipFactory(organization=org, role=Role.MEMBER).user
    other_org = OrganizationFactory()
    install_deployments(
        Deployment(id="t:1", model_name="shared", provider="mock", upstream_model="shared"),
        Deployment(
            id="t:2",
            model_name="ours",
            provider="openai",
            upstream_model="gpt",
            organization_id=org.pk,
        ),
        Deployment(
            id="t:3",
            model_name="theirs",
            provider="mock",
            upstream_model="x",
            organization_id=other_org.pk,
        ),
    )
    page = _client(me).get("/models/")
    names = [m["name"] for m in page.context["models"]]
    assert {"ours", "shared", "mock-chat"} <= set(names)
    assert "theirs" not in names
    assert names == sorted(names)
    assert next(m for m in page.context["models"] if m["name"] == "ours")["providers"] == ["openai"]


def test_playground_offers_chat_models_only_and_preselects_mock_chat() -> None:
    me = MembershipFactory(role=Role.MEMBER).user
    page = _client(me).get("/playground/")
    assert page.status_code == 200
    # The embedded default's models: only mock-chat serves chat, and it is chosen.
    assert [m["name"] for m in page.context["models"]] == ["mock-chat"]
    assert b'<option value="mock-chat" selected>mock-chat</option>' in page.content
    for other in (b"mock-embed", b"mock-image", b"mock-tts", b"mock-whisper", b"mock-rerank"):
        assert other not in page.content
    assert b'<label for="pg-key">API key</label>' in page.content
    assert b"portal/playground.js" in page.content


def _served_only(*deployments: Deployment) -> None:
    registry_install(list(deployments), source="test")


@pytest.fixture
def served() -> Iterator[Callable[..., None]]:
    """Install exactly these deployments (no built-in mock ones) for one test, then restore."""
    previous = deployment_registry._current
    yield _served_only
    deployment_registry._current = previous


def _deployment(name: str, upstream: str, **params: object) -> Deployment:
    return Deployment(
        id=f"test:{name}",
        model_name=name,
        provider="openai",
        upstream_model=upstream,
        api_key="sk-upstream",
        params=dict(params),
    )


def test_playground_without_mock_chat_preselects_the_first_chat_model(served) -> None:  # type: ignore[no-untyped-def]
    served(
        _deployment("a-embedder", "text-embedding-3-small"),
        _deployment("b-vision", "gpt-4o-mini"),
        _deployment("c-drawer", "gpt-image-1", model_info={"mode": "image_generation"}),
        _deployment("d-chat", "gpt-4o"),
        _deployment("e-whisper", "whisper-1"),
    )
    me = MembershipFactory(role=Role.MEMBER).user
    page = _client(me).get("/playground/")
    assert [m["name"] for m in page.context["models"]] == ["b-vision", "d-chat"]
    assert page.context["selected"] == "b-vision"
    assert b'<option value="b-vision" selected>b-vision</option>' in page.content
    assert b'<option value="d-chat">d-chat</option>' in page.content


def test_new_key_example_uses_a_model_this_install_serves(served) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory()
    me = MembershipFactory(organization=team.organization, team=team, role=Role.MEMBER).user
    client = _client(me)

    def created() -> bytes:
        token = client.get("/keys/").context["form_token"]
        page = client.post("/keys/", {"form_token": token, "name": "laptop", "team": team.pk})
        assert page.status_code == 201
        return page.content

    assert b'-d \'{"model": "mock-chat", "messages"' in created()
    served(_deployment("embedder", "text-embedding-3-small"), _deployment("house-gpt", "gpt-4o"))
    content = created()
    assert b'-d \'{"model": "house-gpt", "messages"' in content
    assert b"mock-chat" not in content
    served(_deployment("embedder", "text-embedding-3-small"))  # no chat model: no example
    assert b"/v1/chat/completions" not in created()


def test_home_summarises_usage_keys_and_teams() -> None:
    team = TeamFactory(name="Apps")
    me = MembershipFactory(organization=team.organization, team=team, role=Role.MEMBER).user
    key = key_create(name="svc", team=team, user=me).key
    _log(1, key=key, model="mock-chat", cost="1.5", tokens=10)
    page = _client(me).get("/")
    assert page.status_code == 200
    assert page.context["usage"]["total"]["requests"] == 1
    assert [k.name for k, _ in page.context["keys"]] == ["svc"]
    assert b"$1.50</p>" in page.content
    assert b"Apps" in page.content


def test_home_headline_shows_small_spend_in_plain_decimals() -> None:
    """A first request costs a few millionths of a dollar: the headline and the chart data say
    so ($0.00002706), where they said $0.0000 beside 2.706e-05."""
    team = TeamFactory(name="Apps")
    me = MembershipFactory(organization=team.organization, team=team, role=Role.MEMBER).user
    key = key_create(name="svc", team=team, user=me).key
    _log(1, key=key, model="mock-chat", cost="0.00002706", tokens=10)
    page = _client(me).get("/")
    assert b"$0.00002706</p>" in page.content
    assert b"$0.0000<" not in page.content
    chart = page.content.split(b'id="usage-data" type="application/json">')[1].split(b"<")[0]
    assert json.loads(chart)["spend"][-1] == "0.00002706"
    assert b"e-05" not in chart

    usage = _client(me).get("/usage/")
    assert b"<td>svc</td>" in usage.content
    assert b"$0.00002706</td>" in usage.content


def test_usage_names_master_key_traffic() -> None:
    """Requests without a virtual key (the master key) are shown as such, not as "key None"."""
    me = UserFactory(is_superuser=True, is_staff=True)  # a proxy admin sees every request
    RequestLog.objects.create(
        request_id="master-1",
        created_at=timezone.now(),
        endpoint="chat/completions",
        model="mock-chat",
        status_code=200,
        cost=Decimal("0.00000006"),
    )
    page = _client(me).get("/usage/")
    assert [(r["name"], r["spend"]) for r in page.context["usage"]["by_key"]] == [
        ("master key", "0.00000006")
    ]
    assert b"key None" not in page.content


def test_static_assets_are_served_without_a_cdn() -> None:
    from django.contrib.staticfiles import finders

    chart = finders.find("vendor/chart.umd.min.js")
    assert chart is not None
    with open(chart, encoding="utf-8") as handle:
        assert "Released under the MIT License" in handle.read(300)
    assert finders.find("vendor/chart.js.LICENSE.md") is not None
    for name in ("portal.css", "charts.js", "keys.js", "transcript.js", "playground.js"):
        assert finders.find(f"portal/{name}") is not None
