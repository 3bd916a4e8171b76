"""Small pieces the sinks share: timestamps, stable ids, JSON."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

import orjson

from gateway.callbacks.base import CallbackEvent


def iso(seconds: float) -> str:
    """Unix seconds as ISO 8601 in UTC with microseconds: 2026-12-06T12:00:00.123456Z."""
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_uuid(event: CallbackEvent, role: str = "") -> str:
    """A UUID derived from the request id (and a role): a retried batch sends the same ids, so a
    platform that deduplicates by id keeps one copy."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"ogem:{event['request_id']}:{role}"))


def cost_float(event: CallbackEvent) -> float:
    try:
        return float(Decimal(event["cost"] or "0"))
    except (InvalidOperation, ValueError, TypeError):
        return 0.0


def json_bytes(value: object) -> bytes:
    # default=str: a Decimal or another odd value in a request's metadata is sent as text.
    return orjson.dumps(value, default=str)


# A batch's body is one join of its events' JSON: no copy of the whole added for its brackets or
# its last newline (a body of 500 events is some 400 KB).


def events_array(encoded: Sequence[bytes]) -> bytes:
    """A JSON array of encoded values: what orjson makes of the list, byte for byte."""
    if len(encoded) < 2:
        return b"[%b]" % (encoded[0] if encoded else b"")
    return b",".join([b"[" + encoded[0], *encoded[1:-1], encoded[-1] + b"]"])


def events_ndjson(encoded: Sequence[bytes]) -> bytes:
    """JSON Lines: a value a line, each line ended."""
    return b"\n".join([*encoded, b""]) if encoded else b""
