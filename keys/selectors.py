from __future__ import annotations

from django.db.models import Q
from django.utils import timezone

from keys.hashing import secret_matches, secret_prefix
from keys.models import VirtualKey


def key_authenticate(*, secret: str) -> VirtualKey | None:
    """The active key for a secret (current or in its rotation grace period), else None."""
    prefix = secret_prefix(secret)
    if prefix is None:
        return None
    key = (
        VirtualKey.objects.select_related("user", "team", "organization")
        .filter(Q(prefix=prefix) | Q(previous_prefix=prefix))
        .first()
    )
    if key is None:
        return None
    now = timezone.now()
    if key.prefix == prefix:
        valid = secret_matches(secret=secret, digest=key.digest, pepper_id=key.pepper_id)
    else:
        valid = (
            key.previous_expires_at is not None
            and key.previous_expires_at > now
            and key.previous_pepper_id is not None
            and secret_matches(
                secret=secret, digest=key.previous_digest, pepper_id=key.previous_pepper_id
            )
        )
    if not valid or not key_is_active(key=key, now=now):
        return None
    return key


def key_is_active(*, key: VirtualKey, now=None) -> bool:  # type: ignore[no-untyped-def]
    now = now or timezone.now()
    if key.revoked_at is not None:
        return False
    return key.expires_at is None or key.expires_at > now
