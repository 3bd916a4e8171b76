"""Keys imported from LiteLLM (stored as sha256 of the secret): found by a prefix of that digest,
verified in constant time, upgraded to Ogem's peppered HMAC once, rotated like any key."""

from __future__ import annotations

import hashlib
import io
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from keys.selectors import key_authenticate
from keys.services import key_create, key_digest_upgrade, key_legacy_create, key_rotate
from ogem_site.hashing import (
    LEGACY_SHA256,
    _peppers,
    key_lookup_prefix,
    legacy_key_prefix,
    secret_prefix,
)
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db

SECRET = "sk-Zx0_9-litellm-style-key"


def _imported(secret: str = SECRET):  # type: ignore[no-untyped-def]
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return key_legacy_create(
        lookup_prefix=digest[:16],
        sha256_digest=digest,
        organization=None,
        team=TeamFactory(),
        name="imported",
    )


def test_lookup_prefixes_never_collide() -> None:
    ogem = key_create(name="ogem", team=TeamFactory()).secret
    assert legacy_key_prefix(ogem) is None
    assert key_lookup_prefix(ogem) == secret_prefix(ogem)
    assert len(key_lookup_prefix(ogem) or "") == 8
    assert legacy_key_prefix(SECRET) == hashlib.sha256(SECRET.encode()).hexdigest()[:16]
    assert legacy_key_prefix("not-a-key") is None


def test_pepper_zero_is_reserved() -> None:
    with pytest.raises(ImproperlyConfigured, match="reserved"):
        _peppers("0:" + "p" * 32, "secret-key")


def test_imported_key_authenticates_then_upgrades_once() -> None:
    key = _imported()
    assert key_authenticate(secret=SECRET) == key
    assert key_authenticate(secret=SECRET + "x") is None
    assert key_authenticate(secret="sk-" + "0" * 22) is None

    assert key_digest_upgrade(key=key, secret=SECRET) is True
    key.refresh_from_db()
    assert key.pepper_id != LEGACY_SHA256
    assert key.digest != hashlib.sha256(SECRET.encode()).hexdigest()
    assert key_digest_upgrade(key=key, secret=SECRET) is False  # nothing left to upgrade
    assert key_authenticate(secret=SECRET) == key


def test_upgrade_racing_another_worker_writes_once() -> None:
    key = _imported()
    stale = type(key).objects.get(pk=key.pk)
    assert key_digest_upgrade(key=key, secret=SECRET) is True
    assert key_digest_upgrade(key=stale, secret=SECRET) is False


def test_rotated_imported_key_keeps_its_grace_period() -> None:
    key = _imported()
    issued = key_rotate(key=key, grace_period=timedelta(hours=1))
    assert key_authenticate(secret=SECRET) == key
    assert key_authenticate(secret=issued.secret) == key


def test_unreachable_or_foreign_database_is_a_command_error() -> None:
    with pytest.raises(CommandError, match="cannot connect to the LiteLLM database"):
        call_command(
            "import_litellm",
            "--database-url",
            "postgresql://postgres@127.0.0.1:1/none",
            stdout=io.StringIO(),
        )
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        db = settings.DATABASES["default"]
        url = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
        with pytest.raises(CommandError, match="not a LiteLLM database"):
            call_command("import_litellm", "--database-url", url, stdout=io.StringIO())
