"""Request queuing: when every deployment of a group is cooling down (429 Retry-After, open
circuits) or at its own rpm/tpm limits (gateway.capacity), a request waits in a bounded,
prioritised queue instead of failing at once.

One queue per model group and process. Waiters leave in order of priority (lower first: the
caller's `priority`, from its key's metadata, else its team's, else its organization's; default
100), then of arrival. Only the head of the queue looks for a deployment, and takes it when one
can serve, so a high-priority request is never overtaken. A waiter gives up at `queue_timeout`; a
full queue (`queue_depth`) refuses newcomers at once. Depth and waits are the
`ogem_routing_queue_depth` and `ogem_routing_queue_wait_seconds` metrics.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable

from gateway.context import Caller
from ogem_site.metrics import ROUTING_QUEUE_DEPTH, ROUTING_QUEUE_WAIT

DEFAULT_PRIORITY = 100

_queues: dict[str, list[tuple[int, int]]] = {}
_sequence = itertools.count()


def queue_priority(*, caller: Caller) -> int:
    return caller.priority if caller.priority is not None else DEFAULT_PRIORITY


def queue_depth(group: str) -> int:
    return len(_queues.get(group, ()))


async def queue_wait(
    *,
    group: str,
    priority: int,
    patience: float,
    depth: int,
    ready: Callable[[], Awaitable[float]],
) -> bool:
    """Wait until `ready()` returns 0 (a deployment is free) while at the head of the queue.

    `ready` returns the seconds until a deployment may be free. False: the queue was full or
    `patience` seconds passed first.
    """

    queue = _queues.setdefault(group, [])
    if len(queue) >= depth:
        ROUTING_QUEUE_WAIT.labels(model=group, outcome="rejected").observe(0)
        return False
    me = (priority, next(_sequence))
    heapq.heappush(queue, me)
    ROUTING_QUEUE_DEPTH.labels(model=group).inc()
    started = time.monotonic()
    deadline = started + patience
    outcome = "timeout"
    try:
        while True:
            pause = 0.02
            if queue[0] == me:
                wait = await ready()
                if wait <= 0:
                    outcome = "served"
                    return True
                pause = min(max(wait, 0.01), 0.25)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(pause, remaining))
    finally:
        queue.remove(me)
        heapq.heapify(queue)
        ROUTING_QUEUE_DEPTH.labels(model=group).dec()
        ROUTING_QUEUE_WAIT.labels(model=group, outcome=outcome).observe(time.monotonic() - started)
