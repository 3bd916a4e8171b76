"""The `secret://` grammar: `secret://<manager>/<path>[#<field>]`."""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "secret://"
MANAGERS = ("env", "file", "aws", "gcp", "vault", "azure")


class SecretManagerError(Exception):
    """A secret that cannot be read; the message names the reference, never a secret."""


@dataclass(frozen=True, slots=True)
class SecretReference:
    raw: str  # the reference as written, used in messages and as the cache key
    manager: str
    path: str
    field: str = ""  # a key inside a JSON or key/value secret; "" for the whole value

    def fail(self, reason: str) -> SecretManagerError:
        return SecretManagerError(f'"{self.raw}": {reason}')


def _path_rule(manager: str, path: str) -> str:
    """Why `path` is not a valid path for `manager` ("" when it is)."""
    parts = path.split("/")
    if manager == "vault" and (len(parts) < 2 or not all(parts)):
        return "a Vault reference is secret://vault/<mount>/<path>#<field>"
    if manager == "gcp":
        ok = len(parts) in (4, 6) and parts[0] == "projects" and parts[2] == "secrets"
        if not ok or (len(parts) == 6 and parts[4] != "versions") or not all(parts):
            return (
                "a Google reference is secret://gcp/projects/<project>/secrets/<name>"
                "[/versions/<version>]"
            )
    if manager == "azure" and (len(parts) not in (2, 3) or not all(parts)):
        return "an Azure reference is secret://azure/<vault>/<name>[/<version>]"
    if manager == "file" and not path.startswith("/"):
        return "a file reference is secret://file//<absolute path>"
    return ""


def secret_reference_parse(reference: str) -> SecretReference:
    """Parse a reference; raises SecretManagerError on a malformed one."""
    if not reference.startswith(PREFIX):
        raise SecretManagerError(f'"{reference}" is not a secret:// reference')
    body, _, field = reference.removeprefix(PREFIX).partition("#")
    manager, _, path = body.partition("/")
    if manager not in MANAGERS:
        known = ", ".join(MANAGERS)
        raise SecretManagerError(f'"{reference}": unknown secret manager "{manager}" ({known})')
    if not path:
        raise SecretManagerError(f'"{reference}" names no secret')
    if reference.endswith("#"):
        raise SecretManagerError(f'"{reference}" has an empty #field')
    problem = _path_rule(manager, path)
    if problem:
        raise SecretManagerError(f'"{reference}": {problem}')
    return SecretReference(raw=reference, manager=manager, path=path, field=field)
