"""Usage events: their format, and where they wait between the gateway and `billing.RequestLog`.

One event per finished /v1 request, keyed by its request id. The gateway writes them (it settles
each request with its event, gateway/governance.py); `billing.services.usage_drain` moves them into
RequestLog in batches, idempotently on the request id. With Redis they wait in the usage stream
(`usage_stream_key`), read through the consumer group `USAGE_GROUP`; events the drain cannot record
go to the dead-letter stream (`usage_dead_stream`). Without Redis (the embedded default: one
process) they wait in this process's buffer (`usage_buffer_*`).
"""

from __future__ import annotations

import os
import socket
import threading
from collections import deque
from typing import Any, NotRequired, TypedDict

import orjson

from ogem_site.hot_settings import hot_settings
from ogem_site.redis import redis_slot_key

USAGE_GROUP = "ogem-usage-drain"


class UsageEvent(TypedDict):
    """What the drain records of one request (billing.services._request_log_from)."""

    request_id: str
    ts: float  # unix time the request arrived
    organization_id: int | None
    team_id: int | None
    key_id: int | None
    user_id: int | None
    end_customer: str
    endpoint: str
    model: str
    provider: str
    deployment: str
    status_code: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: str  # USD, a decimal string
    latency_ms: int
    ttft_ms: NotRequired[int | None]  # streams: time to the first chunk; older events lack it
    stream: bool
    cancelled: bool
    usage_estimated: bool
    cache_hit: bool  # answered by the response cache (gateway/cache.py): no upstream call
    # the cache stage's x-ogem-cache ("hit", "semantic-hit", "miss", "bypass"), "" without
    cache_result: str
    cache_saved_cost: str | None  # a hit: USD the upstream call would have cost, a decimal string
    cache_saved_tokens: int | None  # a hit: the stored answer's tokens
    cache_saved_latency_ms: int | None  # a hit: the stored answer's upstream latency, if known
    tags: list[str]
    batch_id: str  # a line of this batch run by Ogem (docs/batches.md), "" otherwise
    # Guardrail decisions (docs/guardrails.md), only when there were some: {guardrail, phase,
    # action, category, count, confidence} each, never the text that matched.
    guardrails: NotRequired[list[dict[str, Any]]]


def usage_event_encode(event: UsageEvent | dict[str, Any]) -> bytes:
    return orjson.dumps(event)


def usage_event_decode(raw: bytes | str) -> dict[str, Any]:
    return orjson.loads(raw)


def usage_stream_key() -> str:
    """The usage stream of this installation (``OGEM_USAGE_STREAM`` under its key prefix, in the
    hot path's hash slot: the settle script appends to it)."""
    return redis_slot_key(hot_settings().OGEM_USAGE_STREAM)


def usage_dead_stream() -> str:
    """Where the drain moves the events it cannot record (docs/governance.md): beside the usage
    stream, under the same installation prefix (and in its hash slot, for the drain's MULTI)."""
    return f"{usage_stream_key()}-dead"


def usage_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


# ---- In-process buffer (no Redis) ------------------------------------------------------------

_buffer: deque[bytes] = deque()
_buffer_lock = threading.Lock()


def usage_buffer_append(event: bytes) -> None:
    with _buffer_lock:
        _buffer.append(event)


def usage_buffer_take(*, limit: int) -> list[bytes]:
    with _buffer_lock:
        return [_buffer.popleft() for _ in range(min(limit, len(_buffer)))]


def usage_buffer_return(events: list[bytes]) -> None:
    """Put back events a failed flush could not write, ahead of newer ones."""
    with _buffer_lock:
        _buffer.extendleft(reversed(events))


def usage_buffer_size() -> int:
    with _buffer_lock:
        return len(_buffer)
