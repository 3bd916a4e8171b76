"""Secret references in configuration values: `os.environ/NAME`, `file:///path`, `secret://...`.

A value that is not a reference is returned as is. Resolution happens once per load; the resolved
secret lives only in the immutable Deployment. To add a secret manager, register a resolver for
its scheme in `SECRET_RESOLVERS` (a later release adds `secret://` backends).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

ENV_PREFIX = "os.environ/"
FILE_PREFIX = "file://"
SECRET_MANAGER_PREFIX = "secret://"


class SecretError(Exception):
    """A reference that cannot be resolved; the message names the reference, never a secret."""


def _resolve_env(reference: str, environ: Mapping[str, str]) -> str:
    name = reference.removeprefix(ENV_PREFIX)
    if not name:
        raise SecretError(f'"{reference}" names no environment variable')
    if name in os.environ:
        return os.environ[name]
    if name in environ:
        return environ[name]
    raise SecretError(f"environment variable {name} is not set")


def _resolve_file(reference: str, environ: Mapping[str, str]) -> str:
    path = reference.removeprefix(FILE_PREFIX)
    if not path.startswith("/"):
        raise SecretError(f'"{reference}" must be an absolute file URL (file:///path)')
    try:
        # Mounted secrets usually end with a newline that is not part of the secret.
        return Path(path).read_text().strip()
    except OSError as exc:
        raise SecretError(f"cannot read secret file {path}: {exc.strerror or exc}") from exc


def _resolve_secret_manager(reference: str, environ: Mapping[str, str]) -> str:
    raise SecretError(f'"{reference}": secret:// references are not supported yet')


SECRET_RESOLVERS: dict[str, Callable[[str, Mapping[str, str]], str]] = {
    ENV_PREFIX: _resolve_env,
    FILE_PREFIX: _resolve_file,
    SECRET_MANAGER_PREFIX: _resolve_secret_manager,
}


def secret_is_reference(value: str) -> bool:
    return any(value.startswith(prefix) for prefix in SECRET_RESOLVERS)


def secret_resolve(value: str, *, environ: Mapping[str, str] | None = None) -> str:
    """Resolve a reference (or return a literal unchanged). `environ` supplements os.environ.

    Raises SecretError when a reference cannot be resolved.
    """
    for prefix, resolver in SECRET_RESOLVERS.items():
        if value.startswith(prefix):
            return resolver(value, environ or {})
    return value
