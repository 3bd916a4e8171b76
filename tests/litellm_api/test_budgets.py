"""LiteLLM's /budget/* routes: budget table rows as Ogem's budget templates (proxy admins only),
whose `budget_id` gives an organization, end customer or key its limits."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rest_framework.test import APIClient

from billing.models import Budget, BudgetScope, BudgetTemplate
from keys.models import VirtualKey
from tests.api.conftest import World


def _post(client: APIClient, path: str, **body: Any) -> Any:
    return client.post(path, body, format="json")


def test_budget_new_info_list_update_delete(world: World) -> None:
    master = world.clients["master"]
    created = _post(
        master,
        "/budget/new",
        budget_id="starter",
        max_budget=5,
        soft_budget=4,
        budget_duration="24h",
        rpm_limit=60,
        tpm_limit=10000,
        max_parallel_requests=3,
    )
    assert created.status_code == 200, created.content
    body = created.json()
    assert {k: body[k] for k in ("budget_id", "max_budget", "soft_budget", "budget_duration")} == {
        "budget_id": "starter",
        "max_budget": 5.0,
        "soft_budget": 4.0,
        "budget_duration": "1d",
    }
    assert (body["rpm_limit"], body["tpm_limit"], body["max_parallel_requests"]) == (60, 10000, 3)
    assert _post(master, "/budget/new", budget_id="starter").status_code == 400
    generated = _post(master, "/budget/new", max_budget=1).json()["budget_id"]
    assert generated.startswith("budget-")

    info = _post(master, "/budget/info", budgets=["starter"])
    assert [row["budget_id"] for row in info.json()] == ["starter"]
    assert _post(master, "/budget/info", budgets=["nope"]).status_code == 404
    listed = master.get("/budget/list")
    assert [row["budget_id"] for row in listed.json()] == sorted(["starter", generated])

    updated = _post(master, "/budget/update", budget_id="starter", max_budget=7.5)
    assert updated.json()["max_budget"] == 7.5
    assert updated.json()["rpm_limit"] == 60
    assert _post(master, "/budget/update", budget_id="x", max_budget=1).status_code == 404
    bad = _post(master, "/budget/update", budget_id="starter", max_budget=-1)
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "bad_request_error"
    assert _post(master, "/budget/new", budget_duration="2h").status_code == 400

    deleted = _post(master, "/budget/delete", id="starter")
    assert deleted.json()["budget_id"] == "starter"
    assert not BudgetTemplate.objects.filter(budget_id="starter").exists()


def test_budgets_are_for_proxy_admins_only(world: World) -> None:
    BudgetTemplate.objects.create(budget_id="shared", max_budget=Decimal("5"))
    for role in ("org_admin", "member"):
        client = world.clients[role]
        assert _post(client, "/budget/new", budget_id="mine").status_code == 403
        assert client.get("/budget/list").status_code == 403
        assert _post(client, "/budget/delete", id="shared").status_code == 403
    assert BudgetTemplate.objects.filter(budget_id="shared").exists()


def test_a_budget_id_gives_customers_organizations_and_keys_its_limits(world: World) -> None:
    master = world.clients["master"]
    _post(master, "/budget/new", budget_id="tier-1", max_budget=3, budget_duration="30d")
    customer = _post(
        world.clients["org_admin"], "/customer/new", user_id="shop-1", budget_id="tier-1"
    )
    assert customer.status_code == 200, customer.content
    assert (customer.json()["max_budget"], customer.json()["budget_duration"]) == (3.0, "30d")
    budget = Budget.objects.get(scope=BudgetScope.END_CUSTOMER, end_customer__external_id="shop-1")
    assert (budget.max_budget, budget.duration) == (Decimal("3"), "30d")

    organization = _post(
        master, "/organization/new", organization_alias="tiered", budget_id="tier-1"
    )
    assert organization.status_code == 200, organization.content
    assert organization.json()["max_budget"] == 3.0

    # A field given with the id wins over the template's.
    key = _post(
        master,
        "/key/generate",
        team_id=str(world.a.team.pk),
        budget_id="tier-1",
        max_budget=1,
    )
    assert key.status_code == 200, key.content
    assert (key.json()["max_budget"], key.json()["budget_duration"]) == (1.0, "30d")
    assert VirtualKey.objects.get(pk=int(key.json()["token"])).name == "key"
    missing = _post(master, "/key/generate", team_id=str(world.a.team.pk), budget_id="nope")
    assert missing.status_code == 404
