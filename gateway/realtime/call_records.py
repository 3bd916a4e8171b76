"""WebRTC calls set up through Ogem, as the gateway keeps them (gateway.RealtimeCall): recorded
when the upstream answers the offer, found again by a sideband WebSocket or a hang-up, ended
once (its concurrent-session slots freed then)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asgiref.sync import sync_to_async
from django.conf import settings

from gateway.context import Caller, RequestContext
from gateway.governance import SessionHold, session_release
from gateway.realtime.slots import session_slots
from providers.base import Endpoint


@dataclass(frozen=True, slots=True)
class CallRef:
    call_id: str
    key_id: int | None  # None: the master key's
    model: str
    deployment_id: str
    hold_id: str  # the request id its slots were taken under
    hold_bucket: int
    hold_local: bool

    def owned_by(self, caller: Caller) -> bool:
        """Only the key that set the call up (or the master key) may join or end it."""
        return caller.is_master or (caller.key_id is not None and caller.key_id == self.key_id)


def call_id_from_location(location: str | None) -> str:
    """The call id OpenAI's `Location` names (`/v1/realtime/calls/rtc_...`)."""
    return (location or "").rstrip("/").rpartition("/")[2]


async def call_record(
    *, call_id: str, caller: Caller, model: str, deployment_id: str, hold_id: str, hold: SessionHold
) -> None:
    await sync_to_async(_record, thread_sensitive=False)(
        CallRef(
            call_id=call_id,
            key_id=caller.key_id,
            model=model,
            deployment_id=deployment_id,
            hold_id=hold_id,
            hold_bucket=hold.bucket,
            hold_local=hold.local,
        )
    )


def _record(call: CallRef) -> None:
    from django.db import close_old_connections, connection

    from gateway.services import realtime_call_create

    close_old_connections()
    try:
        now = datetime.now(UTC)
        realtime_call_create(
            call_id=call.call_id,
            key_id=call.key_id,
            model=call.model,
            deployment_id=call.deployment_id,
            hold_id=call.hold_id,
            hold_bucket=call.hold_bucket,
            hold_local=call.hold_local,
            # The call's slots expire then too (OpenAI ends a session within the hour).
            expires_at=now + timedelta(seconds=settings.OGEM_REALTIME_MAX_SECONDS + 60),
            now=now,
        )
    finally:
        connection.close()


async def call_find(call_id: str) -> CallRef | None:
    """The call while it may still run, else None."""
    return await sync_to_async(_find, thread_sensitive=False)(call_id)


def _find(call_id: str) -> CallRef | None:
    from django.db import close_old_connections, connection

    from gateway.selectors import realtime_call_get

    close_old_connections()
    try:
        row = realtime_call_get(call_id=call_id, now=datetime.now(UTC))
        if row is None:
            return None
        return CallRef(
            call_id=row.call_id,
            key_id=row.key_id,
            model=row.model,
            deployment_id=row.deployment_id,
            hold_id=row.hold_id,
            hold_bucket=row.hold_bucket,
            hold_local=row.hold_local,
        )
    finally:
        connection.close()


async def call_end(call: CallRef, *, caller: Caller) -> None:
    """The call is over: marked ended and its concurrent-session slots freed (once, whoever
    saw it end first)."""
    ended = await sync_to_async(_end, thread_sensitive=False)(call.call_id)
    if not ended:
        return
    ctx = RequestContext(request_id=call.hold_id, endpoint=Endpoint.REALTIME, caller=caller)
    hold = SessionHold(rules=session_slots(ctx), bucket=call.hold_bucket, local=call.hold_local)
    await session_release(ctx, hold)


def _end(call_id: str) -> bool:
    from django.db import close_old_connections, connection

    from gateway.services import realtime_call_end

    close_old_connections()
    try:
        return realtime_call_end(call_id=call_id, now=datetime.now(UTC))
    finally:
        connection.close()
