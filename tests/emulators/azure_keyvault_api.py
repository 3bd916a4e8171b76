"""A local emulator of Azure Key Vault's secrets API and Entra ID's client-credentials token
endpoint, on one real socket. Vaults are path prefixes: point `OGEM_AZURE_KEYVAULT_URL` at
`{url}/{vault}`, and `AZURE_AUTHORITY_HOST` at `{url}`.

Like Azure: no `api-version` gets 400 BadParameter, a missing or unknown bearer token 401 with the
`WWW-Authenticate` challenge, a wrong client secret 401 invalid_client, an unknown secret 404
SecretNotFound.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import parse_qs

from tests.emulators.vault_api import JsonEmulator, Reply, Seen

SCOPE = "https://vault.azure.net/.default"


class AzureKeyVaultEmulator(JsonEmulator):
    def __init__(self, *, tenant: str = "contoso-tenant") -> None:
        super().__init__()
        self.tenant = tenant
        self.client_id = "ogem-client"
        self.client_secret = secrets.token_urlsafe(16)
        self.tokens: set[str] = set()
        self.secrets: dict[tuple[str, str], list[str]] = {}

    def set_secret(self, vault: str, name: str, value: str) -> str:
        """A new version (as `az keyvault secret set` makes); returns its id."""
        versions = self.secrets.setdefault((vault, name), [])
        versions.append(value)
        return f"v{len(versions)}"

    def handle(self, request: Seen) -> Reply:
        parts = request.path.strip("/").split("/")
        if parts[1:] == ["oauth2", "v2.0", "token"] and request.method == "POST":
            return self._token(parts[0], request)
        if len(parts) in (3, 4) and parts[1] == "secrets" and request.method == "GET":
            return self._secret(parts, request)
        return 404, {"error": {"code": "NotFound", "message": "Not found"}}, {}

    def _token(self, tenant: str, request: Seen) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        if tenant != self.tenant:
            return 400, {"error": "invalid_request", "error_description": "AADSTS90002"}, {}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}, {}
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return 401, {"error": "invalid_client", "error_description": "AADSTS7000215"}, {}
        if form.get("scope") != SCOPE:
            return 400, {"error": "invalid_scope"}, {}
        token = secrets.token_urlsafe(32)
        self.tokens.add(token)
        return 200, {"token_type": "Bearer", "expires_in": 3599, "access_token": token}, {}

    def _secret(self, parts: list[str], request: Seen) -> Reply:
        if request.query.get("api-version") is None:
            body = {"error": {"code": "BadParameter", "message": "api-version is missing"}}
            return 400, body, {}
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{self.tenant}", '
                'resource="https://vault.azure.net"'
            )
            body = {"error": {"code": "Unauthorized", "message": "AKV10000"}}
            return 401, body, {"WWW-Authenticate": challenge}
        vault, name = parts[0], parts[2]
        versions = self.secrets.get((vault, name), [])
        index = len(versions) if len(parts) == 3 else int(parts[3].removeprefix("v") or 0)
        if not versions or not 1 <= index <= len(versions):
            message = f"A secret with (name/id) {name} was not found in this key vault."
            return 404, {"error": {"code": "SecretNotFound", "message": message}}, {}
        secret_id = f"https://{vault}.vault.azure.net/secrets/{name}/v{index}"
        body: dict[str, Any] = {
            "value": versions[index - 1],
            "id": secret_id,
            "attributes": {"enabled": True, "recoveryLevel": "Recoverable+Purgeable"},
        }
        return 200, body, {}
