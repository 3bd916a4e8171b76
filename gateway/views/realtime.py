"""Ephemeral client secrets for the Realtime API: `POST /v1/realtime/client_secrets` (GA) and
`POST /v1/realtime/sessions` (beta), as OpenAI's API reference defines them.

A secret (`ek_...`) is minted by a virtual key for one model it may use for Realtime sessions,
with a session configuration applied when a session opens with it; it lasts
`expires_after.seconds` (10 to 7200, default OGEM_REALTIME_SECRET_TTL) and is stored as a digest
only (gateway.models.RealtimeClientSecret). It speaks for that key: the key's limits, budgets and
allow-lists apply, and it stops working when the key is revoked.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from gateway.auth import caller_authenticate
from gateway.body import body_read_json
from gateway.context import Caller
from gateway.errors import InvalidRequestError
from gateway.realtime.calls import call_create, call_hangup
from gateway.registry import registry_get
from gateway.responses import json_response
from gateway.router import deployments_for
from providers.base import Endpoint

TTL_MIN, TTL_MAX = 10, 7200
# A session configuration is instructions and tools, not a document.
SESSION_MAX_BYTES = 256 * 1024


async def realtime_client_secrets(request: HttpRequest) -> HttpResponse:
    caller = await caller_authenticate(request)
    body = body_read_json(request).body
    session = body.get("session", {})
    if not isinstance(session, dict):
        raise InvalidRequestError("`session` must be an object.", param="session")
    seconds = _seconds(body.get("expires_after"))
    model = _model(caller, session.get("model"), param="session.model")
    config = {name: value for name, value in session.items() if name != "model"}
    config.setdefault("type", "realtime")
    value, expires_at = await _mint(caller, model=model, session=config, seconds=seconds)
    return json_response(
        {
            "value": value,
            "expires_at": expires_at,
            "session": {
                **config,
                "object": "realtime.session",
                "id": f"sess_{uuid.uuid4().hex[:24]}",
                "model": model,
            },
        }
    )


async def realtime_sessions(request: HttpRequest) -> HttpResponse:
    """The beta's form: the body is the session configuration, with `model` in it."""
    caller = await caller_authenticate(request)
    body = body_read_json(request).body
    model = _model(caller, body.get("model"), param="model")
    config = {name: value for name, value in body.items() if name not in ("model", "client_secret")}
    value, expires_at = await _mint(
        caller, model=model, session=config, seconds=settings.OGEM_REALTIME_SECRET_TTL
    )
    return json_response(
        {
            "id": f"sess_{uuid.uuid4().hex[:24]}",
            "object": "realtime.session",
            **config,
            "model": model,
            "client_secret": {"value": value, "expires_at": expires_at},
        }
    )


def _seconds(expires_after: Any) -> int:
    if expires_after is None:
        return settings.OGEM_REALTIME_SECRET_TTL
    if not isinstance(expires_after, dict):
        raise InvalidRequestError("`expires_after` must be an object.", param="expires_after")
    anchor = expires_after.get("anchor", "created_at")
    if anchor != "created_at":
        raise InvalidRequestError(
            "`expires_after.anchor` must be `created_at`.", param="expires_after.anchor"
        )
    seconds = expires_after.get("seconds", settings.OGEM_REALTIME_SECRET_TTL)
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int)
        or not TTL_MIN <= seconds <= TTL_MAX
    ):
        raise InvalidRequestError(
            f"`expires_after.seconds` must be a whole number from {TTL_MIN} to {TTL_MAX}.",
            param="expires_after.seconds",
        )
    return seconds


def _model(caller: Caller, model: Any, *, param: str) -> str:
    if not isinstance(model, str) or not model:
        raise InvalidRequestError(f"`{param}` must name the model of the session.", param=param)
    if caller.key_id is None:
        raise InvalidRequestError(
            "Client secrets are minted with a virtual key, whose limits and budgets the sessions "
            "they open count against.",
            code="virtual_key_required",
        )
    # 404 for a model this tenant cannot see, 403 when not allowed, 400 when it has no Realtime.
    deployments_for(caller=caller, model=model, endpoint=Endpoint.REALTIME, registry=registry_get())
    return model


async def _mint(
    caller: Caller, *, model: str, session: dict[str, Any], seconds: int
) -> tuple[str, int]:
    encoded = orjson.dumps(session)
    if len(encoded) > SESSION_MAX_BYTES:
        raise InvalidRequestError(
            f"The session configuration is larger than {SESSION_MAX_BYTES} bytes.", param="session"
        )
    if b"\\u0000" in encoded:  # PostgreSQL's JSON refuses NUL, and no setting needs one
        raise InvalidRequestError(
            "The session configuration cannot hold NUL characters.", param="session"
        )
    expires = int(time.time()) + seconds
    assert caller.key_id is not None
    value = await sync_to_async(_create, thread_sensitive=False)(
        caller.key_id, model, session, expires
    )
    return value, expires


def _create(key_id: int, model: str, session: dict[str, Any], expires: int) -> str:
    from django.db import close_old_connections, connection

    from gateway.services import realtime_client_secret_create

    close_old_connections()
    try:
        now = datetime.now(UTC)
        value, _ = realtime_client_secret_create(
            key_id=key_id,
            model=model,
            session=session,
            expires_at=datetime.fromtimestamp(expires, UTC),
            now=now,
        )
        return value
    finally:
        connection.close()


async def realtime_calls(request: HttpRequest) -> HttpResponse:
    """WebRTC call setup (gateway/realtime/calls.py): the SDP answer, 201."""
    answer, location = await call_create(request)
    response = HttpResponse(answer, status=201, content_type="application/sdp")
    if location:
        response["Location"] = location
    return response


async def realtime_call_hangup(request: HttpRequest, call_id: str) -> HttpResponse:
    """End a WebRTC call set up through Ogem (gateway/realtime/calls.py): 200, no body."""
    await call_hangup(request, call_id=call_id)
    return HttpResponse(status=200)
