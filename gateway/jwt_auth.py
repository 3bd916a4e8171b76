"""Identity provider JWTs on /v1: a bearer token from ``OGEM_OIDC_ISSUER`` becomes a ``Caller``.

``tenants.oidc`` verifies the token (JWKS fetched and cached, signature, issuer, audience,
expiry) and maps its claims to an organization, teams and a role. Here the result is cached by
sha256(token) until the token's ``exp`` (a minute more, to tell that it expired), and
organization/team slugs are resolved to ids (with the team's, else the organization's, routing
settings: tags, regions, priority) once per ``SLUG_TTL``: in the steady state a request with a
known token makes no database query and verifies no signature. Tokens that do not look like
JWTs are left to the key resolver.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field

from asgiref.sync import sync_to_async

from gateway.context import Caller, guardrail_settings_resolve, routing_settings_resolve
from gateway.errors import AuthenticationError
from ogem_site.broadcast import TENANTS, BroadcastTopic, broadcast_topic_register
from ogem_site.caching import LocalCache
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
EXPIRED_GRACE = 60.0  # seconds an expired token stays known as such (its own message)

# sha256(token) → its caller, until shortly after the token's `exp`.
_tokens: LocalCache[str, Caller] = LocalCache(maxsize=_MAX_ENTRIES, ttl=EXPIRED_GRACE)
Routing = tuple[tuple[str, ...], tuple[str, ...], int | None]  # tags, regions, priority


@dataclass(frozen=True, slots=True)
class _Tenant:
    organization_id: int | None
    team_id: int | None
    routing: Routing
    team_models: tuple[str, ...] = ()
    organization_models: tuple[str, ...] = ()
    guardrails: dict[str, list[str]] = field(default_factory=dict)  # docs/guardrails.md


_slugs: LocalCache[tuple[str, tuple[str, ...]], _Tenant] = LocalCache(
    maxsize=_MAX_ENTRIES, ttl=SLUG_TTL
)


def jwt_cache_clear() -> None:
    _tokens.clear()
    _slugs.clear()


def _tenants_forget() -> None:
    """A team or organization changed (its models, its routing metadata): every token resolves
    its slugs, and builds its caller, again."""
    _tokens.clear()
    _slugs.clear()


def _resolve_slugs(organization: str, teams: tuple[str, ...]) -> _Tenant:
    """The organization, the first named team in it (None when unknown) and the routing settings
    (tags, regions, priority) of the team's metadata, else the organization's."""
    found = (
        Organization.objects.filter(slug=organization)
        .values("pk", "metadata", "allowed_models")
        .first()
    )
    team = None
    if found is not None and teams:
        by_slug = {
            row["slug"]: row
            for row in Team.objects.filter(organization_id=found["pk"], slug__in=teams).values(
                "slug", "pk", "metadata", "allowed_models"
            )
        }
        team = next((by_slug[slug] for slug in teams if slug in by_slug), None)
    levels = [(team or {}).get("metadata") or {}, (found or {}).get("metadata") or {}]
    return _Tenant(
        organization_id=found["pk"] if found else None,
        team_id=team["pk"] if team else None,
        routing=routing_settings_resolve(levels=levels),
        team_models=tuple(str(m) for m in (team or {}).get("allowed_models") or ()),
        organization_models=tuple(str(m) for m in (found or {}).get("allowed_models") or ()),
        guardrails=guardrail_settings_resolve(levels=levels[::-1]),  # organization, then team
    )


async def _tenant(claims: ValidatedClaims) -> _Tenant:
    if claims.organization is None:
        raise AuthenticationError("The token names no organization.", code="invalid_token")
    cache_key = (claims.organization, claims.teams)
    tenant = _slugs.get(cache_key)
    if tenant is None:
        tenant = await sync_to_async(_resolve_slugs, thread_sensitive=False)(
            claims.organization, claims.teams
        )
        _slugs.set(cache_key, tenant)
    if tenant.organization_id is None:
        raise AuthenticationError("The token's organization is unknown.", code="invalid_token")
    return tenant


def _caller(claims: ValidatedClaims, tenant: _Tenant | None) -> Caller:
    expires_at = claims.claims.get("exp")
    tags, regions, priority = tenant.routing if tenant else ((), (), None)
    return Caller(
        is_master=claims.role == Role.PROXY_ADMIN,
        key_name=f"oidc:{claims.subject}",
        organization_id=tenant.organization_id if tenant else None,
        team_id=tenant.team_id if tenant else None,
        team_models=tenant.team_models if tenant else (),
        organization_models=tenant.organization_models if tenant else (),
        tags=tags,
        regions=regions,
        priority=priority,
        expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
        guardrails=tenant.guardrails if tenant else {},
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
        if cached.expires_at > time.time():  # type: ignore[operator]
            return cached
        raise AuthenticationError("The token has expired.", code="expired_token")
    try:
        claims = await oidc_token_validate_async(token=token)
    except OIDCTokenError as exc:
        raise AuthenticationError(f"Invalid identity provider token: {exc}.") from exc
    if claims.role is None:
        raise AuthenticationError("The token carries no role Ogem accepts.", code="invalid_token")
    if claims.role == Role.PROXY_ADMIN:
        caller = _caller(claims, None)
    else:
        caller = _caller(claims, await _tenant(claims))
    if caller.expires_at is not None:
        _tokens.set(digest, caller, ttl=caller.expires_at - time.time() + EXPIRED_GRACE)
    return caller


# Published by gateway/apps.py when tenants says a team or organization changed.
broadcast_topic_register(
    BroadcastTopic(
        name=TENANTS,
        receive=lambda message: _tenants_forget(),
        resync=_tenants_forget,
    )
)
