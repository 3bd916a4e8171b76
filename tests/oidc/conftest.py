"""A local identity provider for token tests, over loopback HTTP: JWTs signed by keys generated
here (JWKS served), and opaque access tokens its userinfo endpoint answers for (RFC 6750 errors).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tenants.authentication import userinfo_cache_clear
from tenants.oidc import oidc_cache_clear

AUDIENCE = "ogem-api"


@dataclass
class LocalIdP:
    url: str
    keys: dict[str, Any] = field(default_factory=dict)  # kid → private key
    published: list[str] = field(default_factory=list)  # kids in the JWKS
    requests: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)  # each request's, in order
    opaque: dict[str, dict[str, Any]] = field(default_factory=dict)  # token → userinfo claims
    userinfo_status: int = 200  # another status makes userinfo fail that way

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks.json"

    @property
    def userinfo_url(self) -> str:
        return f"{self.url}/userinfo"

    def opaque_token(self, **claims: Any) -> str:
        """An access token that is no JWT: only the userinfo endpoint knows what it stands for."""
        token = f"idp-{secrets.token_urlsafe(24)}"
        self.opaque[token] = {"sub": "alice", **claims}
        return token

    def add_key(self, kid: str, kind: str = "rsa", *, publish: bool = True) -> None:
        if kind == "rsa":
            self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            self.keys[kid] = ec.generate_private_key(ec.SECP256R1())
        if publish:
            self.published.append(kid)

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid in self.published:
            key = self.keys[kid]
            if isinstance(key, rsa.RSAPrivateKey):
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
                jwk["alg"] = "RS256"
            else:
                jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
                jwk["alg"] = "ES256"
            jwk.update(kid=kid, use="sig")
            keys.append(jwk)
        return {"keys": keys}

    def token(
        self,
        kid: str = "k1",
        *,
        signing_key: Any = None,
        algorithm: str | None = None,
        **overrides: Any,
    ) -> str:
        key = signing_key or self.keys[kid]
        if algorithm is None:
            algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "svc-billing",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


def _serve(idp: LocalIdP) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            idp.requests.append(self.path)
            idp.headers.append({name.lower(): value for name, value in self.headers.items()})
            if self.path in ("/jwks.json", "/other-jwks.json"):
                self._json(idp.jwks())
            elif self.path == "/.well-known/openid-configuration":
                self._json(
                    {
                        "issuer": idp.issuer,
                        "jwks_uri": idp.jwks_url,
                        "userinfo_endpoint": idp.userinfo_url,
                    }
                )
            elif self.path == "/userinfo":
                self._userinfo()
            else:
                self.send_response(404)
                self.end_headers()

        def _userinfo(self) -> None:
            scheme, _, token = self.headers.get("Authorization", "").partition(" ")
            claims = idp.opaque.get(token) if scheme == "Bearer" else None
            if claims is None:
                self.send_response(401)
                self.send_header(
                    "WWW-Authenticate",
                    'Bearer error="invalid_token", '
                    'error_description="The access token is invalid or has expired"',
                )
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._json(claims, status=idp.userinfo_status)

        def _json(self, body: Any, *, status: int = 200) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.fixture
def idp(settings) -> Iterator[LocalIdP]:  # type: ignore[no-untyped-def]
    local = LocalIdP(url="")
    server = _serve(local)
    local.url = f"http://127.0.0.1:{server.server_address[1]}"
    local.add_key("k1", "rsa")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    oidc_cache_clear()
    userinfo_cache_clear()
    settings.OGEM_OIDC_ISSUER = local.issuer
    settings.OGEM_OIDC_AUDIENCE = AUDIENCE
    settings.OGEM_OIDC_JWKS_URL = local.jwks_url
    settings.OGEM_OIDC_ORG_CLAIM = "ogem_org"
    settings.OGEM_OIDC_TEAM_CLAIM = "ogem_teams"
    settings.OGEM_OIDC_ROLE_CLAIM = "ogem_role"
    settings.OGEM_OIDC_ROLE_MAP = "gw-admins=org_admin,gw-leads=team_admin,gw-users=member"
    settings.OGEM_OIDC_DEFAULT_ROLE = "member"
    settings.OGEM_OIDC_LEEWAY = "30"
    settings.OGEM_OIDC_JWKS_REFRESH = "30"
    yield local
    server.shutdown()
    server.server_close()
    oidc_cache_clear()
    userinfo_cache_clear()
