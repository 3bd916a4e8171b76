"""Identity provider bearer tokens on /api/v1, through mozilla-django-oidc's DRF class.

mozilla-django-oidc's ``OIDCAuthentication`` reads the bearer token and hands it to its backend's
``get_or_create_user``; the backend here gets the token's claims in one of two ways, then maps
them to a Principal as tenants.oidc does (no user row):

- a JWT access token is verified locally: mozilla's ``verify_token`` with its two hooks,
  ``retrieve_matching_jwk`` (the JWKS, cached and shared with /v1) and ``_verify_jws`` (signature,
  issuer, audience, expiry with leeway). No call to the IdP per request, and the audience holds.
- an opaque token (only with OGEM_OIDC_OPAQUE_TOKENS) is sent to the IdP's userinfo endpoint by
  mozilla's ``get_userinfo``: the IdP vouches for it on every request, for any of its clients.

mozilla's settings (OIDC_OP_*, OIDC_RP_*) are mapped from OGEM_OIDC_* in ogem_site/settings; an
empty endpoint is read from the issuer's discovery document. Measured against /v1's own
validation in docs/sso.md.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jwt
import requests
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.contrib import drf
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tenants.oidc import (
    OIDCSettings,
    OIDCTokenError,
    OIDCUser,
    looks_like_jwt,
    oidc_bearer_claimed,
    oidc_claims_map,
    oidc_claims_verify,
    oidc_principal,
    oidc_settings_required,
    oidc_signing_key,
)
from tenants.principals import Principal


@lru_cache(maxsize=8)
def _userinfo_endpoint(issuer: str, verify: bool, timeout: float | None) -> str:
    """The issuer's userinfo endpoint, from its discovery document (read once per process)."""
    try:
        response = requests.get(
            f"{issuer}/.well-known/openid-configuration", verify=verify, timeout=timeout
        )
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise OIDCTokenError("the identity provider's discovery document is unavailable") from exc
    endpoint = document.get("userinfo_endpoint") if isinstance(document, dict) else None
    if not isinstance(endpoint, str) or not endpoint:
        raise OIDCTokenError("the identity provider publishes no userinfo_endpoint")
    return endpoint


def userinfo_cache_clear() -> None:
    _userinfo_endpoint.cache_clear()


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, for bearer tokens: claims become a Principal, never a row.

    One instance serves one request (DRF builds its authenticators per request).
    """

    principal: Principal | None = None

    def __init__(self) -> None:
        super().__init__()
        self._config: OIDCSettings | None = None

    @property
    def config(self) -> OIDCSettings:
        if self._config is None:
            self._config = oidc_settings_required()
        return self._config

    # Where the claims come from

    def get_userinfo(
        self, access_token: str, id_token: str | None, payload: dict[str, Any] | None
    ) -> dict[str, Any]:
        if looks_like_jwt(access_token):
            return self.verify_token(access_token)
        if not self.config.opaque_tokens:
            raise OIDCTokenError("opaque identity provider tokens are not accepted")
        if not self.OIDC_OP_USER_ENDPOINT:
            self.OIDC_OP_USER_ENDPOINT = _userinfo_endpoint(
                self.config.issuer,
                self.get_settings("OIDC_VERIFY_SSL", True),
                self.get_settings("OIDC_TIMEOUT", None),
            )
        try:
            claims = super().get_userinfo(access_token, id_token, payload)
        except requests.HTTPError as exc:
            refused = exc.response is not None and exc.response.status_code == 401
            if refused and "www-authenticate" in exc.response.headers:
                raise  # mozilla's class answers with the IdP's error_description
            if refused or (exc.response is not None and exc.response.status_code == 403):
                raise OIDCTokenError("the identity provider refused the token") from exc
            raise OIDCTokenError("the identity provider's userinfo endpoint failed") from exc
        except (requests.RequestException, ValueError) as exc:
            raise OIDCTokenError("the identity provider's userinfo endpoint failed") from exc
        if not isinstance(claims, dict):
            raise OIDCTokenError("the identity provider's userinfo answer is not an object")
        return claims

    def retrieve_matching_jwk(self, token: str) -> jwt.PyJWK:
        """The key from the JWKS Ogem caches (mozilla's fetches the JWKS on every call)."""
        return oidc_signing_key(
            config=self.config, token=token, jwks_url=self.OIDC_OP_JWKS_ENDPOINT
        )

    def _verify_jws(self, payload: str, key: jwt.PyJWK) -> dict[str, Any]:
        """RS256 or ES256 as the key says, and the access token's issuer, audience and expiry
        (mozilla's checks one algorithm and no audience: it verifies ID tokens it asked for)."""
        return oidc_claims_verify(config=self.config, token=payload, key=key)

    # What the claims stand for

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        # Service accounts have no email: what an Ogem principal needs is checked when mapped.
        return isinstance(claims.get("sub"), str) and bool(claims["sub"])

    def get_or_create_user(
        self, access_token: str, id_token: str | None, payload: dict[str, Any] | None
    ) -> OIDCUser:
        claims = self.get_userinfo(access_token, id_token, payload)
        if not self.verify_claims(claims):
            raise OIDCTokenError("the token names no subject")
        self.principal = oidc_principal(claims=oidc_claims_map(config=self.config, claims=claims))
        return self.principal.user


class OIDCAuthentication(drf.OIDCAuthentication):
    """mozilla-django-oidc's DRF class; `request.auth` is the token's Principal.

    Listed after keys.authentication.ManagementKeyAuthentication, which recognizes the master key
    and virtual keys first and leaves identity provider tokens to this class.
    """

    www_authenticate_realm = "ogem"

    def __init__(self, backend: OIDCAuthenticationBackend | None = None) -> None:
        # Not mozilla's __init__: it builds the backend (settings read, user model looked up) for
        # every request, and most /api/v1 requests carry a virtual key, not an IdP token.
        self._backend = backend

    @property
    def backend(self) -> OIDCAuthenticationBackend:
        if self._backend is None:
            self._backend = drf.get_oidc_backend()  # OIDC_DRF_AUTH_BACKEND
        return self._backend

    def authenticate(self, request: Request) -> tuple[OIDCUser, Principal] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not oidc_bearer_claimed(token=token.strip()):
            return None
        try:
            authenticated = super().authenticate(request)
        except OIDCTokenError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        principal = getattr(self.backend, "principal", None)
        if authenticated is None or principal is None:
            return None
        return authenticated[0], principal


class OIDCAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents identity provider tokens in the OpenAPI schema of /api/v1."""

    target_class = "tenants.authentication.OIDCAuthentication"
    name = "identityProviderToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An access token from the identity provider named by OGEM_OIDC_ISSUER.",
        }
