"""HashiCorp Vault, KV version 2: `secret://vault/<mount>/<path>#<field>`.

`GET {VAULT_ADDR}/v1/<mount>/data/<path>` with `X-Vault-Token`: `VAULT_TOKEN`, or a token from
AppRole (`VAULT_ROLE_ID` and `VAULT_SECRET_ID`, at `VAULT_APPROLE_MOUNT`, default `approle`).
`VAULT_NAMESPACE` is sent when set (Vault Enterprise / HCP).
"""

from __future__ import annotations

import os
from typing import Any

from gateway.secrets.http import http_failure, http_json
from gateway.secrets.reference import SecretReference
from gateway.secrets.tokens import token_forget, token_get

WHAT = "Vault"


def _address(ref: SecretReference) -> str:
    address = os.environ.get("VAULT_ADDR", "").rstrip("/")
    if not address:
        raise ref.fail("VAULT_ADDR is not set")
    return address


def _headers(token: str = "") -> dict[str, str]:
    headers = {"X-Vault-Token": token} if token else {}
    if namespace := os.environ.get("VAULT_NAMESPACE"):
        headers["X-Vault-Namespace"] = namespace
    return headers


def _approle_key(address: str) -> str:
    return f"vault:{address}:{os.environ.get('VAULT_ROLE_ID', '')}"


def _token(ref: SecretReference, address: str) -> str:
    if token := os.environ.get("VAULT_TOKEN"):
        return token
    role_id, secret_id = os.environ.get("VAULT_ROLE_ID"), os.environ.get("VAULT_SECRET_ID")
    if not (role_id and secret_id):
        raise ref.fail("set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID for AppRole")

    def login() -> tuple[str, float]:
        mount = os.environ.get("VAULT_APPROLE_MOUNT", "approle").strip("/")
        status, body = http_json(
            ref,
            WHAT,
            "POST",
            f"{address}/v1/auth/{mount}/login",
            json={"role_id": role_id, "secret_id": secret_id},
            headers=_headers(),
        )
        if status != 200 or not isinstance(body, dict):
            raise http_failure(ref, "Vault AppRole login", status)
        auth = body.get("auth") or {}
        return str(auth["client_token"]), float(auth.get("lease_duration") or 300)

    return token_get(_approle_key(address), login)


def vault_fetch(ref: SecretReference) -> dict[str, Any]:
    """The key/value pairs of the latest version of the secret."""
    address = _address(ref)
    mount, _, path = ref.path.partition("/")
    url = f"{address}/v1/{mount}/data/{path}"
    status, body = http_json(ref, WHAT, "GET", url, headers=_headers(_token(ref, address)))
    if status == 403 and not os.environ.get("VAULT_TOKEN"):
        # An AppRole token revoked or expired early: log in again, once.
        token_forget(_approle_key(address))
        status, body = http_json(ref, WHAT, "GET", url, headers=_headers(_token(ref, address)))
    if status != 200 or not isinstance(body, dict):
        raise http_failure(ref, WHAT, status)
    data = (body.get("data") or {}).get("data")
    if not isinstance(data, dict):
        raise ref.fail("Vault returned no key/value data (is the mount KV version 2?)")
    return data
