"""Secrets of virtual keys, SCIM tokens and the master key: generation, HMAC digests, peppers.

A secret is ``sk-`` + a public prefix + a random body. Only ``HMAC(pepper, secret)`` is stored.
Peppers come from OGEM_KEY_PEPPERS ("ID:VALUE,ID:VALUE"); without it a single pepper is derived
from DJANGO_SECRET_KEY. New secrets use the highest pepper ID, so adding a pepper rotates it while
old secrets keep verifying with the one they were made under.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ogem_site.hot_settings import hot_settings

KEY_PREFIX = "sk-"
PUBLIC_PREFIX_LENGTH = 8
BODY_LENGTH = 40
_ALPHABET = string.ascii_letters + string.digits
# Pepper ID of a digest imported from LiteLLM: sha256(secret) hex, no pepper. Never configurable.
LEGACY_SHA256 = 0
LEGACY_PREFIX_LENGTH = 16


@dataclass(frozen=True, slots=True)
class NewSecret:
    secret: str
    prefix: str
    digest: str
    pepper_id: int


@lru_cache(maxsize=4)
def _peppers(raw: str, secret_key: str) -> dict[int, bytes]:
    if not raw:
        derived = hmac.new(secret_key.encode(), b"ogem-key-pepper", hashlib.sha256).digest()
        return {1: derived}
    peppers: dict[int, bytes] = {}
    for item in raw.split(","):
        pepper_id, sep, value = item.strip().partition(":")
        if not sep or not pepper_id.isdigit() or len(value) < 16:
            raise ImproperlyConfigured(
                "OGEM_KEY_PEPPERS must be 'ID:VALUE,...' with numeric IDs and values of 16+ chars"
            )
        if int(pepper_id) == LEGACY_SHA256:
            raise ImproperlyConfigured(
                "OGEM_KEY_PEPPERS: pepper ID 0 is reserved for keys imported from LiteLLM"
            )
        peppers[int(pepper_id)] = value.encode()
    return peppers


def peppers() -> dict[int, bytes]:
    return _peppers(settings.OGEM_KEY_PEPPERS, settings.SECRET_KEY)


def current_pepper_id() -> int:
    return max(peppers())


def secret_digest(*, secret: str, pepper_id: int) -> str:
    pepper = peppers().get(pepper_id)
    if pepper is None:
        raise ImproperlyConfigured(f"pepper {pepper_id} is not in OGEM_KEY_PEPPERS")
    return hmac.new(pepper, secret.encode(), hashlib.sha256).hexdigest()


def secret_matches(*, secret: str, digest: str, pepper_id: int) -> bool:
    if pepper_id == LEGACY_SHA256:
        candidate = hashlib.sha256(secret.encode()).hexdigest()
        return hmac.compare_digest(candidate, digest)
    try:
        candidate = secret_digest(secret=secret, pepper_id=pepper_id)
    except ImproperlyConfigured:
        return False
    return hmac.compare_digest(candidate, digest)


def secret_generate(*, kind_prefix: str = KEY_PREFIX) -> NewSecret:
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(PUBLIC_PREFIX_LENGTH))
    body = "".join(secrets.choice(_ALPHABET) for _ in range(BODY_LENGTH))
    secret = f"{kind_prefix}{prefix}{body}"
    pepper_id = current_pepper_id()
    return NewSecret(
        secret=secret,
        prefix=prefix,
        digest=secret_digest(secret=secret, pepper_id=pepper_id),
        pepper_id=pepper_id,
    )


def secret_prefix(secret: str, *, kind_prefix: str = KEY_PREFIX) -> str | None:
    """The public prefix of a well-formed secret, or None for anything else."""
    if not secret.startswith(kind_prefix):
        return None
    rest = secret[len(kind_prefix) :]
    if len(rest) != PUBLIC_PREFIX_LENGTH + BODY_LENGTH or not rest.isalnum():
        return None
    return rest[:PUBLIC_PREFIX_LENGTH]


def legacy_key_prefix(secret: str) -> str | None:
    """The lookup prefix of a LiteLLM-style secret (``sk-`` and no Ogem prefix), else None."""
    if not secret.startswith(KEY_PREFIX) or secret_prefix(secret) is not None:
        return None
    return legacy_prefix_of(hashlib.sha256(secret.encode()).hexdigest())


def legacy_prefix_of(sha256_hex: str) -> str:
    """The lookup prefix of a key LiteLLM stored as this SHA-256 hex digest."""
    return sha256_hex[:LEGACY_PREFIX_LENGTH]


def key_lookup_prefix(secret: str) -> str | None:
    """The prefix a virtual key is looked up by: Ogem's public prefix, or an imported key's."""
    return secret_prefix(secret) or legacy_key_prefix(secret)


def master_key_matches(secret: str) -> bool:
    master = hot_settings().OGEM_MASTER_KEY
    return bool(master) and hmac.compare_digest(secret.encode(), master.encode())
