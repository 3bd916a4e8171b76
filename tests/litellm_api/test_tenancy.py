"""LiteLLM's /team/*, /user/*, /organization/* routes: field names, roles, isolation."""

from __future__ import annotations

from typing import Any

from rest_framework.test import APIClient

from billing.models import Budget, BudgetScope
from tenants.models import Membership, Organization, Role, Team, User
from tests.api.conftest import World


def _post(client: APIClient, path: str, **body: Any) -> Any:
    return client.post(path, body, format="json")


def test_organization_team_and_members_as_litellm_names_them(world: World) -> None:
    client = world.clients["master"]
    org = _post(client, "/organization/new", organization_alias="Acme", max_budget=50)
    assert org.status_code == 200, org.content
    org_id = org.json()["organization_id"]
    assert (org.json()["organization_alias"], org.json()["max_budget"]) == ("Acme", 50.0)
    assert org_id in {row["organization_id"] for row in client.get("/organization/list").json()}

    user = _post(client, "/user/new", user_id="ana", user_email="ana@example.com")
    assert user.status_code == 200, user.content
    assert (user.json()["user_id"], user.json()["user_email"]) == ("ana", "ana@example.com")
    added = _post(
        client,
        "/organization/member_add",
        organization_id=org_id,
        member=[{"user_id": "ana", "role": "internal_user"}],
    )
    assert added.status_code == 200, added.content

    team = _post(
        client,
        "/team/new",
        team_alias="Search",
        organization_id=org_id,
        max_budget=20,
        budget_duration="30d",
        rpm_limit=60,
        members_with_roles=[{"user_id": "ana", "role": "admin"}],
    )
    assert team.status_code == 200, team.content
    body = team.json()
    assert (body["team_alias"], body["organization_id"], body["max_budget"]) == (
        "Search",
        org_id,
        20.0,
    )
    assert body["members_with_roles"] == [{"user_id": "ana", "role": "admin"}]
    team_pk = int(body["team_id"])
    assert Budget.objects.get(scope=BudgetScope.TEAM, team_id=team_pk).rpm_limit == 60
    assert Membership.objects.get(team_id=team_pk, user__username="ana").role == Role.TEAM_ADMIN

    info = client.get("/team/info", {"team_id": body["team_id"]}).json()
    assert info["team_info"]["team_alias"] == "Search"
    assert info["keys"] == []
    changed = _post(
        client, "/team/member_update", team_id=body["team_id"], user_id="ana", role="user"
    )
    assert changed.status_code == 200, changed.content
    assert Membership.objects.get(team_id=team_pk, user__username="ana").role == Role.MEMBER
    updated = _post(
        client, "/team/update", team_id=body["team_id"], team_alias="Find", max_budget=30
    )
    assert (updated.json()["team_alias"], updated.json()["max_budget"]) == ("Find", 30.0)
    removed = _post(client, "/team/member_delete", team_id=body["team_id"], user_id="ana")
    assert removed.json()["members_with_roles"] == []
    assert team_pk in {int(row["team_id"]) for row in client.get("/team/list").json()}
    assert _post(client, "/team/delete", team_ids=[body["team_id"]]).status_code == 200
    assert not Team.objects.filter(pk=team_pk).exists()

    assert client.get("/user/info", {"user_id": "ana"}).json()["user_info"]["user_email"] == (
        "ana@example.com"
    )
    renamed = _post(client, "/user/update", user_id="ana", user_email="ana@acme.test")
    assert renamed.json()["user_email"] == "ana@acme.test"
    assert _post(client, "/user/delete", user_ids=["ana"]).json() == {"deleted_users": ["ana"]}
    assert not User.objects.filter(username="ana").exists()
    assert Organization.objects.filter(pk=int(org_id)).exists()


def test_a_team_created_with_its_own_team_id_is_found_by_it(world: World) -> None:
    client = world.clients["master"]
    created = _post(client, "/team/new", team_id="my-team", organization_id=world.a.organization.pk)
    assert created.status_code == 200, created.content
    assert client.get("/team/info", {"team_id": "my-team"}).status_code == 200
    key = _post(client, "/key/generate", team_id="my-team")
    assert key.status_code == 200, key.content


def test_another_organization_is_not_found(world: World) -> None:
    client = world.clients["org_admin"]
    other_team = str(world.b.team.pk)
    assert client.get("/team/info", {"team_id": other_team}).status_code == 404
    assert _post(client, "/team/update", team_id=other_team, team_alias="x").status_code == 404
    assert _post(client, "/team/delete", team_ids=[other_team]).status_code == 404
    assert (
        _post(client, "/team/member_add", team_id=other_team, member={"user_id": "org-admin-a"})
    ).status_code == 404
    assert (
        _post(
            client, "/team/new", team_alias="x", organization_id=world.b.organization.pk
        ).status_code
        == 404
    )
    assert client.get("/user/info", {"user_id": "alice-b"}).status_code == 404
    teams = {row["team_id"] for row in client.get("/team/list").json()}
    assert other_team not in teams
    orgs = {row["organization_id"] for row in client.get("/organization/list").json()}
    assert orgs == {str(world.a.organization.pk)}
    assert Team.objects.get(pk=world.b.team.pk).name == "Team b"


def test_role_rules(world: World) -> None:
    # An internal user creates no team and no user; a team admin manages its team's members.
    member = world.clients["member"]
    assert (
        _post(
            member, "/team/new", team_alias="x", organization_id=world.a.organization.pk
        ).status_code
        == 403
    )
    assert _post(member, "/user/new", user_id="eve").status_code == 403
    assert _post(member, "/organization/new", organization_alias="Mine").status_code == 403
    admin = world.clients["team_admin"]
    kept = _post(
        admin, "/team/member_update", team_id=world.a.team.pk, user_id="alice-a", role="user"
    )
    assert kept.status_code == 200, kept.content
    # Another team's members are out of its reach.
    other = _post(
        admin,
        "/team/member_add",
        team_id=world.a.other_team.pk,
        member={"user_id": "alice-a", "role": "user"},
    )
    assert other.status_code in (403, 404)
    removed = _post(admin, "/team/member_delete", team_id=world.a.team.pk, user_id="alice-a")
    assert removed.status_code == 200, removed.content
    assert not Membership.objects.filter(team=world.a.team, user__username="alice-a").exists()
    # An org admin creates teams (and users) in its own organization without naming it.
    org_admin = world.clients["org_admin"]
    team = _post(org_admin, "/team/new", team_alias="Ops")
    assert team.status_code == 200, team.content
    assert team.json()["organization_id"] == str(world.a.organization.pk)
    made = _post(org_admin, "/user/new", user_id="bob", organization_id=world.a.organization.pk)
    assert made.status_code == 200, made.content


def test_team_without_organization_is_a_clear_400_for_the_master_key(world: World) -> None:
    answer = _post(world.clients["master"], "/team/new", team_alias="loose")
    assert answer.status_code == 400
    assert "organization_id" in answer.json()["error"]["message"]


def test_customer_new_registers_an_end_customer_with_its_budget(world: World) -> None:
    from tenants.models import EndCustomer

    client = world.clients["org_admin"]
    created = _post(client, "/customer/new", user_id="end-user-1", alias="Shop", max_budget=3)
    assert created.status_code == 200, created.content
    assert (created.json()["user_id"], created.json()["max_budget"]) == ("end-user-1", 3.0)
    customer = EndCustomer.objects.get(external_id="end-user-1")
    assert customer.organization_id == world.a.organization.pk
    assert Budget.objects.get(scope=BudgetScope.END_CUSTOMER, end_customer=customer).max_budget == 3
    assert _post(client, "/customer/new", user_id="end-user-1").status_code == 400
    other = _post(client, "/customer/new", user_id="x", organization_id=world.b.organization.pk)
    assert other.status_code == 404
    member = _post(world.clients["member"], "/customer/new", user_id="y")
    assert member.status_code == 400  # administers no organization
    refused = _post(
        world.clients["member"],
        "/customer/new",
        user_id="y",
        organization_id=world.a.organization.pk,
    )
    assert refused.status_code == 403
