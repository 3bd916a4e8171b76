"""The lease of a worker process: what its parallel-request slots belong to.

Every web worker process that takes a parallel slot (gateway.limits, rule kind ``p``) names itself
with a lease id and keeps it alive in one Redis sorted set (`leases_key`: lease id -> expiry,
unix ms), refreshed in the background every ``OGEM_WORKER_LEASE_TTL`` / 2.5 seconds. A slot is
recorded as ``<lease>|<request id>``; when an admission would refuse for lack of slots, the
admission script frees the slots whose lease has expired (a SIGKILLed or frozen worker) in the
same round trip. So a crashed worker's slots come back within seconds of its death, not after
``OGEM_PARALLEL_SLOT_TTL``. Requests pay nothing for this: the refresh is one background write per
worker every two seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

from django.conf import settings

from ogem_site.redis import redis_client_sync, redis_slot_key

logger = logging.getLogger(__name__)

# A slot whose lease is not in the set is freed once this old: past a new worker's first refresh
# (a few milliseconds), or a lease forgotten after its worker died.
LEASE_UNKNOWN_GRACE_MS = 10_000
# A lease gone from the set for this long is forgotten (its slots are then judged by their age).
_FORGET_MS = 60_000
# The set itself outlives the last worker by a day.
_SET_TTL_MS = 24 * 3600 * 1000


class _Lease:
    id = uuid.uuid4().hex[:16]
    refreshers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def _lease_renew_after_fork() -> None:
    # A forked worker is a different worker: its own id, its own refresh.
    _Lease.id = uuid.uuid4().hex[:16]
    _Lease.refreshers = {}


os.register_at_fork(after_in_child=_lease_renew_after_fork)


def leases_key() -> str:
    return redis_slot_key("leases")  # the admission script reads it beside the slots


def worker_lease_id() -> str:
    """This process's lease id (settling a slot names it again)."""
    return _Lease.id


def worker_lease() -> str:
    """This process's lease id, its refresh running on the current event loop."""
    loop = asyncio.get_running_loop()
    task = _Lease.refreshers.get(loop)
    if task is None or task.done():
        _Lease.refreshers[loop] = loop.create_task(_lease_refresh(), name="ogem-worker-lease")
    return _Lease.id


async def _lease_refresh() -> None:
    ttl_ms = settings.OGEM_WORKER_LEASE_TTL * 1000
    while True:
        try:
            # In a thread: cancelling the refresh (its event loop shutting down) then never waits
            # on an asyncio Redis connection being torn down; the write itself ends within the
            # client's timeouts (ogem_site.redis).
            await asyncio.to_thread(_lease_write, now=int(time.time() * 1000), ttl_ms=ttl_ms)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("worker lease: Redis unavailable; retrying")
        await asyncio.sleep(ttl_ms / 2500)


def _lease_write(*, now: int, ttl_ms: int) -> None:
    pipe = redis_client_sync().pipeline(transaction=False)
    pipe.zadd(leases_key(), {_Lease.id: now + ttl_ms})
    pipe.zremrangebyscore(leases_key(), "-inf", now - _FORGET_MS)
    pipe.pexpire(leases_key(), _SET_TTL_MS)
    pipe.execute()
