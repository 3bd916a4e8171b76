"""A live Ogem server on a real socket, in a thread of the test process.

It serves the real ASGI application (health wrapper, Django, Ninja, Channels) with uvicorn, so
tests exercise what `make run` serves. Tests that use it need committed data (transactional_db).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import uvicorn

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _ThreadServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass


@dataclass
class LiveServer:
    url: str
    server: _ThreadServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_live_server(app: object) -> LiveServer:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        loop="asyncio",
        http="h11",
        ws="websockets-sansio",
    )
    server = _ThreadServer(config)

    def run() -> None:
        asyncio.run(server.serve())

    thread = threading.Thread(target=run, name=f"ogem-live-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("live Ogem server did not start")
        time.sleep(0.01)
    return LiveServer(url=f"http://127.0.0.1:{port}", server=server, thread=thread)


def usage_record_now() -> None:
    """Usage is accounted after the response: write it now, as the worker or the flush would."""
    from django.conf import settings

    from billing.services import usage_buffer_flush, usage_drain

    if settings.REDIS_URL:
        usage_drain()
    else:
        usage_buffer_flush()


def broadcast_listening(timeout: float = 30.0) -> None:
    """Wait until this process's broadcast listener (started by the first /v1 request or
    Realtime session) hears the channel: a probe is published until it arrives, so a test never
    guesses how long the subscription takes on a busy machine."""
    import orjson

    from ogem_site.broadcast import BroadcastTopic, broadcast_channel, broadcast_topic_register
    from ogem_site.redis import redis_client_sync

    heard = threading.Event()
    broadcast_topic_register(BroadcastTopic("test-probe", lambda message: heard.set()))
    deadline = time.monotonic() + timeout
    while not heard.is_set():
        assert time.monotonic() < deadline, "the broadcast listener never subscribed"
        redis_client_sync().publish(broadcast_channel(), orjson.dumps({"topic": "test-probe"}))
        heard.wait(0.05)


def wait_for(
    condition: Callable[[], T], *, what: str, timeout: float = 30.0, every: float = 0.02
) -> T:
    """`condition()` once it is true, polled every `every` s: a test waits for the event
    itself, never a guessed time, and fails naming `what` when it does not come in time."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)
    return value
