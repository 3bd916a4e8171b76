"""Cross-worker cache invalidation: one Redis pub/sub channel, one publish, one listener.

Every worker process keeps caches in memory (the /v1 key cache, the budget and limit snapshots).
A write that makes an entry stale calls `broadcast_publish(topic=..., message=...)`, after
commit. The module that holds a cache registers its topic when it is imported
(`broadcast_topic_register`): a process without that cache has nothing to forget. A topic's
`receive` runs in every process, the publisher's at once, the others' when the message arrives;
its `resync` runs when a listener (re)subscribes: what was published while it was not listening
is lost, so the topic forgets what it may have missed.

With REDIS_URL unset Ogem is one process and nothing is sent. With it, the messages travel on
`broadcast_channel()` (named by `redis_key`, so installations sharing a Redis never hear each
other) as JSON `{"topic": ..., **message}`; one listener task per event loop, started lazily by
`broadcast_listen()` on the first /v1 request, hands each to its topic's `receive`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings

from ogem_site.redis import redis_client_sync, redis_key, redis_pubsub_client

logger = logging.getLogger(__name__)

Message = dict[str, Any]

# Every topic, named here: publishers and receivers live in different apps.
KEYS = "keys"  # {"prefixes": [...]}: keys changed (revoked, rotated, updated, deleted)
# (keys/cache.py drops the keys' Redis entries before publishing, so no worker refills from them)
GOVERNANCE = "governance"  # {}: budgets or entity limits changed
PRICES = "prices"  # {}: billing.ModelPrice rows changed
TENANTS = "tenants"  # {}: a team or an organization changed (its models, routing metadata)
RESPONSE_CACHE = "response_cache"  # {}: entries purged (gateway/cache.py drops its L1)
# {"op": "add", "entries": [...]} new semantic entries written; {"op": "purge", "organization",
# "scope", "namespace"} entries deleted (gateway/semantic.py updates its vector indexes)
SEMANTIC_CACHE = "semantic_cache"


@dataclass(frozen=True, slots=True)
class BroadcastTopic:
    name: str
    receive: Callable[[Message], None]
    resync: Callable[[], None] | None = None


# Topic name -> its receivers: one per module that holds a cache (or open sessions) to forget.
_topics: dict[str, list[BroadcastTopic]] = {}


def broadcast_topic_register(topic: BroadcastTopic) -> None:
    receivers = _topics.setdefault(topic.name, [])
    # Registered once per module: a re-import (tests) replaces its earlier registration.
    receivers[:] = [r for r in receivers if r.receive.__module__ != topic.receive.__module__]
    receivers.append(topic)


def broadcast_channel() -> str:
    """The one pub/sub channel of this installation (channels ignore the Redis db: the prefix
    alone keeps installations apart)."""
    return redis_key("broadcast")


def broadcast_publish(*, topic: str, message: Message | None = None) -> None:
    """Apply `message` here and tell every other worker (synchronous: call it on commit)."""
    message = message or {}
    for registered in _topics.get(topic, ()):
        registered.receive(message)
    if not settings.REDIS_URL:
        return
    try:
        redis_client_sync().publish(broadcast_channel(), orjson.dumps({**message, "topic": topic}))
    except Exception:
        logger.warning("could not broadcast %s; workers catch up within their TTL", topic)


def _dispatch(raw: bytes) -> None:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return
    if not isinstance(message, dict):
        return
    for registered in _topics.get(str(message.pop("topic", "")), ()):
        registered.receive(message)


def _resync() -> None:
    for receivers in list(_topics.values()):
        for topic in receivers:
            if topic.resync is not None:
                topic.resync()


_listeners: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def broadcast_listen() -> None:
    """Start this event loop's listener once (a no-op once it runs). Needs REDIS_URL."""
    loop = asyncio.get_running_loop()
    task = _listeners.get(loop)
    if task is None or task.done():
        _listeners[loop] = loop.create_task(_listen(), name="ogem-broadcast")


async def _listen() -> None:
    delay = 0.1
    while True:
        client: Any = None
        pubsub: Any = None
        try:
            # The factory's subscription client: it connects within the connect timeout (a
            # Cluster: one seed node, which receives every node's publishes) and waits for
            # messages forever. Made inside the retry: a REDIS_URL it cannot read (changed by a
            # reload) is retried like a lost connection, not the end of the listener.
            client = redis_pubsub_client()
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            await pubsub.subscribe(broadcast_channel())
            # Anything published while we were not listening is lost: start clean.
            _resync()
            delay = 0.1
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    _dispatch(message["data"])
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.warning("broadcast listener lost Redis; retrying")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        finally:
            try:
                if pubsub is not None:
                    await pubsub.aclose()
                if client is not None:
                    await client.aclose()
            except Exception:
                logger.debug("broadcast: error closing the listener")
