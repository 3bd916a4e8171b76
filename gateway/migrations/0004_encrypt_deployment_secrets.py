"""Move the secret params of existing deployments (api_key, tokens, ...) into encrypted_secrets."""

from typing import Any

from django.db import migrations

from gateway.config.credentials import param_is_secret
from ogem_site.crypto import secrets_decrypt, secrets_encrypt


def encrypt(apps: Any, schema_editor: Any) -> None:
    ModelDeployment = apps.get_model("gateway", "ModelDeployment")
    for row in ModelDeployment.objects.exclude(params={}):
        params = dict(row.params or {})
        secret = {name: params.pop(name) for name in list(params) if param_is_secret(name)}
        if secret:
            row.params = params
            row.encrypted_secrets = secrets_encrypt(secret)
            row.save(update_fields=["params", "encrypted_secrets"])


def decrypt(apps: Any, schema_editor: Any) -> None:
    ModelDeployment = apps.get_model("gateway", "ModelDeployment")
    for row in ModelDeployment.objects.exclude(encrypted_secrets={}):
        row.params = {**(row.params or {}), **secrets_decrypt(row.encrypted_secrets)}
        row.encrypted_secrets = {}
        row.save(update_fields=["params", "encrypted_secrets"])


class Migration(migrations.Migration):
    dependencies = [("gateway", "0003_credentials")]

    operations = [migrations.RunPython(encrypt, decrypt)]
