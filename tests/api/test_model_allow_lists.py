"""Organization and team model allow-lists (issue 16, item 11) and names checked at write time
(item 10): `models` bounds every key of a team or organization, on the management API, in admin
and on /v1; names nothing serves, providers without an adapter and allow-lists reaching beyond
their team's are 400s naming the value; organizations and teams are found by slug too."""

from __future__ import annotations

import time

import openai
import pytest
from django.test import Client

from tenants.models import Organization, Team
from tenants.services import team_update
from tests.api.conftest import World
from tests.factories import ModelDeploymentFactory, TeamFactory


def test_team_models_bound_the_keys_created_in_it(world: World) -> None:
    master = world.clients["master"]
    team = world.a.team
    # model-a is org A's deployment; mock-chat and mock-embed are the built-in shared models.
    response = master.patch(
        f"/api/v1/teams/{team.pk}", {"models": ["mock-chat", "model-a"]}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["models"] == ["mock-chat", "model-a"]

    outside = master.post(
        "/api/v1/keys", {"name": "k", "team": team.pk, "models": ["mock-embed"]}, format="json"
    )
    assert outside.status_code == 400
    assert outside.json() == {"models": ["The team's models do not include `mock-embed`."]}
    inside = master.post(
        "/api/v1/keys", {"name": "k", "team": team.pk, "models": ["mock-chat"]}, format="json"
    )
    assert inside.status_code == 201
    # A member too: no key of the team reaches beyond its list.
    member = world.clients["member"].post(
        "/api/v1/keys", {"name": "m", "team": team.pk, "models": ["mock-embed"]}, format="json"
    )
    assert member.status_code == 400
    # And on update.
    changed = master.patch(
        f"/api/v1/keys/{inside.json()['id']}", {"models": ["mock-embed"]}, format="json"
    )
    assert changed.status_code == 400
    assert "mock-embed" in changed.json()["models"][0]


def test_organization_models_bound_teams_and_keys(world: World) -> None:
    master = world.clients["master"]
    organization = world.a.organization
    response = master.patch(
        f"/api/v1/organizations/{organization.pk}", {"models": ["mock-chat"]}, format="json"
    )
    assert (response.status_code, response.json()["models"]) == (200, ["mock-chat"])
    team = master.patch(
        f"/api/v1/teams/{world.a.team.pk}", {"models": ["mock-embed"]}, format="json"
    )
    assert team.status_code == 400
    assert team.json() == {"models": ["The organization's models do not include `mock-embed`."]}
    key = master.post(
        "/api/v1/keys",
        {"name": "k", "organization": organization.pk, "models": ["mock-embed"]},
        format="json",
    )
    assert key.status_code == 400
    assert key.json() == {"models": ["The organization's models do not include `mock-embed`."]}


def test_only_the_level_above_sets_a_bound(world: World) -> None:
    # Team admins do not widen their own team's list; org admins do not widen their org's.
    team = world.clients["team_admin"].patch(
        f"/api/v1/teams/{world.a.team.pk}", {"models": ["mock-chat"]}, format="json"
    )
    assert team.status_code == 403
    assert (
        world.clients["org_admin"]
        .patch(f"/api/v1/teams/{world.a.team.pk}", {"models": ["mock-chat"]}, format="json")
        .status_code
        == 200
    )
    organization = world.clients["org_admin"].patch(
        f"/api/v1/organizations/{world.a.organization.pk}", {"models": ["mock-chat"]}, format="json"
    )
    assert organization.status_code == 403
    assert Organization.objects.get(pk=world.a.organization.pk).allowed_models == []


def test_access_groups_count_as_the_models_they_hold(world: World) -> None:
    ModelDeploymentFactory(model_name="grouped-1", access_groups=["beta"])
    ModelDeploymentFactory(model_name="grouped-2", access_groups=["beta"])
    master = world.clients["master"]
    assert (
        master.patch(
            f"/api/v1/teams/{world.a.team.pk}", {"models": ["beta"]}, format="json"
        ).status_code
        == 200
    )
    for models in (["grouped-1"], ["beta"], ["grouped-1", "grouped-2"]):
        response = master.post(
            "/api/v1/keys", {"name": "k", "team": world.a.team.pk, "models": models}, format="json"
        )
        assert (models, response.status_code) == (models, 201)
    response = master.post(
        "/api/v1/keys", {"name": "k", "team": world.a.team.pk, "models": ["model-a"]}, format="json"
    )
    assert response.status_code == 400


def test_model_names_nothing_serves_are_refused(world: World) -> None:
    master = world.clients["master"]
    response = master.post(
        "/api/v1/keys",
        {"name": "k", "team": world.a.team.pk, "models": ["mock-chta", "mock-embed"]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "models": ["No model or access group is named `mock-chta`. Did you mean `mock-chat`?"]
    }
    # Organization B's deployment is not served to organization A's keys.
    foreign = master.post(
        "/api/v1/keys", {"name": "k", "team": world.a.team.pk, "models": ["model-b"]}, format="json"
    )
    assert foreign.status_code == 400
    team = master.patch(f"/api/v1/teams/{world.a.team.pk}", {"models": ["nope"]}, format="json")
    assert team.status_code == 400
    assert team.json() == {"models": ["No model or access group is named `nope`."]}
    # A deployment just added counts at once, before the registry's hot reload sees it.
    ModelDeploymentFactory(model_name="fresh-model")
    fresh = master.post(
        "/api/v1/keys",
        {"name": "k", "team": world.a.team.pk, "models": ["fresh-model"]},
        format="json",
    )
    assert fresh.status_code == 201


def test_unknown_provider_is_refused(world: World) -> None:
    response = world.clients["master"].post(
        "/api/v1/models",
        {"model_name": "x", "provider": "opneai", "upstream_model": "gpt-4o"},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "provider": ["No provider is named `opneai`. Did you mean `openai`?"]
    }


def test_organizations_and_teams_are_found_by_slug(world: World) -> None:
    master = world.clients["master"]
    team = master.post("/api/v1/teams", {"organization": "org-a", "name": "By slug"}, format="json")
    assert team.status_code == 201
    assert team.json()["organization"] == world.a.organization.pk
    for reference in ("team-a", "org-a/team-a"):
        key = master.post("/api/v1/keys", {"name": "k", "team": reference}, format="json")
        assert (reference, key.status_code) == (reference, 201)
        assert key.json()["team"] == world.a.team.pk
    # The same team slug in two organizations: the bare slug is ambiguous, the path is not.
    TeamFactory(organization=world.b.organization, slug="team-a")
    ambiguous = master.post("/api/v1/keys", {"name": "k", "team": "team-a"}, format="json")
    assert ambiguous.status_code == 400
    assert ambiguous.json() == {
        "team": [
            "More than one team has the slug 'team-a': give its id, or organization-slug/team-slug."
        ]
    }
    assert (
        master.post(
            "/api/v1/keys", {"name": "k", "team": "org-b/team-a"}, format="json"
        ).status_code
        == 201
    )
    # Outside the caller's scope a slug is not found, like an id.
    assert (
        world.clients["org_admin"]
        .post("/api/v1/keys", {"name": "k", "team": "org-b/team-b"}, format="json")
        .status_code
        == 404
    )
    assert (
        master.post("/api/v1/keys", {"name": "k", "team": "nobody"}, format="json").status_code
        == 404
    )


@pytest.mark.django_db
def test_admin_checks_and_labels_models(admin_client: Client) -> None:
    team = TeamFactory()
    page = admin_client.get(f"/admin/tenants/team/{team.pk}/change/")
    assert page.status_code == 200
    assert '<label for="id_allowed_models">Models:</label>' in page.content.decode()
    data = {
        "organization": team.organization.pk,
        "name": team.name,
        "slug": team.slug,
        "metadata": "{}",
        "external_id": "",
        "allowed_models": '["mock-chta"]',
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "keys-TOTAL_FORMS": "0",
        "keys-INITIAL_FORMS": "0",
    }
    refused = admin_client.post(f"/admin/tenants/team/{team.pk}/change/", data)
    assert refused.status_code == 200
    assert "No model or access group is named `mock-chta`" in refused.content.decode()
    key_page = admin_client.get("/admin/keys/virtualkey/add/")
    html = key_page.content.decode()
    assert '<label for="id_allowed_models">Models:</label>' in html
    assert '<label for="id_budget_duration">Budget duration:</label>' in html
    budget_page = admin_client.get("/admin/billing/budget/add/").content.decode()
    assert '<label for="id_duration">Budget duration:</label>' in budget_page
    organization_page = admin_client.get(
        f"/admin/tenants/organization/{team.organization.pk}/change/"
    ).content.decode()
    assert '<label for="id_allowed_models">Models:</label>' in organization_page


@pytest.mark.live
def test_a_team_list_changed_after_key_creation_reaches_v1(live_ogem, make_key) -> None:  # type: ignore[no-untyped-def]
    team = TeamFactory()
    secret = make_key(team=team)
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=0)
    messages = [{"role": "user", "content": "Hi"}]
    client.chat.completions.create(model="mock-chat", messages=messages)
    team_update(team=Team.objects.get(pk=team.pk), allowed_models=["mock-embed"])
    deadline = time.monotonic() + 1.0
    while True:
        try:
            client.chat.completions.create(model="mock-chat", messages=messages)
        except openai.PermissionDeniedError as exc:
            assert exc.body["code"] == "model_not_allowed"  # type: ignore[index]
            assert exc.body["message"] == (  # type: ignore[index]
                "This key's team is not allowed to use the model `mock-chat`."
            )
            break
        assert time.monotonic() < deadline, "the team's new list not applied after one second"
        time.sleep(0.02)
    # The models the team allows still work; /v1/models lists only them.
    client.embeddings.create(model="mock-embed", input="hi")
    assert [model.id for model in client.models.list()] == ["mock-embed"]
