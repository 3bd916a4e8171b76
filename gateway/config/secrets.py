"""Secret references in configuration values: `os.environ/NAME`, `file:///path`, `secret://...`.

A value that is not a reference is returned as is. Resolution happens once per load; the resolved
secret lives only in the immutable Deployment. To add a secret manager, register a resolver for
its scheme in `SECRET_RESOLVERS`; `secret://` references go to the managers in `gateway.secrets`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from gateway.secrets import SecretManagerError, secret_manager_resolve, secret_reference_parse

ENV_PREFIX = "os.environ/"
FILE_PREFIX = "file://"
SECRET_MANAGER_PREFIX = "secret://"


class SecretError(Exception):
    """A reference that cannot be resolved; the message names the reference, never a secret."""


def _resolve_env(reference: str, environ: Mapping[str, str]) -> str:
    name = reference.removeprefix(ENV_PREFIX)
    if not name:
        raise SecretError(f'"{reference}" names no environment variable')
    # A LiteLLM file's `environment_variables` win over the process environment, as LiteLLM
    # sets them into its environment at start (over what was there).
    if name in environ:
        return environ[name]
    if name in os.environ:
        return os.environ[name]
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
    try:
        return secret_manager_resolve(reference)
    except SecretManagerError as exc:
        raise SecretError(str(exc)) from exc


SECRET_RESOLVERS: dict[str, Callable[[str, Mapping[str, str]], str]] = {
    ENV_PREFIX: _resolve_env,
    FILE_PREFIX: _resolve_file,
    SECRET_MANAGER_PREFIX: _resolve_secret_manager,
}


def secret_is_reference(value: str) -> bool:
    return any(value.startswith(prefix) for prefix in SECRET_RESOLVERS)


def secret_check(value: str) -> None:
    """Check a reference's syntax without reading the secret; raises SecretError."""
    if value == ENV_PREFIX:
        raise SecretError(f'"{value}" names no environment variable')
    if value.startswith(FILE_PREFIX) and not value.startswith(FILE_PREFIX + "/"):
        raise SecretError(f'"{value}" must be an absolute file URL (file:///path)')
    if value.startswith(SECRET_MANAGER_PREFIX):
        try:
            secret_reference_parse(value)
        except SecretManagerError as exc:
            raise SecretError(str(exc)) from exc


def secret_resolve(value: str, *, environ: Mapping[str, str] | None = None) -> str:
    """Resolve a reference (or return a literal unchanged). `environ` supplements os.environ.

    Raises SecretError when a reference cannot be resolved.
    """
    for prefix, resolver in SECRET_RESOLVERS.items():
        if value.startswith(prefix):
            return resolver(value, environ or {})
    return value
