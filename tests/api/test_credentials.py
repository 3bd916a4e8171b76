"""Upstream credentials on /api/v1/models (issue 14, findings 1 and 16): an organization's
deployment never reads the server's environment, files or secret managers; it uses its own key,
stored encrypted and never returned, or a credential the operator granted to the organization."""

from __future__ import annotations

import pytest

from gateway.models import Credential, ModelDeployment
from gateway.services import credential_save
from ogem_site.crypto import secrets_decrypt
from tests.api.conftest import World

pytestmark = pytest.mark.django_db

SERVER_SECRETS = [
    "os.environ/OGEM_MASTER_KEY",
    "os.environ/DJANGO_SECRET_KEY",
    "secret://env/OGEM_MASTER_KEY",
    "file:///etc/hostname",
]
REFUSED = (
    "An organization's deployment cannot use an os.environ/, file:// or secret:// reference "
    "(those are for the operator's shared deployments): give its api_key, or a credential the "
    "operator granted to the organization."
)


def _deployment(**fields: object) -> dict[str, object]:
    return {
        "model_name": "exfil",
        "provider": "openai_compatible",
        "upstream_model": "m",
        "api_base": "https://93.184.216.34/v1",
        **fields,
    }


@pytest.mark.parametrize("reference", SERVER_SECRETS)
def test_org_admin_cannot_point_a_deployment_at_a_server_secret(
    world: World, reference: str
) -> None:
    client = world.clients["org_admin"]
    organization = world.a.organization.pk
    created = client.post(
        "/api/v1/models",
        _deployment(organization=organization, credential_ref=reference),
        format="json",
    )
    assert created.status_code == 400
    assert created.json() == {"credential_ref": [REFUSED]}
    assert not ModelDeployment.objects.filter(model_name="exfil").exists()

    existing = world.a.deployment
    patched = client.patch(
        f"/api/v1/models/{existing.pk}", {"credential_ref": reference}, format="json"
    )
    assert patched.status_code == 400
    assert patched.json() == {"credential_ref": [REFUSED]}
    existing.refresh_from_db()
    assert existing.credential_ref == ""


@pytest.mark.parametrize("reference", SERVER_SECRETS)
def test_the_operator_still_uses_server_secrets_on_shared_deployments(
    world: World, reference: str
) -> None:
    master = world.clients["master"]
    shared = master.post("/api/v1/models", _deployment(credential_ref=reference), format="json")
    assert shared.status_code == 201
    assert shared.json()["has_credential"] is True
    assert ModelDeployment.objects.get(pk=shared.json()["id"]).credential_ref == reference
    # On an organization's deployment even the operator grants a named credential instead: the
    # organization's admins could point that deployment at their own server.
    tenant = master.post(
        "/api/v1/models",
        _deployment(organization=world.a.organization.pk, credential_ref=reference),
        format="json",
    )
    assert tenant.status_code == 400
    assert tenant.json() == {"credential_ref": [REFUSED]}


def test_a_named_credential_serves_only_the_organizations_it_is_granted_to(world: World) -> None:
    credential = credential_save(credential=Credential(name="team-openai"), value="sk-granted")
    credential.organizations.add(world.a.organization)

    granted = world.clients["org_admin"].post(
        "/api/v1/models",
        _deployment(organization=world.a.organization.pk, credential="team-openai"),
        format="json",
    )
    assert granted.status_code == 201
    body = granted.json()
    assert (body["credential"], body["has_credential"]) == ("team-openai", True)
    assert "sk-granted" not in granted.content.decode()

    refused = 'No credential named "team-openai" is granted to this organization.'
    ungranted = world.clients["master"].post(
        "/api/v1/models",
        _deployment(organization=world.b.organization.pk, credential="team-openai"),
        format="json",
    )
    assert ungranted.status_code == 400
    assert ungranted.json() == {"credential": [refused]}
    moved = world.clients["master"].patch(
        f"/api/v1/models/{world.b.deployment.pk}", {"credential": "team-openai"}, format="json"
    )
    assert moved.status_code == 400
    assert moved.json() == {"credential": [refused]}
    unknown = world.clients["org_admin"].post(
        "/api/v1/models",
        _deployment(organization=world.a.organization.pk, credential="nope"),
        format="json",
    )
    assert unknown.status_code == 400
    assert unknown.json() == {"credential": ['No credential named "nope" is granted to you.']}


def test_an_own_api_key_is_stored_encrypted_and_never_returned(world: World) -> None:
    client = world.clients["org_admin"]
    created = client.post(
        "/api/v1/models",
        _deployment(
            organization=world.a.organization.pk,
            api_key="sk-tenant-plaintext-1",
            params={"aws_secret_access_key": "aws-plaintext-2", "max_tokens": 64},
        ),
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert "api_key" not in body
    assert body["has_credential"] is True
    assert body["params"] == {"aws_secret_access_key": "********", "max_tokens": 64}
    pk = body["id"]
    for response in (client.get(f"/api/v1/models/{pk}"), client.get("/api/v1/models")):
        text = response.content.decode()
        assert "sk-tenant-plaintext-1" not in text and "aws-plaintext-2" not in text

    row = ModelDeployment.objects.filter(pk=pk).values().get()
    assert "sk-tenant-plaintext-1" not in str(row) and "aws-plaintext-2" not in str(row)
    assert row["params"] == {"max_tokens": 64}
    assert secrets_decrypt(row["encrypted_secrets"]) == {
        "api_key": "sk-tenant-plaintext-1",
        "aws_secret_access_key": "aws-plaintext-2",
    }

    # Sending back what was read keeps every secret; an empty api_key removes the key.
    kept = client.patch(f"/api/v1/models/{pk}", {"params": body["params"]}, format="json")
    assert kept.status_code == 200
    stored = ModelDeployment.objects.get(pk=pk)
    assert secrets_decrypt(stored.encrypted_secrets) == {
        "api_key": "sk-tenant-plaintext-1",
        "aws_secret_access_key": "aws-plaintext-2",
    }
    removed = client.patch(f"/api/v1/models/{pk}", {"api_key": ""}, format="json")
    assert removed.json()["has_credential"] is False
    stored.refresh_from_db()
    assert secrets_decrypt(stored.encrypted_secrets) == {"aws_secret_access_key": "aws-plaintext-2"}


def test_one_source_of_key_at_a_time(world: World) -> None:
    both = world.clients["master"].post(
        "/api/v1/models",
        _deployment(api_key="sk-x", credential_ref="os.environ/OPENAI_API_KEY"),
        format="json",
    )
    assert both.status_code == 400
    assert both.json() == {
        "api_key": ["Give one of api_key, credential or credential_ref, not several."]
    }


AMBIENT = [
    (
        {"provider": "vertex_ai"},
        "An organization's vertex_ai deployment needs its own vertex_credentials or api_key (the "
        "server's Google credentials are the operator's).",
    ),
    (
        {"provider": "vertex_ai", "params": {"vertex_credentials": "/var/run/gcp/key.json"}},
        "The vertex_credentials param must be the service account's JSON, not a path on the "
        "server.",
    ),
    (
        {
            "provider": "vertex_ai",
            "params": {
                "vertex_credentials": {
                    "type": "external_account",
                    "token_url": "https://sts.googleapis.com/v1/token",
                    "credential_source": {"file": "/var/run/secrets/token"},
                }
            },
        },
        "An organization's vertex_credentials must be a service account key, not "
        "external_account (the other types read the server's files, URLs or cloud identity).",
    ),
    (
        {"provider": "bedrock"},
        "An organization's bedrock deployment needs its own aws_access_key_id and "
        "aws_secret_access_key (the server's AWS identity is the operator's).",
    ),
    (
        {
            "provider": "bedrock",
            "params": {
                "aws_access_key_id": "AKIA",
                "aws_secret_access_key": "s",
                "aws_profile_name": "prod",
            },
        },
        "The aws_profile_name param reads the server's AWS profiles (operator only).",
    ),
]


@pytest.mark.parametrize(("fields", "message"), AMBIENT)
def test_org_deployments_never_fall_back_to_the_servers_cloud_identity(
    world: World, fields: dict[str, object], message: str
) -> None:
    refused = world.clients["org_admin"].post(
        "/api/v1/models", _deployment(organization=world.a.organization.pk, **fields), format="json"
    )
    assert refused.status_code == 400
    assert refused.json() == {"params": [message]}
    # The operator's shared deployments may use the server's identity.
    shared = world.clients["master"].post("/api/v1/models", _deployment(**fields), format="json")
    assert shared.status_code == 201


def test_org_deployments_with_their_own_cloud_credentials(world: World) -> None:
    client = world.clients["org_admin"]
    for fields in (
        {"provider": "vertex_ai", "params": {"vertex_credentials": {"type": "service_account"}}},
        {"provider": "vertex_ai", "api_key": "ya29.token"},
        {
            "provider": "bedrock",
            "params": {"aws_access_key_id": "AKIA", "aws_secret_access_key": "s"},
        },
    ):
        created = client.post(
            "/api/v1/models",
            _deployment(organization=world.a.organization.pk, **fields),
            format="json",
        )
        assert created.status_code == 201, created.json()


def test_rows_written_before_are_refused_at_load(world: World) -> None:
    from gateway.config.database import database_deployments
    from gateway.config.problems import Problems

    ModelDeployment.objects.all().delete()
    vertex = ModelDeployment.objects.create(
        model_name="v",
        provider="vertex_ai",
        upstream_model="gemini",
        organization=world.a.organization,
    )
    bedrock = ModelDeployment.objects.create(
        model_name="b",
        provider="bedrock",
        upstream_model="claude",
        organization=world.a.organization,
        params={"aws_profile_name": "prod"},
    )
    ModelDeployment.objects.create(model_name="shared", provider="vertex_ai", upstream_model="g")
    problems = Problems()
    assert [d.model_name for d in database_deployments(problems=problems)] == ["shared"]
    assert [str(p) for p in problems.items] == [
        f"database:ModelDeployment#{vertex.pk}: error: an organization's vertex_ai deployment "
        "needs its own vertex_credentials or api_key (the server's Google credentials are the "
        "operator's); skipped",
        f"database:ModelDeployment#{bedrock.pk}: error: the aws_profile_name param reads the "
        "server's AWS profiles (operator only); skipped",
    ]
