"""A vendor's WebSocket endpoint on a free local port, served by `websockets` in a thread of its
own (the Realtime and Gemini Live emulators): the subclass accepts or refuses the handshake in
`_process_request` and speaks the vendor's protocol in `_handler`."""

from __future__ import annotations

import asyncio
import threading
from typing import Self

from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response


class WebSocketEmulator:
    thread_name = "websocket-emulator"

    def __init__(self) -> None:
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        ready = threading.Event()

        async def main() -> None:
            self._stop = asyncio.Event()
            async with serve(
                self._handler,
                "127.0.0.1",
                0,
                process_request=self._process_request,
                max_size=None,
                compression=None,
            ) as server:
                port = next(iter(server.sockets)).getsockname()[1]
                self.url = f"http://127.0.0.1:{port}"
                ready.set()
                await self._stop.wait()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(main())
            loop.close()

        self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10)
