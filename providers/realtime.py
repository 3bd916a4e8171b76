"""A Realtime API WebSocket to a deployment, at the address its adapter names
(`realtime_target`: OpenAI's and Azure OpenAI's forms). The gateway relays sessions over it
(gateway/realtime/) and health checks open one to see the upstream answer."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote, urlsplit

import websockets
from websockets.asyncio.client import ClientConnection

from providers.adapter import ProviderAdapter
from providers.addresses import AddressRefusedError, addresses_resolve
from providers.base import Deployment
from providers.errors import UpstreamError, UpstreamUnavailableError
from providers.gemini.live import LiveConnection

logger = logging.getLogger(__name__)

# What the relay talks to: an OpenAI-protocol WebSocket, or a Live API one behind its translation.
RealtimeUpstream = ClientConnection | LiveConnection


async def realtime_connect(
    *,
    adapter: ProviderAdapter,
    deployment: Deployment,
    beta: bool,
    open_timeout: float,
    call_id: str | None = None,
) -> RealtimeUpstream:
    """An open WebSocket (a Gemini Live API one wrapped in its translation; with `call_id`, the
    sideband of that WebRTC call: `?call_id=` instead of `?model=`); raises
    UpstreamUnavailableError (naming no secret) when it cannot."""
    live_model = adapter.realtime_live_model(deployment)
    options: dict[str, object] = {}
    try:
        url, headers = await adapter.realtime_address(deployment)
        if call_id is not None:
            url = f"{url.partition('?')[0]}?call_id={quote(call_id, safe='')}"
        if beta and live_model is None:
            headers = {**headers, "OpenAI-Beta": "realtime=v1"}
        if deployment.address_policy is not None:
            # An organization's deployment: connect only to an address its policy allows.
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "wss" else 80)
            addresses = await addresses_resolve(
                parts.hostname or "", port, policy=deployment.address_policy
            )
            options = {"host": addresses[0][0], "port": addresses[0][1]}
        connection = await websockets.connect(
            url,
            additional_headers=headers,
            open_timeout=open_timeout,
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
    if live_model is not None:  # Gemini's Live API, translated to OpenAI's protocol
        return LiveConnection(
            connection, model=live_model, upstream_model=deployment.upstream_model, beta=beta
        )
    return connection


async def realtime_probe(
    *, adapter: ProviderAdapter, deployment: Deployment, seconds: float
) -> None:
    """Open a session and wait for its `session.created`; raises UpstreamError when the upstream
    does not get that far within `seconds` (each step)."""
    connection = await realtime_connect(
        adapter=adapter, deployment=deployment, beta=False, open_timeout=seconds
    )
    try:
        first = await asyncio.wait_for(connection.recv(), seconds)
    except (TimeoutError, websockets.ConnectionClosed) as exc:
        raise UpstreamUnavailableError(
            f"The Realtime upstream of deployment {deployment.id} opened no session.",
            provider=deployment.provider,
        ) from exc
    finally:
        await connection.close()
    if '"session.created"' not in str(first):
        raise UpstreamError(
            f"The Realtime upstream of deployment {deployment.id} did not open a session.",
            provider=deployment.provider,
        )
