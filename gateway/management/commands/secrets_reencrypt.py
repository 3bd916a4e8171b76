"""`python manage.py secrets_reencrypt`: re-encrypt every secret stored in the database under the
first key of OGEM_ENCRYPTION_KEYS, the middle step of a key rotation (docs/deploy.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from gateway.services import deployment_secrets_reencrypt
from ogem_site.crypto import DecryptionError
from tenants.portal.services import SOCIAL_APP_SECRET_MAX, social_app_secrets_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt deployment secrets, named credentials and IdP client secrets under the first "
        "key of OGEM_ENCRYPTION_KEYS; afterwards the other keys can be dropped."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            deployments = deployment_secrets_reencrypt()
            apps, too_long = social_app_secrets_reencrypt()
        except DecryptionError as exc:
            raise CommandError(f"{exc}: keep the old key in OGEM_ENCRYPTION_KEYS") from exc
        self.stdout.write(
            f"Re-encrypted {deployments} deployment and credential secret(s) and {apps} client "
            "secret(s)."
        )
        if too_long:
            self.stdout.write(
                self.style.WARNING(
                    f"{too_long} client secret(s) longer than {SOCIAL_APP_SECRET_MAX} characters "
                    "stay unencrypted: the column cannot hold them encrypted."
                )
            )
