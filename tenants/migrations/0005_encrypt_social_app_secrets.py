"""Encrypt the client secrets of existing social apps (organization IdPs) in place."""

from typing import Any

from django.db import migrations

from ogem_site.crypto import secret_decrypt, secret_encrypt, secret_is_encrypted
from tenants.portal.services import SOCIAL_APP_SECRET_MAX


def encrypt(apps: Any, schema_editor: Any) -> None:
    SocialApp = apps.get_model("socialaccount", "SocialApp")
    for app in SocialApp.objects.exclude(secret=""):
        if secret_is_encrypted(app.secret):
            continue
        if len(app.secret) > SOCIAL_APP_SECRET_MAX:
            # Too long to fit encrypted: left as is, `manage.py secrets_reencrypt` says so too.
            print(f"\n  social app {app.pk}: secret too long to encrypt in place, left as is")
            continue
        app.secret = secret_encrypt(app.secret)
        app.save(update_fields=["secret"])


def decrypt(apps: Any, schema_editor: Any) -> None:
    SocialApp = apps.get_model("socialaccount", "SocialApp")
    for app in SocialApp.objects.exclude(secret=""):
        if secret_is_encrypted(app.secret):
            app.secret = secret_decrypt(app.secret)
            app.save(update_fields=["secret"])


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0004_organization_upstream_networks"),
        ("socialaccount", "0006_alter_socialaccount_extra_data"),
    ]

    operations = [migrations.RunPython(encrypt, decrypt)]
