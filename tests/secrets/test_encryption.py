"""Secrets at rest (issue 14, finding 16): encrypted under OGEM_ENCRYPTION_KEYS, rotated by
putting a new key first and running `manage.py secrets_reencrypt`, migrated from plaintext."""

from __future__ import annotations

from io import StringIO

import pytest
from allauth.socialaccount.models import SocialApp
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from gateway.config.database import database_deployments
from gateway.config.problems import Problems
from gateway.models import Credential
from gateway.services import credential_save, deployment_create
from ogem_site.crypto import DecryptionError, secret_decrypt, secrets_decrypt
from tenants.portal.services import SOCIAL_APP_SECRET_MAX, social_app_secret_set
from tests.factories import OrganizationFactory

OLD = "old-key-0123456789abcdefghijklmnopqrstuvwxyz"
NEW = "new-key-0123456789abcdefghijklmnopqrstuvwxyz"


def _reencrypted(*, deployments: int, guardrails: int, credentials: int, clients: int) -> str:
    """What `secrets_reencrypt` prints first: the rows it re-encrypted, by kind."""
    return (
        "Re-encrypted under the first key of OGEM_ENCRYPTION_KEYS (rows):\n"
        f"  model deployments: {deployments}\n"
        f"  guardrail definitions: {guardrails}\n"
        f"  credentials: {credentials}\n"
        f"  IdP client secrets: {clients}\n"
    )


@pytest.mark.django_db
def test_rotation_keeps_every_secret_readable(settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_ENCRYPTION_KEYS = [OLD]
    organization = OrganizationFactory()
    credential = credential_save(credential=Credential(name="vendor"), value="sk-vendor")
    credential.organizations.add(organization)
    own = deployment_create(
        data={"model_name": "own", "provider": "mock", "upstream_model": "m"},
        params={"azure_ad_token": "tok"},
        api_key="sk-own",
    )
    granted = deployment_create(
        data={
            "model_name": "granted",
            "provider": "mock",
            "upstream_model": "m",
            "organization": organization,
            "credential": credential,
        }
    )
    app = SocialApp(provider="openid_connect", provider_id="acme", name="Acme", client_id="c")
    social_app_secret_set(app=app, secret="oidc-secret")
    app.save()
    before = (own.encrypted_secrets, credential.encrypted_value, app.secret)

    def loaded() -> dict[str, tuple[str | None, dict[str, object]]]:
        problems = Problems()
        deployments = database_deployments(problems=problems)
        assert problems.items == []
        return {d.model_name: (d.api_key, d.params) for d in deployments}

    expected = {"own": ("sk-own", {"azure_ad_token": "tok"}), "granted": ("sk-vendor", {})}
    assert loaded() == expected

    # Step 1: a new key first; what the old one encrypted is still read.
    settings.OGEM_ENCRYPTION_KEYS = [NEW, OLD]
    assert loaded() == expected
    # Step 2: re-encrypt under the new key.
    out = StringIO()
    call_command("secrets_reencrypt", stdout=out)
    assert out.getvalue() == _reencrypted(deployments=1, guardrails=0, credentials=1, clients=1)
    own.refresh_from_db()
    credential.refresh_from_db()
    app.refresh_from_db()
    after = (own.encrypted_secrets, credential.encrypted_value, app.secret)
    assert all(new != old for new, old in zip(after, before, strict=True))
    # Step 3: drop the old key.
    settings.OGEM_ENCRYPTION_KEYS = [NEW]
    assert loaded() == expected
    assert secret_decrypt(app.secret) == "oidc-secret"

    # The old key alone reads none of it any more; a row it cannot read is skipped, reported.
    settings.OGEM_ENCRYPTION_KEYS = [OLD]
    with pytest.raises(DecryptionError):
        secrets_decrypt(own.encrypted_secrets)
    problems = Problems()
    assert database_deployments(problems=problems) == []
    assert [str(p) for p in problems.items] == [
        f"database:ModelDeployment#{own.pk}: error: encrypted_secrets: no key in "
        "OGEM_ENCRYPTION_KEYS decrypts this value; skipped",
        f"database:ModelDeployment#{granted.pk}: error: no key in OGEM_ENCRYPTION_KEYS decrypts "
        "this value; skipped",
    ]


@pytest.mark.django_db
def test_reencrypt_reports_client_secrets_it_encrypts_or_leaves_in_clear(settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_ENCRYPTION_KEYS = [NEW]
    too_long = "x" * (SOCIAL_APP_SECRET_MAX + 1)
    for provider_id, secret in (("clear", "in-clear"), ("long", too_long)):
        SocialApp.objects.create(
            provider="openid_connect", provider_id=provider_id, name=provider_id, secret=secret
        )
    out = StringIO()
    call_command("secrets_reencrypt", stdout=out)
    assert out.getvalue() == _reencrypted(deployments=0, guardrails=0, credentials=0, clients=0) + (
        "Encrypted 1 IdP client secret(s) that were in clear.\n"
        f"Left 1 IdP client secret(s) in clear: longer than {SOCIAL_APP_SECRET_MAX} characters, "
        "which the column cannot hold encrypted.\n"
    )
    assert secret_decrypt(SocialApp.objects.get(provider_id="clear").secret) == "in-clear"
    assert SocialApp.objects.get(provider_id="long").secret == too_long


@pytest.mark.django_db(transaction=True)
def test_migrations_encrypt_plaintext_written_before() -> None:
    executor = MigrationExecutor(connection)
    before = [("gateway", "0003_credentials"), ("tenants", "0004_organization_upstream_networks")]
    executor.migrate(before)
    old_apps = executor.loader.project_state(before).apps
    row = old_apps.get_model("gateway", "ModelDeployment").objects.create(
        model_name="m",
        provider="openai",
        upstream_model="m",
        params={"api_key": "sk-plain", "extra_headers": {"x-token": "h"}, "temperature": 0},
    )
    app = old_apps.get_model("socialaccount", "SocialApp").objects.create(
        provider="openid_connect", provider_id="acme", name="Acme", client_id="c", secret="plain"
    )

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    from gateway.models import ModelDeployment

    migrated = ModelDeployment.objects.get(pk=row.pk)
    assert migrated.params == {"temperature": 0}
    assert "sk-plain" not in str(migrated.encrypted_secrets)
    assert secrets_decrypt(migrated.encrypted_secrets) == {
        "api_key": "sk-plain",
        "extra_headers": {"x-token": "h"},
    }
    stored = SocialApp.objects.get(pk=app.pk).secret
    assert stored != "plain" and secret_decrypt(stored) == "plain"
