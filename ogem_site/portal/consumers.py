"""The portal's live updates WebSocket (`/portal/ws/live`): a signed-in user's page joins the
Channels groups of the user's own organizations, teams and self (a proxy admin: every tenant's)
and receives the events ogem_site/live.py describes, as JSON text frames.

Authenticated by the portal session cookie (Channels' AuthMiddlewareStack) and reachable only
from the portal's own origin (AllowedHostsOriginValidator, ogem_site/asgi.py): a page of another
site cannot open it with the user's cookie. Anonymous: refused (the handshake is answered
403). The client sends nothing; what it sends is ignored.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from ogem_site.live import ADMIN_GROUP, live_home_loop_set
from tenants.selectors import (
    principal_for_user,
    principal_org_read_ids,
    principal_team_read_ids,
)


def live_groups_for_user(*, user: Any) -> list[str]:
    """The groups a user's page may join: never another tenant's."""
    principal = principal_for_user(user=user)
    if principal.is_proxy_admin:
        return [ADMIN_GROUP]
    groups = [f"portal.org.{org}" for org in sorted(principal_org_read_ids(principal=principal))]
    groups += [
        f"portal.team.{team}" for team in sorted(principal_team_read_ids(principal=principal))
    ]
    groups.append(f"portal.user.{user.pk}")
    return groups


class PortalLiveConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            await self.close()  # before accept: the handshake is refused (403)
            return
        live_home_loop_set(asyncio.get_running_loop())
        self.groups_joined = await database_sync_to_async(live_groups_for_user)(user=user)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        return  # the page only listens

    async def live_event(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])
