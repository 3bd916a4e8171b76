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
from collections.abc import Callable, Mapping
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
from ogem_site.caching import LocalCache

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


# reference -> its value; past its TTL the value serves on while a refresh fails.
_cache: LocalCache[str, str] = LocalCache(maxsize=4096, ttl=DEFAULT_TTL)


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
    entry = _cache.peek(reference)
    if entry is not None and entry[1]:
        return entry[0]
    ref = secret_reference_parse(reference)
    try:
        value = _select(ref, FETCHERS[ref.manager](ref))
    except SecretManagerError as exc:
        if entry is None:
            raise
        logger.warning("secret refresh failed, the cached value stays in use: %s", exc)
        _cache.set(reference, entry[0], ttl=min(_ttl(), RETRY_AFTER_FAILURE))
        return entry[0]
    _cache.set(reference, value, ttl=_ttl())
    return value


def secret_refresh_due() -> bool:
    """Whether a cached secret outlived its TTL, so configurations using it should be re-read."""
    return bool(_cache.expired())


def secret_cache_prune() -> None:
    """Forget values still expired after a re-read: no configuration references them any more."""
    _cache.prune()


def secret_cache_clear() -> None:
    """Forget every cached secret, token and client (tests; a changed manager environment)."""
    _cache.clear()
    token_clear()
    aws_clients_clear()
    gcp_credentials_clear()
