"""A local emulator of Google Secret Manager's REST API and Google's OAuth token endpoint (the
service-account JWT grant), on one real socket.

Like Google: a missing or unknown bearer token gets 401 UNAUTHENTICATED, an assertion not signed
by the service account's key (or for another audience than Google's token endpoint) 400
invalid_grant, an unknown secret 404 NOT_FOUND. `issue_token` mints tokens for the metadata server
and STS of tests/emulators/google_identity_api.py.
"""

from __future__ import annotations

import base64
import secrets
import zlib
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.emulators.vault_api import JsonEmulator, Reply, Seen

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # whatever URI it is posted to


def _error(status: int, code: str, message: str) -> Reply:
    return status, {"error": {"code": status, "message": message, "status": code}}, {}


class GcpSecretsEmulator(JsonEmulator):
    def __init__(self) -> None:
        super().__init__()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_email = "ogem@test-project.iam.gserviceaccount.com"
        self.tokens: set[str] = set()
        self.versions: dict[tuple[str, str], list[str]] = {}

    def service_account(self) -> dict[str, str]:
        """A service account key file's content, as the console downloads it."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "k1",
            "private_key": pem,
            "client_email": self.client_email,
            "token_uri": f"{self.url}/token",
        }

    def add_version(self, project: str, secret: str, value: str) -> int:
        versions = self.versions.setdefault((project, secret), [])
        versions.append(value)
        return len(versions)

    def issue_token(self) -> tuple[str, int]:
        token = f"ya29.{secrets.token_urlsafe(24)}"
        self.tokens.add(token)
        return token, 3599

    def _issue(self) -> Reply:
        token, lifetime = self.issue_token()
        return 200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}, {}

    def handle(self, request: Seen) -> Reply:
        if request.path == "/token" and request.method == "POST":
            return self._token(request)
        if request.path.startswith("/v1/projects/") and request.path.endswith(":access"):
            return self._access(request)
        return _error(404, "NOT_FOUND", "Method not found.")

    def _token(self, request: Seen) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode()).items()}
        if form.get("grant_type") != JWT_BEARER:
            return 400, {"error": "unsupported_grant_type"}, {}
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self._key.public_key(),
                algorithms=["RS256"],
                audience=GOOGLE_TOKEN_AUDIENCE,
                issuer=self.client_email,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.PyJWTError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT"}, {}
        if SCOPE not in str(claims.get("scope", "")).split():
            return 400, {"error": "invalid_scope"}, {}
        return self._issue()

    def _access(self, request: Seen) -> Reply:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        name = request.path.removeprefix("/v1/").removesuffix(":access")
        parts = name.split("/")
        if len(parts) != 6 or parts[0] != "projects" or parts[2] != "secrets":
            return _error(404, "NOT_FOUND", "Method not found.")
        versions = self.versions.get((parts[1], parts[3]), [])
        index = len(versions) if parts[5] == "latest" else int(parts[5])
        if not versions or not 1 <= index <= len(versions):
            return _error(404, "NOT_FOUND", f"Secret Version [{name}] not found.")
        data = versions[index - 1].encode()
        payload: dict[str, Any] = {
            "data": base64.b64encode(data).decode(),
            "dataCrc32c": str(zlib.crc32(data)),
        }
        full = f"projects/{parts[1]}/secrets/{parts[3]}/versions/{index}"
        return 200, {"name": full, "payload": payload}, {}
