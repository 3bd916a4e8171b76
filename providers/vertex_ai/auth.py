"""Google service-account authentication for Vertex AI: a signed JWT exchanged for an OAuth token.

The service account's key (the JSON file Google issues: `client_email`, `private_key`,
`private_key_id`, `token_uri`, `project_id`) signs an RS256 JWT assertion (`iss` the account,
`aud` the token URI, `scope` cloud-platform, one hour at most), which the token URI exchanges
for an access token (RFC 7523's `jwt-bearer` grant). Tokens are cached per process, per account
and scope, and refreshed `REFRESH_MARGIN` seconds before they expire; concurrent requests wait
for one exchange instead of each starting their own. The key never leaves this module: errors
name the account, never the key.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import jwt
import orjson

from providers.adapter import upstream_refusal
from providers.addresses import AddressPolicy, AddressRefusedError
from providers.base import Timeouts
from providers.errors import InvalidRequestError, UpstreamError, UpstreamUnavailableError
from providers.http import http_session, http_timeout

PROVIDER = "vertex_ai"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_LIFETIME = 3600
REFRESH_MARGIN = 300


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    client_email: str
    private_key: str
    private_key_id: str
    token_uri: str
    project_id: str

    def __repr__(self) -> str:  # keeps the key out of logs and tracebacks
        return f"ServiceAccount({self.client_email!r})"


@dataclass(slots=True)
class _Token:
    value: str
    expires_at: float


_tokens: dict[tuple[str, str, str], _Token] = {}
# One lock per event loop and token: an asyncio.Lock belongs to the loop that first waits on it.
_locks: dict[tuple[asyncio.AbstractEventLoop, tuple[str, str, str]], asyncio.Lock] = {}


def service_account_parse(credentials: Any) -> ServiceAccount:
    """`vertex_credentials` as LiteLLM takes it: a dict, a JSON string or a JSON file's path."""
    info = credentials
    if isinstance(credentials, str):
        text = credentials.strip()
        if not text.startswith("{"):
            try:
                with open(os.path.expanduser(text), encoding="utf-8") as handle:
                    text = handle.read()
            except OSError as exc:
                raise InvalidRequestError(
                    "The deployment's vertex_credentials file cannot be read."
                ) from exc
        try:
            info = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequestError(
                "The deployment's vertex_credentials are not valid JSON."
            ) from exc
    if not isinstance(info, dict) or info.get("type", "service_account") != "service_account":
        raise InvalidRequestError("The deployment's vertex_credentials are not a service account.")
    missing = [name for name in ("client_email", "private_key") if not info.get(name)]
    if missing:
        raise InvalidRequestError(f"The deployment's vertex_credentials lack {', '.join(missing)}.")
    return ServiceAccount(
        client_email=str(info["client_email"]),
        private_key=str(info["private_key"]),
        private_key_id=str(info.get("private_key_id") or ""),
        token_uri=str(info.get("token_uri") or DEFAULT_TOKEN_URI),
        project_id=str(info.get("project_id") or ""),
    )


def assertion_sign(account: ServiceAccount, *, scope: str = SCOPE, now: int | None = None) -> str:
    issued = int(time.time()) if now is None else now
    claims = {
        "iss": account.client_email,
        "sub": account.client_email,
        "aud": account.token_uri,
        "scope": scope,
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    headers = {"kid": account.private_key_id} if account.private_key_id else None
    try:
        return jwt.encode(claims, account.private_key, algorithm="RS256", headers=headers)
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise InvalidRequestError(
            f"The private key of {account.client_email} cannot sign a token."
        ) from exc


async def access_token(
    account: ServiceAccount,
    *,
    scope: str = SCOPE,
    timeouts: Timeouts | None = None,
    policy: AddressPolicy | None = None,
) -> str:
    """A valid access token for the account, from the cache or a fresh exchange. `policy`: the
    addresses the token endpoint may be at (the deployment's; `token_uri` is the tenant's)."""
    key = (account.client_email, account.token_uri, scope, policy)
    cached = _tokens.get(key)
    if cached is not None and cached.expires_at - REFRESH_MARGIN > time.time():
        return cached.value
    lock = _locks.setdefault((asyncio.get_running_loop(), key), asyncio.Lock())
    async with lock:
        cached = _tokens.get(key)
        if cached is not None and cached.expires_at - REFRESH_MARGIN > time.time():
            return cached.value
        token = await _exchange(
            account, scope=scope, timeouts=timeouts or Timeouts(), policy=policy
        )
        _tokens[key] = token
        return token.value


def tokens_forget() -> None:
    """Drop every cached token (tests; a rotated key)."""
    _tokens.clear()


async def _exchange(
    account: ServiceAccount, *, scope: str, timeouts: Timeouts, policy: AddressPolicy | None
) -> _Token:
    form = {"grant_type": GRANT_TYPE, "assertion": assertion_sign(account, scope=scope)}
    started = time.time()
    try:
        if policy is not None:
            policy.check_literal(urlsplit(account.token_uri).hostname or "")
        async with http_session(policy).post(
            account.token_uri,
            data=form,
            timeout=http_timeout(timeouts),
            allow_redirects=False,
        ) as response:
            raw = await response.read()
            status = response.status
    except AddressRefusedError as exc:
        raise upstream_refusal(provider=PROVIDER, error=exc) from exc
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise UpstreamUnavailableError(
            f"{PROVIDER}: the token endpoint is unreachable ({type(exc).__name__}).",
            provider=PROVIDER,
        ) from exc
    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        answer = {}
    if status != 200 or not isinstance(answer, dict) or not answer.get("access_token"):
        reason = answer.get("error_description") or answer.get("error") if answer else ""
        raise UpstreamError(
            f"{PROVIDER}: the token endpoint refused the service account "
            f"{account.client_email}: {status} {reason or ''}".rstrip(),
            provider=PROVIDER,
            code="upstream_rejected_credentials",
        )
    lifetime = float(answer.get("expires_in") or 3600)
    return _Token(value=str(answer["access_token"]), expires_at=started + lifetime)
