"""Secrets at rest: Fernet encryption under the keys in `OGEM_ENCRYPTION_KEYS`.

The first key encrypts, every key decrypts, so a key is rotated by putting a new one first,
running `manage.py secrets_reencrypt`, then dropping the old one (docs/deploy.md). A key is any
string of 32+ characters; its SHA-256 is the Fernet key. Used by tenants and gateway alike, so it
imports neither.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

# Every Fernet token starts with its version byte 0x80, base64url-encoded.
TOKEN_PREFIX = "gAAAAA"


class DecryptionError(Exception):
    """A stored value no configured key can read (wrong or dropped key, or not encrypted)."""


@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet(
        [Fernet(base64.urlsafe_b64encode(hashlib.sha256(key.encode()).digest())) for key in keys]
    )


def _current() -> MultiFernet:
    return _cipher(tuple(settings.OGEM_ENCRYPTION_KEYS))


def secret_encrypt(value: str) -> str:
    return _current().encrypt(value.encode()).decode()


def secret_decrypt(token: str) -> str:
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("no key in OGEM_ENCRYPTION_KEYS decrypts this value") from exc


def secret_reencrypt(token: str) -> str:
    """The same secret under the first key (what rotation does to every stored value)."""
    try:
        return _current().rotate(token.encode()).decode()
    except InvalidToken as exc:
        raise DecryptionError("no key in OGEM_ENCRYPTION_KEYS decrypts this value") from exc


def secret_is_encrypted(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX)


def secret_value_encrypt(value: Any) -> str:
    """Any JSON value (a key, a headers object...) as one token."""
    return secret_encrypt(json.dumps(value))


def secrets_encrypt(values: Mapping[str, Any]) -> dict[str, str]:
    """Each value encrypted on its own: the names stay readable, so showing which secrets are
    set never needs a key."""
    return {name: secret_value_encrypt(value) for name, value in values.items()}


def secrets_decrypt(tokens: Mapping[str, str]) -> dict[str, Any]:
    return {name: json.loads(secret_decrypt(token)) for name, token in tokens.items()}
