"""`POST /v1/realtime/calls`: WebRTC session setup, passed through to an OpenAI deployment.

The client sends its SDP offer, as OpenAI takes it: the offer alone (`Content-Type:
application/sdp`, the model from the client secret it authenticates with, or `?model=`), or
multipart `sdp` + `session` (JSON, with `model`). Ogem authenticates the key or client secret,
applies the model's allow-lists and checks every budget has room (as a WebSocket session's
handshake does), picks an OpenAI deployment of the model by routing (connect failures fail
over), and sends the offer upstream with the deployment's key and upstream model (the
client secret's session configuration first, the client's over it). The SDP answer comes back as
it came (201, `application/sdp`, the upstream's `Location`).

The call takes the caller's concurrent-session slots (as a WebSocket session does) and is
recorded (gateway/realtime/call_records.py: key, model, deployment) so that its sideband
WebSocket (`/v1/realtime?call_id=`) can join it through Ogem, governed like a session, and
`POST /v1/realtime/calls/{call_id}/hangup` can end it. Its audio and data channel flow between
the client and OpenAI directly: what Ogem sees of the call is what its sideband sees.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson
from django.http import HttpRequest

from gateway.auth import credential_from_request
from gateway.body import multipart_parse
from gateway.context import RequestContext
from gateway.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    UpstreamUnavailableError,
)
from gateway.governance import session_admit, session_release
from gateway.health import health_available, health_failure, health_policy, health_success
from gateway.realtime.call_records import call_end, call_find, call_id_from_location, call_record
from gateway.realtime.handshake import credential_resolve
from gateway.realtime.slots import session_slots
from gateway.realtime.upstream import call_deployment
from gateway.registry import registry_get
from gateway.router import deployments_for
from gateway.strategies.base import weighted_shuffle
from providers.base import Deployment, Endpoint
from providers.registry import adapter_get

logger = logging.getLogger(__name__)

SDP_MAX_BYTES = 64 * 1024
SESSION_MAX_BYTES = 256 * 1024
# Providers whose WebRTC endpoint Ogem passes calls to.
CALL_PROVIDERS = frozenset({"openai"})


def _field(request: HttpRequest, name: str) -> str:
    """A multipart field, sent as a plain field or as a part with its own content type (the
    official SDK sends `sdp` as `application/sdp` and `session` as `application/json`)."""
    if name in request.POST:
        return str(request.POST[name])
    upload = request.FILES.get(name)
    if upload is None:
        return ""
    if upload.size is not None and upload.size > SESSION_MAX_BYTES:
        raise InvalidRequestError(f"`{name}` is too large.", param=name)
    return upload.read().decode("utf-8", "replace")


def _offer(request: HttpRequest) -> tuple[str, dict[str, Any]]:
    """The SDP offer and the client's session configuration, from either body form."""
    if request.content_type == "application/sdp":
        if len(request.body) > SDP_MAX_BYTES:
            raise InvalidRequestError("The SDP offer is too large.", param="sdp")
        return request.body.decode("utf-8", "replace"), {}
    if request.content_type != "multipart/form-data":
        raise InvalidRequestError(
            "Send the SDP offer as `application/sdp`, or multipart `sdp` and `session`.",
            code="unsupported_content_type",
        )
    multipart_parse(request)  # a malformed body is a 400 before any field is read
    sdp = _field(request, "sdp")
    raw = _field(request, "session")
    if len(sdp) > SDP_MAX_BYTES or len(raw) > SESSION_MAX_BYTES:
        raise InvalidRequestError("The offer or session is too large.", param="sdp")
    try:
        session = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError("`session` is not valid JSON.", param="session") from exc
    if not isinstance(session, dict):
        raise InvalidRequestError("`session` must be an object.", param="session")
    return sdp, session


async def call_create(request: HttpRequest) -> tuple[str, str | None]:
    """The SDP answer and the call's Location; raises GatewayError (OpenAI's status and body)."""
    secret = credential_from_request(request)
    if secret is None:
        raise AuthenticationError(
            "Missing API key: send it as `Authorization: Bearer KEY`.", code="missing_api_key"
        )
    sdp, session = _offer(request)
    if not sdp.startswith("v=0"):
        raise InvalidRequestError("`sdp` must be an SDP offer.", param="sdp")
    named = session.pop("model", None) or request.GET.get("model", "")
    caller, model, bound = await credential_resolve(secret, model=str(named or ""))
    if not model:
        raise InvalidRequestError(
            "Name the model: `session.model`, or `?model=` with an `application/sdp` offer.",
            param="model",
        )
    pool = deployments_for(
        caller=caller, model=model, endpoint=Endpoint.REALTIME, registry=registry_get()
    )
    pool = [deployment for deployment in pool if deployment.provider in CALL_PROVIDERS]
    if not pool:
        raise InvalidRequestError(
            f"`{model}` has no OpenAI deployment: WebRTC calls are passed to OpenAI only; use "
            "the WebSocket (/v1/realtime) for other providers.",
            code="unsupported_endpoint",
            param="model",
        )
    ctx = RequestContext(
        request_id=f"rtc_{uuid.uuid4().hex}", endpoint=Endpoint.REALTIME, caller=caller
    )
    ctx.model = model
    # Every budget must have room and the call takes its concurrent-session slots, as a
    # WebSocket session does; they are freed when the call ends (or expire).
    hold = await session_admit(ctx, slots=session_slots(ctx))
    try:
        answer, deployment_id = await _offer_pass(
            ctx, pool=pool, sdp=sdp, session=session, bound=bound
        )
    except BaseException:
        await session_release(ctx, hold)
        raise
    call_id = call_id_from_location(answer[1])
    if not call_id:  # an upstream that names no call: nothing to follow it by
        await session_release(ctx, hold)
        return answer
    await call_record(
        call_id=call_id,
        caller=caller,
        model=model,
        deployment_id=deployment_id,
        hold_id=ctx.request_id,
        hold=hold,
    )
    return answer


async def _offer_pass(
    ctx: RequestContext,
    *,
    pool: list[Deployment],
    sdp: str,
    session: dict[str, Any],
    bound: dict[str, Any],
) -> tuple[tuple[str, str | None], str]:
    """The offer through routing's order of the OpenAI deployments: the answer and the id of
    the deployment that gave it."""
    caller, model = ctx.caller, ctx.model
    config = {"type": "realtime", **bound, **session}
    usable, circuits, _ = await health_available(pool)
    remaining = list(usable)
    last: GatewayError | None = None
    while remaining:
        deployment = weighted_shuffle(tuple(remaining))
        remaining.remove(deployment)
        adapter = adapter_get(deployment.provider)
        assert adapter is not None
        try:
            answer = await adapter.realtime_call(deployment=deployment, sdp=sdp, session=config)
        except GatewayError as error:
            if error.status < 500 and error.status not in (408, 429):
                raise  # the upstream refused the offer itself: its answer is the client's
            last = error
            await health_failure(deployment, policy=health_policy(), forced=0.0)
            continue
        await health_success(deployment, circuit=circuits.get(deployment.id))
        logger.info(
            "realtime call %s: key=%s model=%s deployment=%s",
            ctx.request_id,
            caller.key_prefix or caller.key_name,
            model,
            deployment.id,
        )
        return answer, deployment.id
    raise last or UpstreamUnavailableError(
        f"No deployment of `{model}` is available for WebRTC calls.", provider="ogem"
    )


async def call_hangup(request: HttpRequest, *, call_id: str) -> None:
    """`POST /v1/realtime/calls/{call_id}/hangup`: passed to the call's deployment, by the key
    that set the call up (another key's call is 404); the call's slots are freed."""
    secret = credential_from_request(request)
    if secret is None:
        raise AuthenticationError(
            "Missing API key: send it as `Authorization: Bearer KEY`.", code="missing_api_key"
        )
    caller, _, _ = await credential_resolve(secret, model="")
    call = await call_find(call_id)
    if call is None or not call.owned_by(caller):
        raise NotFoundError(
            f"No WebRTC call `{call_id}` of this key is in progress.",
            code="call_not_found",
            param="call_id",
        )
    deployment = call_deployment(caller=caller, model=call.model, deployment_id=call.deployment_id)
    adapter = adapter_get(deployment.provider)
    assert adapter is not None
    try:
        await adapter.realtime_call_hangup(deployment=deployment, call_id=call.call_id)
    except GatewayError as error:
        if error.status != 404:  # a call the upstream has ended already is over all the same
            raise
    await call_end(call, caller=caller)
