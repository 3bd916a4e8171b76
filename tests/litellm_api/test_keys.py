"""LiteLLM's /key/* routes: its field names, its role rules and Ogem's tenant isolation."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.test import APIClient

from keys.models import VirtualKey
from tests.api.conftest import World


def _generate(client: APIClient, **body: Any) -> Any:
    return client.post("/key/generate", body, format="json")


def test_generate_answers_litellm_fields_and_the_secret_once(world: World) -> None:
    created = _generate(
        world.clients["master"],
        key_alias="app",
        team_id=str(world.a.team.pk),
        user_id="alice-a",
        models=[],
        max_budget=10,
        budget_duration="30d",
        tpm_limit=1000,
        rpm_limit=10,
        metadata={"env": "test"},
        duration="1h",
    )
    assert created.status_code == 200, created.content
    body = created.json()
    assert body["key"].startswith("sk-")
    key = VirtualKey.objects.get(pk=int(body["token"]))
    assert (key.name, key.team_id, key.user.username) == ("app", world.a.team.pk, "alice-a")
    assert (key.tpm_limit, key.rpm_limit, key.metadata) == (1000, 10, {"env": "test"})
    assert key.expires_at is not None
    assert body["max_budget"] == 10.0
    assert body["budget_duration"] == "30d"
    assert body["spend"] == 0.0
    assert body["team_id"] == str(world.a.team.pk)
    assert body["organization_id"] == str(world.a.organization.pk)
    assert body["user_id"] == "alice-a"
    assert body["key_alias"] == "app"

    info = world.clients["master"].get("/key/info", {"key": body["key"]})
    assert info.status_code == 200
    assert info.json()["key"] == body["key"]
    assert info.json()["info"]["token"] == body["token"]
    assert "key" not in info.json()["info"]  # the secret is shown once
    by_token = world.clients["master"].get("/key/info", {"key": body["token"]})
    assert by_token.json()["info"]["max_budget"] == 10.0


def test_generate_with_guardrails_puts_them_in_the_keys_metadata(world: World) -> None:
    created = _generate(
        world.clients["master"],
        team_id=str(world.a.team.pk),
        metadata={"env": "test"},
        guardrails=["pii-mask"],
    )
    assert created.status_code == 200, created.content
    key = VirtualKey.objects.get(pk=int(created.json()["token"]))
    assert key.metadata == {"env": "test", "guardrails": ["pii-mask"]}


def test_no_key_is_litellm_auth_error(world: World) -> None:
    answer = APIClient().get("/key/list")
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "auth_error"
    assert answer.json()["error"]["code"] == "401"
    client = APIClient()
    client.credentials(HTTP_X_LITELLM_API_KEY=settings.OGEM_MASTER_KEY)
    assert client.get("/key/list").status_code == 200
    client.credentials(HTTP_X_LITELLM_API_KEY=f"Bearer {settings.OGEM_MASTER_KEY}")
    assert client.get("/key/list").status_code == 200


def test_list_pages_and_full_objects(world: World) -> None:
    client = world.clients["master"]
    listed = client.get("/key/list", {"team_id": world.a.team.pk, "size": 1}).json()
    assert listed["keys"] == [str(world.a.team_key.pk)]
    assert (listed["total_count"], listed["current_page"], listed["total_pages"]) == (1, 1, 1)
    full = client.get("/key/list", {"team_id": world.a.team.pk, "return_full_object": "true"})
    assert full.json()["keys"][0]["key_alias"] == "ci-a"


def test_update_then_delete_by_alias_and_by_secret(world: World) -> None:
    client = world.clients["master"]
    secret = _generate(client, key_alias="temp", team_id=world.a.team.pk).json()["key"]
    updated = client.post(
        "/key/update", {"key": secret, "max_budget": 5, "rpm_limit": 3}, format="json"
    )
    assert updated.status_code == 200, updated.content
    assert (updated.json()["max_budget"], updated.json()["rpm_limit"]) == (5.0, 3)
    deleted = client.post("/key/delete", {"keys": [secret]}, format="json")
    assert deleted.json() == {"deleted_keys": [secret]}
    assert client.get("/key/info", {"key": secret}).status_code == 404
    _generate(client, key_alias="by-alias", team_id=world.a.team.pk)
    assert (
        client.post("/key/delete", {"key_aliases": ["by-alias"]}, format="json").status_code == 200
    )
    assert not VirtualKey.objects.filter(name="by-alias").exists()


def test_another_organizations_key_is_not_found(world: World) -> None:
    other = str(world.b.team_key.pk)
    client = world.clients["org_admin"]
    assert client.get("/key/info", {"key": other}).status_code == 404
    assert (
        client.post("/key/update", {"key": other, "rpm_limit": 1}, format="json").status_code == 404
    )
    assert client.post("/key/delete", {"keys": [other]}, format="json").status_code == 404
    assert other not in client.get("/key/list").json()["keys"]
    assert _generate(client, team_id=world.b.team.pk).status_code == 404
    assert VirtualKey.objects.filter(pk=world.b.team_key.pk).exists()


def test_an_internal_user_manages_its_own_keys_only(world: World) -> None:
    member = world.clients["member"]
    own = _generate(member, key_alias="mine", team_id=world.a.team.pk)
    assert own.status_code == 200, own.content
    assert own.json()["user_id"] == "member-a"  # a member's key is theirs
    # Routing metadata and other owners are the team admins' to give; the team's key too.
    refused = _generate(member, team_id=world.a.team.pk, metadata={"priority": "high"})
    assert refused.status_code == 403, refused.content
    assert refused.json()["error"]["type"] == "auth_error"
    assert _generate(member, team_id=world.a.team.pk, user_id="alice-a").status_code in (403, 404)
    team_key = str(world.a.team_key.pk)
    assert member.post("/key/delete", {"keys": [team_key]}, format="json").status_code in (403, 404)
    assert (
        member.post("/key/delete", {"keys": [own.json()["key"]]}, format="json").status_code == 200
    )
    # A team admin manages its team's keys.
    admin = world.clients["team_admin"]
    changed = admin.post("/key/update", {"key": team_key, "rpm_limit": 7}, format="json")
    assert changed.status_code == 200, changed.content


def test_key_info_without_a_key_is_the_callers_own(world: World) -> None:
    info = world.clients["member"].get("/key/info")
    assert info.status_code == 200
    assert info.json()["info"]["key_alias"] == "member-personal"


def test_bad_input_is_a_litellm_400(world: World) -> None:
    client = world.clients["master"]
    bad = _generate(client, team_id=world.a.team.pk, duration="soon")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "400"
    assert _generate(client, team_id=world.a.team.pk, rpm_limit="many").status_code == 400
    assert client.post("/key/generate", [1], format="json").status_code == 400


def test_a_viewer_writes_no_key(world: World) -> None:
    viewer = world.clients["viewer"]
    refused = _generate(viewer, team_id=world.a.team.pk)
    assert refused.status_code in (403, 404)
    assert refused.json()["error"]["code"] == str(refused.status_code)
    assert viewer.post(
        "/key/update", {"key": str(world.a.team_key.pk), "rpm_limit": 1}, format="json"
    ).status_code in (403, 404)
    assert VirtualKey.objects.get(pk=world.a.team_key.pk).rpm_limit is None
