"""Provider credentials from secret managers: `secret://<manager>/<path>[#<field>]`.

Managers: `env` (an environment variable), `file` (a mounted file), `aws` (Secrets Manager),
`gcp` (Secret Manager), `vault` (HashiCorp Vault KV v2) and `azure` (Key Vault); one module each.
A value read is cached in this process for `OGEM_SECRET_TTL` seconds (default 300). After that the
next resolution reads it again, and the configuration watcher re-resolves its references (see
`secret_refresh_due`), so a rotated secret reaches the deployments without a restart. When a
manager cannot be reached on refresh, the last value keeps serving and the read is retried soon.
Secret values are never logged nor put in an error message.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from gateway.secrets.aws import aws_clients_clear, aws_fetch
from gateway.secrets.azure import azure_fetch
from gateway.secrets.gcp import gcp_credentials_clear, gcp_fetch
from gateway.secrets.reference import (
    SecretManagerError,
    SecretReference,
    secret_reference_parse,
)
from gateway.secrets.tokens import token_clear
from gateway.secrets.vault import vault_fetch

__all__ = [
    "SecretManagerError",
    "SecretReference",
    "secret_cache_clear",
    "secret_cache_prune",
    "secret_manager_resolve",
    "secret_reference_parse",
    "secret_refresh_due",
]

logger = logging.getLogger("ogem.secrets")

DEFAULT_TTL = 300.0
RETRY_AFTER_FAILURE = 30.0  # seconds before retrying a manager that failed to refresh a value


def _env_fetch(ref: SecretReference) -> str:
    if ref.path not in os.environ:
        raise ref.fail(f"environment variable {ref.path} is not set")
    return os.environ[ref.path]


def _file_fetch(ref: SecretReference) -> str:
    try:
        return Path(ref.path).read_text().strip()  # mounted secrets end with a stray newline
    except OSError as exc:
        raise ref.fail(f"cannot read secret file {ref.path}: {exc.strerror or exc}") from exc


FETCHERS: dict[str, Callable[[SecretReference], str | Mapping[str, Any]]] = {
    "env": _env_fetch,
    "file": _file_fetch,
    "aws": aws_fetch,
    "gcp": gcp_fetch,
    "vault": vault_fetch,
    "azure": azure_fetch,
}


@dataclass(slots=True)
class _Entry:
    value: str
    expires_at: float


_lock = threading.Lock()
_cache: dict[str, _Entry] = {}


def _ttl() -> float:
    return float(getattr(settings, "OGEM_SECRET_TTL", DEFAULT_TTL))


def _select(ref: SecretReference, raw: str | Mapping[str, Any]) -> str:
    """The referenced field of a JSON or key/value secret, or the whole value."""
    data: Any = raw
    if isinstance(raw, str):
        if not ref.field:
            return raw
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ref.fail(f'the secret is not a JSON object, so it has no field "{ref.field}"')
    if ref.field:
        if ref.field not in data:
            raise ref.fail(f'the secret has no field "{ref.field}"')
        value = data[ref.field]
    elif len(data) == 1:
        (value,) = data.values()
    else:
        raise ref.fail("the secret holds several fields; name one with #field")
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ref.fail(f'field "{ref.field}" is not a string')
    return str(value)


def secret_manager_resolve(reference: str) -> str:
    """The secret a `secret://` reference names, from the cache while its TTL lasts.

    Raises SecretManagerError when it cannot be read and no earlier value is cached.
    """
    now = time.monotonic()
    with _lock:
        entry = _cache.get(reference)
    if entry is not None and now < entry.expires_at:
        return entry.value
    ref = secret_reference_parse(reference)
    try:
        value = _select(ref, FETCHERS[ref.manager](ref))
    except SecretManagerError as exc:
        if entry is None:
            raise
        logger.warning("secret refresh failed, the cached value stays in use: %s", exc)
        with _lock:
            entry.expires_at = now + min(_ttl(), RETRY_AFTER_FAILURE)
        return entry.value
    with _lock:
        _cache[reference] = _Entry(value=value, expires_at=now + _ttl())
    return value


def secret_refresh_due() -> bool:
    """Whether a cached secret outlived its TTL, so configurations using it should be re-read."""
    now = time.monotonic()
    with _lock:
        return any(entry.expires_at <= now for entry in _cache.values())


def secret_cache_prune() -> None:
    """Forget values still expired after a re-read: no configuration references them any more."""
    now = time.monotonic()
    with _lock:
        for reference in [ref for ref, entry in _cache.items() if entry.expires_at <= now]:
            del _cache[reference]


def secret_cache_clear() -> None:
    """Forget every cached secret, token and client (tests; a changed manager environment)."""
    with _lock:
        _cache.clear()
    token_clear()
    aws_clients_clear()
    gcp_credentials_clear()
