"""Azure Key Vault: `secret://azure/<vault>/<name>[/<version>][#<field>]`.

`GET https://<vault>.vault.azure.net/secrets/<name>[/<version>]?api-version=7.4` with an Entra ID
token from the client-credentials grant (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`,
`AZURE_CLIENT_SECRET`, at `AZURE_AUTHORITY_HOST`, default https://login.microsoftonline.com).
`OGEM_AZURE_KEYVAULT_URL` overrides the vault URL; `{vault}` in it stands for the vault name.
"""

from __future__ import annotations

import os

from gateway.secrets.http import http_failure, http_json
from gateway.secrets.reference import SecretReference
from gateway.secrets.tokens import token_get

WHAT = "Azure Key Vault"
API_VERSION = "7.4"
SCOPE = "https://vault.azure.net/.default"


def _token(ref: SecretReference) -> str:
    tenant = os.environ.get("AZURE_TENANT_ID", "")
    client_id = os.environ.get("AZURE_CLIENT_ID", "")
    client_secret = os.environ.get("AZURE_CLIENT_SECRET", "")
    if not (tenant and client_id and client_secret):
        raise ref.fail("set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET")
    authority = os.environ.get("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com")

    def fetch() -> tuple[str, float]:
        status, body = http_json(
            ref,
            "Entra ID",
            "POST",
            f"{authority.rstrip('/')}/{tenant}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": client_secret,
                "scope": SCOPE,
            },
        )
        if status != 200 or not isinstance(body, dict) or "access_token" not in body:
            raise http_failure(ref, "Entra ID", status)
        return str(body["access_token"]), float(body.get("expires_in") or 3600)

    return token_get(f"azure:{authority}:{tenant}:{client_id}", fetch)


def azure_fetch(ref: SecretReference) -> str:
    vault, _, name = ref.path.partition("/")
    template = os.environ.get("OGEM_AZURE_KEYVAULT_URL", "https://{vault}.vault.azure.net")
    url = f"{template.replace('{vault}', vault).rstrip('/')}/secrets/{name}"
    status, body = http_json(
        ref,
        WHAT,
        "GET",
        url,
        params={"api-version": API_VERSION},
        headers={"Authorization": f"Bearer {_token(ref)}"},
    )
    if status != 200 or not isinstance(body, dict) or not isinstance(body.get("value"), str):
        raise http_failure(ref, WHAT, status)
    return body["value"]
