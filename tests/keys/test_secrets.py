from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from keys.selectors import key_authenticate
from keys.services import key_create, key_revoke, key_rotate
from ogem_site.hashing import secret_prefix
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db


def _all_text_in_database() -> str:
    """Every text value of every Ogem table, to prove no secret is stored in clear."""
    chunks: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            if not table.startswith(("keys_", "tenants_", "billing_", "gateway_")):
                continue
            # Table names come from introspection, not from input.
            cursor.execute(f'SELECT * FROM "{table}"')
            for row in cursor.fetchall():
                chunks.extend(str(value) for value in row)
    return "\n".join(chunks)


def test_key_secret_is_never_stored():
    issued = key_create(name="ci", team=TeamFactory())
    stored = _all_text_in_database()
    assert issued.secret.startswith("sk-")
    assert issued.secret not in stored
    # The body (everything after the public prefix) appears nowhere either.
    assert issued.secret[11:] not in stored
    assert issued.key.digest != issued.secret
    assert len(issued.key.digest) == 64


def test_key_authenticates_only_with_exact_secret():
    issued = key_create(name="ci", team=TeamFactory())
    assert key_authenticate(secret=issued.secret) == issued.key
    tampered = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    assert key_authenticate(secret=tampered) is None
    assert key_authenticate(secret="sk-short") is None
    assert key_authenticate(secret="") is None


def test_revoked_and_expired_keys_are_refused():
    team = TeamFactory()
    revoked = key_create(name="revoked", team=team)
    key_revoke(key=revoked.key)
    expired = key_create(name="old", team=team, expires_at=timezone.now() - timedelta(seconds=1))
    assert key_authenticate(secret=revoked.secret) is None
    assert key_authenticate(secret=expired.secret) is None


def test_rotation_with_grace_keeps_old_secret_until_it_ends():
    issued = key_create(name="rotating", team=TeamFactory())
    rotated = key_rotate(key=issued.key, grace_period=timedelta(minutes=5))
    assert rotated.secret != issued.secret
    assert key_authenticate(secret=rotated.secret) == issued.key
    assert key_authenticate(secret=issued.secret) == issued.key
    rotated.key.previous_expires_at = timezone.now() - timedelta(seconds=1)
    rotated.key.save()
    assert key_authenticate(secret=issued.secret) is None
    assert key_authenticate(secret=rotated.secret) == issued.key


def test_rotation_without_grace_invalidates_old_secret_at_once():
    issued = key_create(name="rotating", team=TeamFactory())
    rotated = key_rotate(key=issued.key)
    assert key_authenticate(secret=issued.secret) is None
    assert key_authenticate(secret=rotated.secret) == issued.key


def test_comparison_is_constant_time(monkeypatch):
    import hmac as hmac_module

    calls: list[tuple[str, str]] = []
    real = hmac_module.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("ogem_site.hashing.hmac.compare_digest", spy)
    issued = key_create(name="ci", team=TeamFactory())
    assert key_authenticate(secret=issued.secret) == issued.key
    assert calls and calls[-1][1] == issued.key.digest


def test_prefix_parsing():
    assert secret_prefix("sk-" + "a" * 48) == "a" * 8
    assert secret_prefix("sk-" + "a" * 47) is None
    assert secret_prefix("pk-" + "a" * 48) is None
    assert secret_prefix("sk-" + "a" * 40 + "-" * 8) is None
