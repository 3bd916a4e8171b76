"""A tiny local web server serving media, for tests of URLs that Ogem downloads."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from tests.live import free_port

PNG_BYTES = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000000030101001b5f2e8e0000000049454e44ae426082"
)


class MediaServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.paths: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="media-server", daemon=True)

    def start(self) -> MediaServer:
        self._thread.start()
        if not self._started.wait(timeout=10):
            raise RuntimeError("the media server did not start")
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.paths.append(request.path)
        name = request.match_info["name"]
        if name == "pixel.png":
            return web.Response(body=PNG_BYTES, content_type="image/png")
        if name == "big.png":
            return web.Response(body=b"\x89PNG" + b"\x00" * 4096, content_type="image/png")
        if name == "page.html":
            return web.Response(text="<html></html>", content_type="text/html")
        if name == "to-pixel":
            raise web.HTTPFound("/pixel.png")
        if name == "to-metadata":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data")
        if name == "loop":
            raise web.HTTPFound("/loop")
        raise web.HTTPNotFound()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()
