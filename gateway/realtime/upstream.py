"""The upstream of a Realtime session: a deployment chosen by routing, connected over WebSocket.

The model group's deployments that serve `Endpoint.REALTIME` (OpenAI, Azure OpenAI) are tried in
the router's order (lowest `priority` first, by `weight` within it; open circuits skipped), then
the group's `fallbacks`; a connect that fails (refused, timed out, an error status) opens the
deployment's circuit like a failed request and the next one is tried.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import websockets
from django.conf import settings
from websockets.asyncio.client import ClientConnection

from gateway.config import config_current
from gateway.context import Caller
from gateway.errors import GatewayError, UpstreamUnavailableError
from gateway.health import health_available, health_failure, health_policy, health_success
from gateway.registry import registry_get
from gateway.router import deployments_for
from gateway.strategies.base import weighted_shuffle
from providers.addresses import AddressRefusedError, addresses_resolve
from providers.base import Deployment, Endpoint
from providers.registry import adapter_get

logger = logging.getLogger(__name__)


async def upstream_open(
    *, caller: Caller, model: str, beta: bool
) -> tuple[ClientConnection, Deployment]:
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


async def _connect(deployment: Deployment, *, beta: bool) -> ClientConnection:
    adapter = adapter_get(deployment.provider)
    assert adapter is not None  # deployments_for keeps only deployments with an adapter
    url, headers = adapter.realtime_target(deployment)
    if beta:
        headers = {**headers, "OpenAI-Beta": "realtime=v1"}
    options: dict[str, object] = {}
    try:
        if deployment.address_policy is not None:
            # An organization's deployment: connect only to an address its policy allows.
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "wss" else 80)
            addresses = await addresses_resolve(
                parts.hostname or "", port, policy=deployment.address_policy
            )
            options = {"host": addresses[0][0], "port": addresses[0][1]}
        return await websockets.connect(
            url,
            additional_headers=headers,
            open_timeout=settings.OGEM_REALTIME_CONNECT_TIMEOUT,
            max_size=None,  # the client's frames are bounded on the way in; the upstream is trusted
            compression=None,
            user_agent_header="Ogem",
            proxy=None,
            **options,  # type: ignore[arg-type]
        )
    except AddressRefusedError as exc:
        raise UpstreamUnavailableError(
            f"The deployment {deployment.id} points at an address it may not connect to.",
            provider=deployment.provider,
        ) from exc
    except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
        # The exception's text can carry the upstream's answer: logged by type only.
        logger.warning(
            "realtime: deployment %s did not open (%s)", deployment.id, type(exc).__name__
        )
        raise UpstreamUnavailableError(
            f"The Realtime upstream of deployment {deployment.id} could not be reached.",
            provider=deployment.provider,
        ) from exc
