"""The upstream of a Realtime session: a deployment chosen by routing, connected over WebSocket.

The model group's deployments that serve `Endpoint.REALTIME` (OpenAI, Azure OpenAI) are tried in
the router's order (lowest `priority` first, by `weight` within it; open circuits skipped), then
the group's `fallbacks`; a connect that fails (refused, timed out, an error status) opens the
deployment's circuit like a failed request and the next one is tried.
"""

from __future__ import annotations

import logging

from django.conf import settings

from gateway.config import config_current
from gateway.context import Caller
from gateway.errors import GatewayError, UpstreamUnavailableError
from gateway.health import health_available, health_failure, health_policy, health_success
from gateway.registry import registry_get
from gateway.router import deployments_for
from gateway.strategies.base import weighted_shuffle
from providers.base import Deployment, Endpoint
from providers.realtime import RealtimeUpstream, realtime_connect
from providers.registry import adapter_get

logger = logging.getLogger(__name__)


async def upstream_open(
    *, caller: Caller, model: str, beta: bool
) -> tuple[RealtimeUpstream, Deployment]:
    """An open upstream WebSocket and the deployment it belongs to; raises a GatewayError (404 or
    403 for the model, 502 when no deployment could be connected)."""
    router = config_current().router
    groups = [model, *router.fallbacks.get(model, router.default_fallbacks)]
    last: GatewayError | None = None
    seen: set[str] = set()
    for group in groups:
        if group in seen:
            continue
        seen.add(group)
        try:
            pool = deployments_for(
                caller=caller, model=group, endpoint=Endpoint.REALTIME, registry=registry_get()
            )
        except GatewayError:
            if group == model:
                raise  # the model the client named: its 404/403/400 is the answer
            continue
        usable, circuits, _ = await health_available(pool)
        remaining = list(usable)
        while remaining:
            deployment = weighted_shuffle(tuple(remaining))
            remaining.remove(deployment)
            try:
                connection = await _connect(deployment, beta=beta)
            except GatewayError as error:
                last = error
                await health_failure(deployment, policy=health_policy(), forced=0.0)
                continue
            await health_success(deployment, circuit=circuits.get(deployment.id))
            return connection, deployment
    raise last or UpstreamUnavailableError(
        f"No deployment of `{model}` is available for the Realtime API.", provider="ogem"
    )


def call_deployment(*, caller: Caller, model: str, deployment_id: str) -> Deployment:
    """The deployment a WebRTC call was set up on (the caller must still be allowed the model:
    404/403 as for a session); 503 when it is no longer configured."""
    pool = deployments_for(
        caller=caller, model=model, endpoint=Endpoint.REALTIME, registry=registry_get()
    )
    for deployment in pool:
        if deployment.id == deployment_id:
            return deployment
    raise UpstreamUnavailableError(
        f"The deployment of this call is no longer configured for `{model}`.", provider="ogem"
    )


async def upstream_open_call(
    *, caller: Caller, model: str, deployment_id: str, call_id: str, beta: bool
) -> tuple[RealtimeUpstream, Deployment]:
    """The sideband WebSocket of a WebRTC call, on the deployment that answered its offer (a
    call lives there: there is no other to fail over to)."""
    deployment = call_deployment(caller=caller, model=model, deployment_id=deployment_id)
    connection = await _connect(deployment, beta=beta, call_id=call_id)
    return connection, deployment


async def _connect(
    deployment: Deployment, *, beta: bool, call_id: str | None = None
) -> RealtimeUpstream:
    adapter = adapter_get(deployment.provider)
    assert adapter is not None  # deployments_for keeps only deployments with an adapter
    return await realtime_connect(
        adapter=adapter,
        deployment=deployment,
        beta=beta,
        open_timeout=settings.OGEM_REALTIME_CONNECT_TIMEOUT,
        call_id=call_id,
    )
