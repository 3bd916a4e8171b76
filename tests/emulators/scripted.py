"""The common machinery of the single-provider emulators: an aiohttp app on a real socket in a
thread, a request log, and a queue of scripted replies (answers or faults) the handlers consume.

Provider emulators subclass `ScriptedEmulator`, add their routes in `routes()` and validate
requests the way their API does; tests script replies and assert on `requests`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.live import free_port


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, else the raw bytes
    raw: bytes = b""


@dataclass
class Fault:
    """An error answer: status, body (JSON-encoded unless bytes) and headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        raw = self.body if isinstance(self.body, bytes) else orjson.dumps(self.body)
        return web.Response(
            status=self.status, body=raw, content_type="application/json", headers=self.headers
        )


class ScriptedEmulator:
    name = "emulator"

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: deque[Any] = deque()
        self._lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    # -- test API --------------------------------------------------------------------------
    def start(self) -> ScriptedEmulator:
        self._thread.start()
        if not self._started.wait(timeout=10):
            raise RuntimeError(f"the {self.name} did not start")
        return self

    def script(self, *replies: Any) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def bodies(self, path: str) -> list[Any]:
        return [r.body for r in self.requests if r.path == path]

    # -- for handlers ----------------------------------------------------------------------
    def next_reply(self) -> Any:
        """The next scripted reply, or None for the emulator's default answer."""
        with self._lock:
            return self._script.popleft() if self._script else None

    async def receive(self, request: web.Request) -> Received:
        raw = await request.read()
        body: Any = raw
        if raw and request.content_type == "application/json":
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = raw
        received = Received(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            raw=raw,
        )
        with self._lock:
            self.requests.append(received)
        return received

    # -- server ----------------------------------------------------------------------------
    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = web.Application(client_max_size=40 * 1024 * 1024)
        self.routes(app)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._started.set()
        loop.run_forever()


def json_response(payload: Any, *, status: int = 200, **headers: str) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(payload), content_type="application/json", headers=headers
    )
