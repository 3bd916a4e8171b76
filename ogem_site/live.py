"""Live updates for the portal, over the Channels layer (channels-redis in production, the
in-memory layer in the embedded default and on a Redis Cluster, where they reach the process's
own pages only: the portal falls back to polling).

A change is published to the groups of the tenants that may see it: its organization's, its
team's, its owner's (the user whose key made it) and the proxy admins'. The portal's WebSocket
consumer (ogem_site/portal/consumers.py) joins only the groups of its user's own organizations,
teams and self, so a tenant never hears another's. Events (each a Channels message whose `type`
is `live.event`, the event in `event`):

- `{"type": "batch.progress", "batch_id", "status", "request_counts": {total, completed,
  failed}}`: from the batch runner after each chunk and at every status change;
- `{"type": "vector_store.progress", "vector_store_id", "status", "file_counts": {in_progress,
  completed, cancelled, failed, total}}`: as a store's files are attached and indexed;
- `{"type": "key.usage", "key_id", "requests", "prompt_tokens", "completion_tokens", "cost"}`:
  what the usage drain just recorded for a key (a delta, per drained batch).

Publishing is best effort and cheap: one `group_send` per group, after the change committed;
a layer that cannot be reached is logged and skipped (the page's polling shows the change).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

logger = logging.getLogger(__name__)

EVENT_TYPE = "live.event"
ADMIN_GROUP = "portal.admins"

# The in-memory layer's queues belong to the event loop of the consumers that read them: a
# message from another thread is handed to that loop (the embedded default serves one).
_home_loop: asyncio.AbstractEventLoop | None = None
_home_lock = threading.Lock()


def live_group_names(
    *, organization_id: int | None, team_id: int | None, user_id: int | None
) -> list[str]:
    """The groups an event about this tenant goes to (group names: ASCII, dots allowed)."""
    names = [ADMIN_GROUP]
    if organization_id is not None:
        names.append(f"portal.org.{organization_id}")
    if team_id is not None:
        names.append(f"portal.team.{team_id}")
    if user_id is not None:
        names.append(f"portal.user.{user_id}")
    return names


def live_home_loop_set(loop: asyncio.AbstractEventLoop) -> None:
    """Called by a consumer as it connects: where in-memory messages must be sent from."""
    global _home_loop
    with _home_lock:
        _home_loop = loop


async def _send(messages: list[tuple[list[str], dict[str, Any]]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for groups, message in messages:
        for group in groups:
            await layer.group_send(group, message)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    event: dict[str, Any]
    organization_id: int | None
    team_id: int | None
    user_id: int | None


def live_publish(
    *,
    event: dict[str, Any],
    organization_id: int | None,
    team_id: int | None,
    user_id: int | None,
) -> None:
    """Send `event` to the groups that may see it (synchronous; call it after commit)."""
    live_publish_many(
        events=[
            LiveEvent(
                event=event, organization_id=organization_id, team_id=team_id, user_id=user_id
            )
        ]
    )


def live_publish_many(*, events: list[LiveEvent]) -> None:
    """Send several events in one go (one connection to the layer, not one per event)."""
    if not events:
        return
    messages = [
        (
            live_group_names(
                organization_id=item.organization_id, team_id=item.team_id, user_id=item.user_id
            ),
            {"type": EVENT_TYPE, "event": item.event},
        )
        for item in events
    ]
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if isinstance(layer, InMemoryChannelLayer):
            loop = _home_loop
            if loop is None or loop.is_closed():
                return  # no page is listening in this process
            if running is loop:
                loop.create_task(_send(messages))
            else:  # fire and forget: the publisher never waits for the pages
                asyncio.run_coroutine_threadsafe(_send(messages), loop)
        elif running is not None:
            running.create_task(_send(messages))
        else:
            async_to_sync(_send)(messages)
    except Exception:
        logger.warning("%d live updates not published", len(events), exc_info=True)
