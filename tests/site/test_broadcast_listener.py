"""The broadcast listener (ogem_site/broadcast.py) outlives a REDIS_URL it cannot read: it
retries as it does a lost connection, and hears publishes once the URL is good again."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import orjson
import pytest

from ogem_site import broadcast
from ogem_site.broadcast import BroadcastTopic, broadcast_listen, broadcast_topic_register
from ogem_site.redis import redis_client

pytestmark = pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis")


async def test_a_bad_redis_url_is_retried_not_the_end_of_the_listener(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good = settings.REDIS_URL
    settings.REDIS_URL = "nope://127.0.0.1:6379/0"  # a scheme redis-py refuses
    heard: list[dict[str, Any]] = []
    name = f"test-{uuid.uuid4().hex[:8]}"

    def receive(message: dict[str, Any]) -> None:
        heard.append(message)

    broadcast_topic_register(BroadcastTopic(name=name, receive=receive))
    loop = asyncio.get_running_loop()
    broadcast._listeners.pop(loop, None)
    broadcast_listen()
    task = broadcast._listeners[loop]
    try:
        await asyncio.sleep(0.3)
        assert not task.done()
        assert "broadcast listener lost Redis; retrying" in caplog.text
        settings.REDIS_URL = good
        deadline = loop.time() + 10
        while not heard and loop.time() < deadline:
            await redis_client().publish(
                broadcast.broadcast_channel(), orjson.dumps({"topic": name, "n": 1})
            )
            await asyncio.sleep(0.2)
        assert heard[0] == {"n": 1}
    finally:
        task.cancel()
        broadcast._listeners.pop(loop, None)
        broadcast._topics.pop(name, None)
