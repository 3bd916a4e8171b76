"""The concurrent-session slots of a Realtime session or WebRTC call: one rule per limit of the
caller's key, team and organization (`max_realtime_sessions`)."""

from __future__ import annotations

from django.conf import settings

from gateway.context import RequestContext
from gateway.governance import session_rules
from gateway.limits import Rule


def session_slots(ctx: RequestContext) -> list[Rule]:
    """The concurrent-session rules of the caller's key, team and organization."""
    caller = ctx.caller
    ids = {"key": caller.key_id, "team": caller.team_id, "organization": caller.organization_id}
    limits = [
        (scope, target, limit)
        for scope, limit in caller.realtime_sessions.items()
        if (target := ids.get(scope)) is not None
    ]
    return session_rules(
        ctx=ctx, limits=limits, lifetime_seconds=settings.OGEM_REALTIME_MAX_SECONDS + 60
    )


def call_sideband_slot(ctx: RequestContext, *, call_id: str) -> list[Rule]:
    """One governed sideband per call at a time: a second one would see (and bill) every
    response of the call again."""
    return session_rules(
        ctx=ctx,
        limits=[("call", call_id, 1)],
        lifetime_seconds=settings.OGEM_REALTIME_MAX_SECONDS + 60,
    )
