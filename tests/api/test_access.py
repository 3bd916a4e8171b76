"""Authentication, URL shapes, the OpenAPI schema and the contract's minimum for scripts."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from keys.services import key_create
from ogem_site.hashing import secret_digest
from tenants.models import Organization, Role, ScimToken, Team
from tests.api.conftest import World, bearer_client
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_unauthenticated_is_401_with_json_body() -> None:
    response = APIClient().get("/api/v1/organizations")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"] == 'Bearer realm="ogem"'


@pytest.mark.parametrize("secret", ["sk-not-a-key", "sk-" + "a" * 48, "garbage"])
def test_wrong_keys_are_401(secret: str) -> None:
    response = bearer_client(secret).get("/api/v1/keys")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid, revoked or expired key."}


def test_key_without_a_user_cannot_manage(world: World) -> None:
    issued = key_create(name="service", team=world.a.team)
    response = bearer_client(issued.secret).get("/api/v1/teams")
    assert response.status_code == 403
    assert response.json() == {"detail": "This key belongs to no user: it serves /v1 only."}


def test_key_an_admin_issued_for_someone_cannot_manage(world: World) -> None:
    # Alice also owns another organization: a key made for her by A's team admin must not
    # let its holder act as Alice there.
    other = OrganizationFactory(slug="alice-own")
    MembershipFactory(user=world.a.alice, organization=other, role=Role.ORG_OWNER)
    response = world.clients["team_admin"].post(
        "/api/v1/keys",
        {"name": "for alice", "team": world.a.team.pk, "user": world.a.alice.pk},
        format="json",
    )
    assert response.status_code == 201
    delegated = bearer_client(response.json()["key"])
    refused = delegated.get(f"/api/v1/organizations/{other.pk}")
    assert refused.status_code == 403
    assert refused.json() == {
        "detail": "This key was issued to its user by someone else: it serves /v1 only."
    }
    # Keys Alice makes herself, or a proxy admin makes for her, act as Alice.
    by_master = world.clients["master"].post(
        "/api/v1/keys", {"name": "alice admin", "user": world.a.alice.pk}, format="json"
    )
    as_alice = bearer_client(by_master.json()["key"])
    assert as_alice.get(f"/api/v1/organizations/{other.pk}").status_code == 200
    own = as_alice.post("/api/v1/keys", {"name": "own", "organization": other.pk}, format="json")
    assert own.status_code == 201
    assert own.json()["user"] is None
    self_made = as_alice.post(
        "/api/v1/keys",
        {"name": "self", "organization": other.pk, "user": world.a.alice.pk},
        format="json",
    )
    assert bearer_client(self_made.json()["key"]).get("/api/v1/teams").status_code == 200


def test_inactive_user_key_is_refused(world: World) -> None:
    user = world.users["org_admin"]
    issued = key_create(name="k", organization=world.a.organization, user=user)
    user.is_active = False
    user.save()
    assert bearer_client(issued.secret).get("/api/v1/teams").status_code == 401


def test_session_sign_in_is_scoped_like_a_key(world: World) -> None:
    client = APIClient()
    client.force_login(world.users["org_admin"])
    response = client.get("/api/v1/organizations")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [world.a.organization.pk]
    assert client.get(f"/api/v1/teams/{world.b.team.pk}").status_code == 404


def test_session_superuser_is_proxy_admin(world: World) -> None:
    client = APIClient()
    admin = UserFactory(is_superuser=True, is_staff=True)
    admin.save(update_fields=["password"])
    client.force_login(admin)
    response = client.get("/api/v1/organizations")
    assert {row["id"] for row in response.json()["results"]} == {
        world.a.organization.pk,
        world.b.organization.pk,
    }


@pytest.mark.parametrize(
    "path", ["/api/v1/organizations", "/api/v1/organizations/", "/api/v1/spend", "/api/v1/spend/"]
)
def test_paths_work_with_and_without_trailing_slash(world: World, path: str) -> None:
    assert world.clients["master"].get(path).status_code == 200


def test_detail_and_action_paths_without_slash(world: World) -> None:
    pk = world.a.organization.pk
    client = world.clients["master"]
    assert client.get(f"/api/v1/organizations/{pk}").status_code == 200
    assert client.get(f"/api/v1/organizations/{pk}/").status_code == 200
    assert client.post(f"/api/v1/organizations/{pk}/scim-tokens", format="json").status_code == 201


def test_not_found_ids_and_bad_input_never_500(world: World) -> None:
    client = world.clients["master"]
    assert client.get("/api/v1/teams/999999").status_code == 404
    assert client.get("/api/v1/teams/abc").status_code == 404
    duplicate = client.post(
        "/api/v1/organizations", {"name": "x", "slug": world.a.organization.slug}, format="json"
    )
    assert duplicate.status_code == 400
    assert "slug" in duplicate.json()
    team_dup = client.post(
        "/api/v1/teams",
        {"organization": world.a.organization.pk, "name": "x", "slug": world.a.team.slug},
        format="json",
    )
    assert team_dup.status_code == 400
    membership_dup = client.post(
        "/api/v1/memberships",
        {"user": world.a.alice.pk, "team": world.a.team.pk, "role": "member"},
        format="json",
    )
    assert membership_dup.status_code == 400
    org_role_on_team = client.post(
        "/api/v1/memberships",
        {"user": world.a.alice.pk, "team": world.a.other_team.pk, "role": "org_admin"},
        format="json",
    )
    assert org_role_on_team.status_code == 400
    raw_secret = client.post(
        "/api/v1/models",
        {"model_name": "m", "provider": "openai", "upstream_model": "m", "credential_ref": "sk-x"},
        format="json",
    )
    assert raw_secret.status_code == 400
    assert "credential_ref" in raw_secret.json()
    not_json = client.post("/api/v1/teams", "{", content_type="application/json")
    assert not_json.status_code == 400


def test_schema_and_docs(world: World) -> None:
    schema = world.clients["master"].get("/api/v1/schema/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for expected in (
        "/api/v1/organizations",
        "/api/v1/organizations/{id}/scim-tokens",
        "/api/v1/teams",
        "/api/v1/users",
        "/api/v1/memberships",
        "/api/v1/keys",
        "/api/v1/keys/{id}/revoke",
        "/api/v1/keys/{id}/rotate",
        "/api/v1/budgets",
        "/api/v1/models",
        "/api/v1/spend",
    ):
        assert any(path.rstrip("/") == expected for path in paths), expected
    assert all(path.startswith("/api/v1/") for path in paths)
    docs = world.clients["master"].get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()


def test_model_credentials_are_never_returned(world: World) -> None:
    client = world.clients["master"]
    created = client.post(
        "/api/v1/models",
        {
            "model_name": "gpt",
            "provider": "openai",
            "upstream_model": "gpt-4o",
            "credential_ref": "os.environ/OPENAI_API_KEY",
            "params": {"azure_ad_token": "sk-upstream-secret", "temperature": 0.5},
        },
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert "credential_ref" not in body
    assert body["has_credential"] is True
    assert body["params"] == {"azure_ad_token": "********", "temperature": 0.5}
    listed = client.get("/api/v1/models").content.decode()
    assert "sk-upstream-secret" not in listed and "OPENAI_API_KEY" not in listed
    # Writing back what was read keeps the hidden value.
    client.patch(
        f"/api/v1/models/{body['id']}",
        {"params": {"azure_ad_token": "********", "temperature": 1.0}},
        format="json",
    )
    from gateway.models import ModelDeployment
    from ogem_site.crypto import secrets_decrypt

    stored = ModelDeployment.objects.get(pk=body["id"])
    # Secret params are kept apart, encrypted (finding 16 of issue 14).
    assert stored.params == {"temperature": 1.0}
    assert "sk-upstream-secret" not in str(stored.encrypted_secrets)
    assert secrets_decrypt(stored.encrypted_secrets) == {"azure_ad_token": "sk-upstream-secret"}


def test_model_deployments_are_deleted_within_the_callers_scope(world: World) -> None:
    from gateway.models import ModelDeployment
    from tests.factories import ModelDeploymentFactory

    shared = ModelDeploymentFactory(model_name="shared", organization=None)
    org_admin = world.clients["org_admin"]
    assert org_admin.delete(f"/api/v1/models/{world.b.deployment.pk}").status_code == 404
    assert org_admin.delete(f"/api/v1/models/{shared.pk}").status_code == 403
    assert org_admin.delete(f"/api/v1/models/{world.a.deployment.pk}").status_code == 204
    assert world.clients["master"].delete(f"/api/v1/models/{shared.pk}").status_code == 204
    remaining = set(ModelDeployment.objects.values_list("pk", flat=True))
    assert remaining == {world.b.deployment.pk}


def test_scim_token_is_shown_once_and_stored_as_digest(world: World) -> None:
    pk = world.a.organization.pk
    response = world.clients["org_admin"].post(
        f"/api/v1/organizations/{pk}/scim-tokens", {"name": "okta"}, format="json"
    )
    assert response.status_code == 201
    token = response.json()["token"]
    assert token.startswith("scim-")
    stored = ScimToken.objects.get(pk=response.json()["id"])
    assert stored.organization_id == pk
    assert stored.name == "okta"
    assert stored.digest == secret_digest(secret=token, pepper_id=stored.pepper_id)
    assert token[len("scim-") :].startswith(stored.prefix)
    listed = world.clients["org_admin"].get(f"/api/v1/organizations/{pk}/scim-tokens")
    assert [row["id"] for row in listed.json()] == [stored.pk]
    assert token not in listed.content.decode()


@pytest.mark.parametrize("role", ["team_admin", "member", "viewer"])
def test_scim_tokens_need_org_admin(world: World, role: str) -> None:
    pk = world.a.organization.pk
    assert world.clients[role].post(f"/api/v1/organizations/{pk}/scim-tokens").status_code == 403
    assert not ScimToken.objects.exists()


def test_scim_tokens_of_other_tenant_are_not_found(world: World) -> None:
    pk = world.b.organization.pk
    client = world.clients["org_admin"]
    assert client.post(f"/api/v1/organizations/{pk}/scim-tokens").status_code == 404
    assert client.get(f"/api/v1/organizations/{pk}/scim-tokens").status_code == 404
    assert not ScimToken.objects.exists()


def test_contract_minimum_with_the_master_key(master_key: str, db: None) -> None:
    client = bearer_client(master_key)
    org = client.post("/api/v1/organizations", {"name": "Acme", "slug": "acme"}, format="json")
    assert org.status_code == 201
    team = client.post(
        "/api/v1/teams", {"organization": org.json()["id"], "name": "ML"}, format="json"
    )
    assert team.status_code == 201
    assert Team.objects.get(pk=team.json()["id"]).organization == Organization.objects.get(
        slug="acme"
    )
    key = client.post("/api/v1/keys", {"name": "only a name"}, format="json")
    assert key.status_code == 201
    assert key.json()["key"].startswith("sk-")
    revoke = client.post(f"/api/v1/keys/{key.json()['id']}/revoke")
    assert revoke.status_code == 200
    scim = client.post(f"/api/v1/organizations/{org.json()['id']}/scim-tokens")
    assert scim.status_code == 201
    assert scim.json()["token"].startswith("scim-")


def test_changes_through_the_api_are_audited_with_the_caller(world: World) -> None:
    from tenants.models import AuditEvent

    pk = world.a.organization.pk
    response = world.clients["org_admin"].post(
        f"/api/v1/organizations/{pk}/scim-tokens",
        {"name": "okta"},
        format="json",
        HTTP_X_REQUEST_ID="req-audit-1",
    )
    assert response.status_code == 201
    event = AuditEvent.objects.get(action="scim_token.create")
    assert event.actor == f"user:{world.users['org_admin'].pk}"
    assert (event.surface, event.request_id, event.organization_id) == ("api", "req-audit-1", pk)
    assert response.json()["token"] not in str(event.after)
