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
            counts = deployment_secrets_reencrypt()
            reencrypted, encrypted, too_long = social_app_secrets_reencrypt()
        except DecryptionError as exc:
            raise CommandError(f"{exc}: keep the old key in OGEM_ENCRYPTION_KEYS") from exc
        counts["IdP client secrets"] = reencrypted
        # Every row that holds a secret is counted on one of these lines; rows without one have
        # nothing to re-encrypt.
        self.stdout.write("Re-encrypted under the first key of OGEM_ENCRYPTION_KEYS (rows):")
        for label, count in counts.items():
            self.stdout.write(f"  {label}: {count}")
        if encrypted:
            self.stdout.write(f"Encrypted {encrypted} IdP client secret(s) that were in clear.")
        if too_long:
            self.stdout.write(
                self.style.WARNING(
                    f"Left {too_long} IdP client secret(s) in clear: longer than "
                    f"{SOCIAL_APP_SECRET_MAX} characters, which the column cannot hold encrypted."
                )
            )
