"""Who opens a Realtime session, and on which model: read from the WebSocket handshake.

A credential comes as clients send it: `Authorization: Bearer KEY` (or `api-key`, `x-api-key`)
from servers, the `openai-insecure-api-key.KEY` subprotocol from browsers (which cannot set
headers), and either may carry an ephemeral client secret (`ek_...`) minted by Ogem. A client
secret speaks for the key that minted it, on the model it was minted for only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async

from gateway.auth import caller_by_key_id, caller_from_secret
from gateway.context import Caller
from gateway.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)
from gateway.realtime.call_records import CallRef, call_find

KEY_SUBPROTOCOL = "openai-insecure-api-key."
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
SECRET_PREFIX = "ek_"


@dataclass(frozen=True, slots=True)
class Opening:
    caller: Caller
    model: str
    beta: bool  # the client speaks the beta protocol (`OpenAI-Beta: realtime=v1`)
    subprotocol: str | None  # the one to accept: never the one that carries the key
    # A client secret's session configuration, sent upstream as the session opens.
    session: dict[str, Any] = field(default_factory=dict)
    # The WebRTC call a sideband connection (`?call_id=`) joins.
    call: CallRef | None = None


def scope_headers(scope: dict[str, Any]) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers") or ()
    }


def _credential(headers: dict[str, str], protocols: list[str]) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for name in ("api-key", "x-api-key"):
        if headers.get(name, "").strip():
            return headers[name].strip()
    for protocol in protocols:
        if protocol.startswith(KEY_SUBPROTOCOL) and len(protocol) > len(KEY_SUBPROTOCOL):
            return protocol[len(KEY_SUBPROTOCOL) :]
    return None


def _subprotocol(protocols: list[str]) -> str | None:
    """The subprotocol to accept: a browser that offered some fails the handshake without one;
    `realtime` is what OpenAI accepts. The key's own is never echoed back."""
    if "realtime" in protocols:
        return "realtime"
    return next((p for p in protocols if not p.startswith(KEY_SUBPROTOCOL)), None)


async def opening_resolve(scope: dict[str, Any]) -> Opening:
    """Authenticate the handshake and name its model; raises GatewayError (401, 403, 400)."""
    headers = scope_headers(scope)
    protocols = [str(p) for p in scope.get("subprotocols") or ()]
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    # Azure OpenAI clients name the deployment instead of the model.
    model = (query.get("model") or query.get("deployment") or [""])[0].strip()
    beta = (
        "realtime=v1" in headers.get("openai-beta", "").replace(" ", "")
        or BETA_SUBPROTOCOL in protocols
    )
    secret = _credential(headers, protocols)
    if secret is None:
        raise AuthenticationError(
            "Missing API key: send it as `Authorization: Bearer KEY` or in the "
            "`openai-insecure-api-key.KEY` subprotocol.",
            code="missing_api_key",
        )
    call_id = (query.get("call_id") or [""])[0].strip()
    if call_id:
        caller, _, _ = await credential_resolve(secret, model="")
        call = await call_find(call_id)
        if call is None or not call.owned_by(caller):
            # Another key's call is as unknown as one that never was.
            raise NotFoundError(
                f"No WebRTC call `{call_id}` of this key is in progress.",
                code="call_not_found",
                param="call_id",
            )
        return Opening(
            caller=caller,
            model=call.model,
            beta=beta,
            subprotocol=_subprotocol(protocols),
            call=call,
        )
    caller, model, session = await credential_resolve(secret, model=model)
    if not model:
        raise InvalidRequestError(
            "Name the model in the URL: /v1/realtime?model=MODEL.", param="model"
        )
    return Opening(
        caller=caller,
        model=model,
        beta=beta,
        subprotocol=_subprotocol(protocols),
        session=session,
    )


async def credential_resolve(secret: str, *, model: str) -> tuple[Caller, str, dict[str, Any]]:
    """The Caller of a key or client secret, the model (a secret's own: another named one is
    403) and the secret's session configuration ({} for a key). Raises GatewayError (401, 403)."""
    if not secret.startswith(SECRET_PREFIX):
        caller = await caller_from_secret(secret=secret)
        if caller.expires_at is not None and caller.expires_at <= time.time():
            raise AuthenticationError("This API key has expired.", code="expired_api_key")
        return caller, model, {}
    bound = await sync_to_async(_client_secret_read, thread_sensitive=False)(secret)
    if bound is None:
        raise AuthenticationError("Invalid or expired client secret.", code="invalid_client_secret")
    key_id, bound_model, session = bound
    found = await caller_by_key_id(key_id=key_id)
    if found is None:  # the key that minted it was revoked, expired or deleted
        raise AuthenticationError("Invalid or expired client secret.", code="invalid_client_secret")
    if model and model != bound_model:
        raise PermissionDeniedError(
            f"This client secret was issued for the model `{bound_model}`.",
            param="model",
            code="model_not_allowed",
        )
    return found, bound_model, session


def _client_secret_read(secret: str) -> tuple[int, str, dict[str, Any]] | None:
    from django.db import close_old_connections, connection
    from django.utils import timezone

    from gateway.selectors import realtime_client_secret_get

    close_old_connections()
    try:
        row = realtime_client_secret_get(secret=secret, now=timezone.now())
        return (row.key_id, row.model, dict(row.session or {})) if row is not None else None
    finally:
        connection.close()
