"""Identity provider access tokens for /api/v1 and /v1: verification and claim mapping.

A JWT access token is accepted when its signature verifies against the issuer's JWKS (RS256 or
ES256 only), and its issuer, audience, expiry and not-before hold (with a small leeway). Claims
then map to an organization (by slug), teams (by slug) and a role, as configured:

    OGEM_OIDC_ISSUER         https://idp.example.com/realms/acme (required to enable this)
    OGEM_OIDC_AUDIENCE       ogem (required; comma-separated for several)
    OGEM_OIDC_JWKS_URL       optional; otherwise read from the issuer's
                             /.well-known/openid-configuration
    OGEM_OIDC_ORG_CLAIM      default "ogem_org"   (dotted paths reach nested claims)
    OGEM_OIDC_TEAM_CLAIM     default "ogem_teams" (a string or a list)
    OGEM_OIDC_ROLE_CLAIM     default "ogem_role"  (a string or a list, e.g. realm_access.roles)
    OGEM_OIDC_ROLE_MAP       "idp-admins=org_admin,idp-users=member"; unmapped values that are
                             Ogem role names map to themselves
    OGEM_OIDC_DEFAULT_ROLE   role when no claim value maps (default "member"; empty refuses)
    OGEM_OIDC_LEEWAY         seconds of clock skew allowed (default 30)
    OGEM_OIDC_JWKS_TTL       seconds a fetched JWKS (and a discovered jwks_uri) is trusted
                             (default 3600)
    OGEM_OIDC_JWKS_REFRESH   minimum seconds between refetches caused by unknown key ids
                             (default 30): a flood of forged kids cannot hammer the IdP
    OGEM_OIDC_OPAQUE_TOKENS  /api/v1 only: also accept opaque access tokens, checked by the
                             IdP's userinfo endpoint (default false: no audience can be checked)

On /api/v1, mozilla-django-oidc's DRF class runs these checks (tenants/authentication.py); on
/v1, gateway/jwt_auth.py calls ``oidc_token_validate_async`` and caches the result per token.
Both share the JWKS cache below, so they accept exactly the same tokens.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from django.conf import settings

from ogem_site.caching import LocalCache
from ogem_site.env import env_str
from tenants.models import ORG_WIDE_ROLES, Organization, Role, Team
from tenants.principals import Principal

ALGORITHMS = ("RS256", "ES256")
_KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}
# Ogem's role names, strongest first; also the membership test (Role.values builds a list a call).
_ROLE_RANK = {role: rank for rank, role in enumerate(Role.values)}
_HTTP_TIMEOUT = 5.0


class OIDCTokenError(Exception):
    """The token is not acceptable; the message is safe to return to the client."""


@dataclass(frozen=True)
class OIDCSettings:
    issuer: str
    audiences: tuple[str, ...]
    jwks_url: str
    org_claim: str = "ogem_org"
    team_claim: str = "ogem_teams"
    role_claim: str = "ogem_role"
    role_map: dict[str, str] = field(default_factory=dict)
    default_role: str = Role.MEMBER
    leeway: int = 30
    jwks_ttl: int = 3600
    jwks_refresh: int = 30
    opaque_tokens: bool = False


@dataclass(frozen=True)
class ValidatedClaims:
    subject: str
    issuer: str
    organization: str | None  # organization slug from the org claim
    teams: tuple[str, ...]  # team slugs from the team claim
    role: str | None  # an Ogem role (tenants.models.Role) or None when nothing maps
    email: str | None
    claims: dict[str, Any]


def _setting(name: str, default: str = "") -> str:
    value = getattr(settings, name, None)
    if value is None:
        value = env_str(name, default)
    return value if isinstance(value, str) else str(value)


def _role_map(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        pairs = raw.items()
    else:
        pairs = (item.split("=", 1) for item in str(raw).split(",") if "=" in item)
    mapping: dict[str, str] = {}
    for idp_value, role in pairs:
        role = role.strip()
        if role not in _ROLE_RANK:
            raise OIDCTokenError(f"OGEM_OIDC_ROLE_MAP names unknown role {role!r}")
        mapping[idp_value.strip()] = role
    return mapping


def oidc_settings() -> OIDCSettings | None:
    """The configured issuer, or None when IdP tokens are not enabled."""
    issuer = _setting("OGEM_OIDC_ISSUER").rstrip("/")
    if not issuer:
        return None
    audiences = tuple(a.strip() for a in _setting("OGEM_OIDC_AUDIENCE").split(",") if a.strip())
    role_map_raw = getattr(settings, "OGEM_OIDC_ROLE_MAP", None) or env_str("OGEM_OIDC_ROLE_MAP")
    return OIDCSettings(
        issuer=issuer,
        audiences=audiences,
        jwks_url=_setting("OGEM_OIDC_JWKS_URL"),
        org_claim=_setting("OGEM_OIDC_ORG_CLAIM", "ogem_org"),
        team_claim=_setting("OGEM_OIDC_TEAM_CLAIM", "ogem_teams"),
        role_claim=_setting("OGEM_OIDC_ROLE_CLAIM", "ogem_role"),
        role_map=_role_map(role_map_raw),
        default_role=_setting("OGEM_OIDC_DEFAULT_ROLE", Role.MEMBER),
        leeway=int(_setting("OGEM_OIDC_LEEWAY", "30")),
        jwks_ttl=int(_setting("OGEM_OIDC_JWKS_TTL", "3600")),
        jwks_refresh=int(_setting("OGEM_OIDC_JWKS_REFRESH", "30")),
        opaque_tokens=bool(getattr(settings, "OGEM_OIDC_OPAQUE_TOKENS", False)),
    )


# The JWKS cache: public keys only, per process, keyed by the JWKS URL.


@dataclass
class _KeySet:
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    forced_at: float = float("-inf")  # the last refetch an unknown kid caused (monotonic)


# Fresh for OGEM_OIDC_JWKS_TTL seconds; an unknown kid refetches at most every JWKS_REFRESH.
_keysets: LocalCache[str, _KeySet] = LocalCache(maxsize=64, ttl=3600)
_jwks_urls: LocalCache[str, str] = LocalCache(maxsize=64, ttl=3600)  # issuer → discovered jwks_uri


def oidc_cache_clear() -> None:
    _keysets.clear()
    _jwks_urls.clear()


def _parse_jwks(payload: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("keys"), list):
        raise OIDCTokenError("the identity provider's JWKS is malformed")
    return {
        str(jwk.get("kid", "")): jwk
        for jwk in payload["keys"]
        if isinstance(jwk, dict)
        and jwk.get("kty") in {"RSA", "EC"}
        and jwk.get("use", "sig") == "sig"
    }


def _discovered_jwks_url(config: OIDCSettings, document: Any) -> str:
    if not isinstance(document, dict) or document.get("issuer", "").rstrip("/") != config.issuer:
        raise OIDCTokenError("the identity provider's discovery document names another issuer")
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise OIDCTokenError("the identity provider publishes no jwks_uri")
    return jwks_uri


def _discovery_url(config: OIDCSettings) -> str:
    return f"{config.issuer}/.well-known/openid-configuration"


def _get_json(url: str) -> Any:
    try:
        response = httpx.get(url, timeout=_HTTP_TIMEOUT)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        raise OIDCTokenError("the identity provider's keys are unavailable") from exc


async def _aget_json(url: str) -> Any:
    try:
        async with httpx.AsyncClient(timeout=_HTTP_TIMEOUT) as client:
            response = await client.get(url)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        raise OIDCTokenError("the identity provider's keys are unavailable") from exc


def _refresh_plan(config: OIDCSettings, jwks_url: str, kid: str) -> bool:
    """Whether the JWKS must be (re)fetched to find ``kid``; records a forced refetch."""
    hit = _keysets.peek(jwks_url)
    if hit is None or not hit[1]:
        return True
    keyset = hit[0]
    if kid in keyset.keys:
        return False
    now = time.monotonic()
    with _keysets.lock:
        if now - keyset.forced_at >= config.jwks_refresh:
            keyset.forced_at = now
            return True
    return False


def _store(config: OIDCSettings, jwks_url: str, payload: Any) -> None:
    keys = _parse_jwks(payload)
    previous = _keysets.peek(jwks_url)
    forced_at = previous[0].forced_at if previous is not None else float("-inf")
    _keysets.set(jwks_url, _KeySet(keys=keys, forced_at=forced_at), ttl=config.jwks_ttl)


def _cached_key(jwks_url: str, kid: str) -> dict[str, Any] | None:
    hit = _keysets.peek(jwks_url)
    return None if hit is None else hit[0].keys.get(kid)


def _jwks_url(config: OIDCSettings) -> str | None:
    return config.jwks_url or _jwks_urls.get(config.issuer)


def _jwks_url_found(config: OIDCSettings, document: Any) -> str:
    jwks_url = _discovered_jwks_url(config, document)
    _jwks_urls.set(config.issuer, jwks_url, ttl=config.jwks_ttl)
    return jwks_url


def _header(token: str) -> tuple[str, str]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise OIDCTokenError("the token is not a well-formed JWT") from exc
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise OIDCTokenError(f"the token's algorithm must be one of {', '.join(ALGORITHMS)}")
    return algorithm, str(header.get("kid", ""))


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    if isinstance(value, str):
        return value.split() if " " in value else [value]
    return [str(value)]


def _map_role(config: OIDCSettings, raw: Any) -> str | None:
    roles = []
    for value in _as_list(raw):
        role = config.role_map.get(value) or (value if value in _ROLE_RANK else None)
        if role:
            roles.append(role)
    if roles:
        return min(roles, key=_ROLE_RANK.__getitem__)
    return config.default_role or None


def _key(jwks_url: str, kid: str, algorithm: str) -> jwt.PyJWK:
    jwk = _cached_key(jwks_url, kid)
    if jwk is None:
        raise OIDCTokenError("the token is signed with an unknown key")
    if jwk.get("kty") != _KEY_TYPES[algorithm]:
        raise OIDCTokenError("the token's algorithm does not match its key")
    try:
        return jwt.PyJWK(jwk, algorithm=algorithm)
    except jwt.PyJWTError as exc:
        raise OIDCTokenError(f"the token is invalid: {exc}") from exc


def oidc_signing_key(*, config: OIDCSettings, token: str, jwks_url: str = "") -> jwt.PyJWK:
    """The identity provider's public key that signed `token` (RS256 or ES256 only), from the
    cached JWKS at `jwks_url` (default: OGEM_OIDC_JWKS_URL, else the issuer's discovery
    document); raises OIDCTokenError."""
    algorithm, kid = _header(token)
    jwks_url = jwks_url or _jwks_url(config) or ""
    if not jwks_url:
        jwks_url = _jwks_url_found(config, _get_json(_discovery_url(config)))
    if _refresh_plan(config, jwks_url, kid):
        _store(config, jwks_url, _get_json(jwks_url))
    return _key(jwks_url, kid, algorithm)


async def oidc_signing_key_async(*, config: OIDCSettings, token: str) -> jwt.PyJWK:
    """The same as oidc_signing_key, without blocking the event loop on a JWKS fetch."""
    algorithm, kid = _header(token)
    jwks_url = _jwks_url(config) or ""
    if not jwks_url:
        jwks_url = _jwks_url_found(config, await _aget_json(_discovery_url(config)))
    if _refresh_plan(config, jwks_url, kid):
        _store(config, jwks_url, await _aget_json(jwks_url))
    return _key(jwks_url, kid, algorithm)


def oidc_claims_verify(*, config: OIDCSettings, token: str, key: jwt.PyJWK) -> dict[str, Any]:
    """The claims of a JWT whose signature, issuer, audience, expiry and not-before hold (with
    the configured leeway); raises OIDCTokenError with a message safe to return."""
    try:
        return jwt.decode(
            token,
            key=key.key,
            algorithms=[key.algorithm_name],
            audience=list(config.audiences),
            issuer=config.issuer,
            leeway=config.leeway,
            options={"require": ["exp", "iss", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise OIDCTokenError("the token has expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise OIDCTokenError("the token is not valid yet") from exc
    except jwt.InvalidAudienceError as exc:
        raise OIDCTokenError("the token is not meant for this audience") from exc
    except jwt.InvalidIssuerError as exc:
        raise OIDCTokenError("the token comes from another issuer") from exc
    except jwt.InvalidSignatureError as exc:
        raise OIDCTokenError("the token's signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise OIDCTokenError(f"the token is invalid: {exc}") from exc


def oidc_claims_map(*, config: OIDCSettings, claims: dict[str, Any]) -> ValidatedClaims:
    """The organization, teams and role that verified claims (a JWT's, or a userinfo answer's,
    which names no issuer: the configured one) stand for."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise OIDCTokenError("the token names no subject")
    organization = _claim(claims, config.org_claim)
    return ValidatedClaims(
        subject=subject,
        issuer=str(claims.get("iss") or config.issuer),
        organization=str(organization) if organization not in (None, "") else None,
        teams=tuple(_as_list(_claim(claims, config.team_claim))),
        role=_map_role(config, _claim(claims, config.role_claim)),
        email=claims.get("email") if isinstance(claims.get("email"), str) else None,
        claims=claims,
    )


def oidc_settings_required() -> OIDCSettings:
    """The settings JWT access tokens need; raises OIDCTokenError when they are incomplete."""
    config = oidc_settings()
    if config is None:
        raise OIDCTokenError("identity provider tokens are not enabled")
    if not config.audiences:
        # Without an audience, a token the IdP issued for any other application would pass.
        raise OIDCTokenError("OGEM_OIDC_AUDIENCE must be set to accept identity provider tokens")
    return config


def oidc_token_validate(*, token: str) -> ValidatedClaims:
    """Verify a JWT access token and map its claims; raises OIDCTokenError."""
    config = oidc_settings_required()
    key = oidc_signing_key(config=config, token=token)
    return oidc_claims_map(
        config=config, claims=oidc_claims_verify(config=config, token=token, key=key)
    )


async def oidc_token_validate_async(*, token: str) -> ValidatedClaims:
    """The same as oidc_token_validate, without blocking the event loop on a JWKS fetch."""
    config = oidc_settings_required()
    key = await oidc_signing_key_async(config=config, token=token)
    return oidc_claims_map(
        config=config, claims=oidc_claims_verify(config=config, token=token, key=key)
    )


def looks_like_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def oidc_bearer_claimed(*, token: str) -> bool:
    """Whether /api/v1 leaves this bearer token to the identity provider's class: a JWT, or any
    token with OGEM_OIDC_OPAQUE_TOKENS (the master key and virtual keys are told apart first)."""
    if not looks_like_jwt(token) and not getattr(settings, "OGEM_OIDC_OPAQUE_TOKENS", False):
        return False
    return oidc_settings() is not None


# The management API


class OIDCUser:
    """The request user for an IdP token: no account row, named by issuer subject."""

    pk = None
    id = None
    is_active = True
    is_staff = False
    is_authenticated = True
    is_anonymous = False

    def __init__(self, claims: ValidatedClaims, *, is_proxy_admin: bool) -> None:
        self.claims = claims
        self.username = f"oidc:{claims.subject}"
        self.audit_name = self.username
        self.email = claims.email or ""
        self.is_superuser = is_proxy_admin
        self.is_proxy_admin = is_proxy_admin

    def __str__(self) -> str:
        return self.username


def oidc_principal(*, claims: ValidatedClaims) -> Principal:
    """The Principal an IdP token stands for; raises OIDCTokenError when it maps to nothing."""
    if claims.role is None:
        raise OIDCTokenError("the token carries no role Ogem accepts")
    if claims.role == Role.PROXY_ADMIN:
        return Principal(user=OIDCUser(claims, is_proxy_admin=True), is_proxy_admin=True)
    if claims.organization is None:
        raise OIDCTokenError("the token names no organization")
    organization = Organization.objects.filter(slug=claims.organization).first()
    if organization is None:
        raise OIDCTokenError("the token's organization is unknown")
    is_team_admin = claims.role == Role.TEAM_ADMIN
    org_role = Role.MEMBER if is_team_admin else claims.role
    teams = Team.objects.filter(organization=organization, slug__in=claims.teams)
    team_role = (
        Role.TEAM_ADMIN
        if is_team_admin
        else (Role.VIEWER if claims.role == Role.VIEWER else Role.MEMBER)
    )
    team_roles = {} if org_role in ORG_WIDE_ROLES else {team.pk: team_role for team in teams}
    return Principal(
        user=OIDCUser(claims, is_proxy_admin=False),
        org_roles={organization.pk: org_role},
        team_roles=team_roles,
        team_orgs={team_id: organization.pk for team_id in team_roles},
    )
