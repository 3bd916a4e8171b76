"""Small pieces the sinks share: timestamps, stable ids, JSON."""

from __future__ import annotations

import datetime
import uuid
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
