"""Identity provider JWTs on /v1: a bearer token from ``OGEM_OIDC_ISSUER`` becomes a ``Caller``.

``tenants.oidc`` verifies the token (JWKS fetched and cached, signature, issuer, audience,
expiry) and maps its claims to an organization, teams and a role. Here the result is cached by
sha256(token) until the token's ``exp``, and organization/team slugs are resolved to ids once
per ``SLUG_TTL``: in the steady state a request with a known token makes no database query and
verifies no signature. Tokens that do not look like JWTs are left to the key resolver.
"""

from __future__ import annotations

import hashlib
import threading
import time

from asgiref.sync import sync_to_async

from gateway.context import Caller
from gateway.errors import AuthenticationError
from tenants.models import Organization, Role, Team
from tenants.oidc import (
    OIDCTokenError,
    ValidatedClaims,
    looks_like_jwt,
    oidc_settings,
    oidc_token_validate_async,
)

SLUG_TTL = 300.0  # seconds an organization/team slug → id resolution is trusted
_MAX_ENTRIES = 50_000

_lock = threading.Lock()
_tokens: dict[str, tuple[Caller, float]] = {}  # sha256(token) → (caller, exp)
_slugs: dict[tuple[str, tuple[str, ...]], tuple[int | None, int | None, float]] = {}


def jwt_cache_clear() -> None:
    with _lock:
        _tokens.clear()
        _slugs.clear()


def _resolve_slugs(organization: str, teams: tuple[str, ...]) -> tuple[int | None, int | None]:
    """The organization's id and the first named team's id in it (None when unknown)."""
    organization_id = (
        Organization.objects.filter(slug=organization).values_list("pk", flat=True).first()
    )
    if organization_id is None or not teams:
        return organization_id, None
    found = dict(
        Team.objects.filter(organization_id=organization_id, slug__in=teams).values_list(
            "slug", "pk"
        )
    )
    team_id = next((found[slug] for slug in teams if slug in found), None)
    return organization_id, team_id


async def _tenant_ids(claims: ValidatedClaims) -> tuple[int, int | None]:
    if claims.organization is None:
        raise AuthenticationError("The token names no organization.", code="invalid_token")
    cache_key = (claims.organization, claims.teams)
    cached = _slugs.get(cache_key)
    if cached is not None and cached[2] > time.monotonic():
        organization_id, team_id = cached[0], cached[1]
    else:
        organization_id, team_id = await sync_to_async(_resolve_slugs, thread_sensitive=False)(
            claims.organization, claims.teams
        )
        with _lock:
            if len(_slugs) > _MAX_ENTRIES:
                _slugs.clear()
            _slugs[cache_key] = (organization_id, team_id, time.monotonic() + SLUG_TTL)
    if organization_id is None:
        raise AuthenticationError("The token's organization is unknown.", code="invalid_token")
    return organization_id, team_id


def _caller(claims: ValidatedClaims, organization_id: int | None, team_id: int | None) -> Caller:
    expires_at = claims.claims.get("exp")
    return Caller(
        is_master=claims.role == Role.PROXY_ADMIN,
        key_name=f"oidc:{claims.subject}",
        organization_id=organization_id,
        team_id=team_id,
        expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
    )


async def jwt_caller_authenticate(*, token: str) -> Caller | None:
    """The Caller for an IdP token; None when it is no JWT or IdP tokens are not enabled.

    Raises AuthenticationError (401) for a JWT that fails verification or maps to nothing.
    """
    if not looks_like_jwt(token) or oidc_settings() is None:
        return None
    digest = hashlib.sha256(token.encode()).hexdigest()
    cached = _tokens.get(digest)
    if cached is not None:
        caller, exp = cached
        if exp > time.time():
            return caller
        raise AuthenticationError("The token has expired.", code="expired_token")
    try:
        claims = await oidc_token_validate_async(token=token)
    except OIDCTokenError as exc:
        raise AuthenticationError(f"Invalid identity provider token: {exc}.") from exc
    if claims.role is None:
        raise AuthenticationError("The token carries no role Ogem accepts.", code="invalid_token")
    if claims.role == Role.PROXY_ADMIN:
        caller = _caller(claims, None, None)
    else:
        caller = _caller(claims, *await _tenant_ids(claims))
    if caller.expires_at is not None:
        with _lock:
            if len(_tokens) > _MAX_ENTRIES:
                _tokens.clear()
            _tokens[digest] = (caller, caller.expires_at)
    return caller
