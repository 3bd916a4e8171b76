"""Gauges of the gateway's state in Redis, read at every /metrics scrape."""

from __future__ import annotations

from django.conf import settings

from billing.usage import usage_dead_stream, usage_stream_key
from ogem_site.redis import redis_client, redis_outage


async def _stream_length_render(*, stream: str, name: bytes, description: bytes) -> bytes:
    """A Redis stream's length as a gauge, read at scrape time (one number for the whole
    installation, whichever worker answers). Nothing without Redis, or while it is away or does
    not answer within OGEM_REDIS_TIMEOUT."""
    if not settings.REDIS_URL or redis_outage.down:
        return b""
    try:
        length = await redis_client().xlen(stream)  # within the client's timeouts
    except Exception:  # a scrape must answer even with Redis away
        return b""
    return b"# HELP %s %s\n# TYPE %s gauge\n%s %d\n" % (name, description, name, name, length)


async def usage_streams_render() -> bytes:
    """The usage events not yet drained into PostgreSQL, and those the drain could not record,
    waiting in the dead-letter stream for an operator (alert when above zero). ogem_site.asgi
    passes it to the /metrics wrapper."""
    backlog = await _stream_length_render(
        stream=usage_stream_key(),
        name=b"ogem_usage_stream_backlog",
        description=b"Usage events in Redis not yet drained into PostgreSQL.",
    )
    dead = await _stream_length_render(
        stream=usage_dead_stream(),
        name=b"ogem_usage_dead_letter_backlog",
        description=b"Usage events the drain could not record, in the dead-letter stream.",
    )
    return backlog + dead
