"""Liveness and readiness as a pure ASGI wrapper: no middleware, session or auth is touched."""

from __future__ import annotations

from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from gateway.redis import get_redis
from ogem_site.asgi_types import ASGIApp, Receive, Scope, Send


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


async def _check_cache() -> None:
    if not settings.REDIS_URL:
        return

    await get_redis().ping()


async def readiness_report() -> tuple[int, dict[str, Any]]:
    checks: dict[str, str] = {}
    try:
        await sync_to_async(_check_database, thread_sensitive=False)()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
    try:
        await _check_cache()
        checks["cache"] = "ok"
    except Exception as exc:
        checks["cache"] = f"failed: {type(exc).__name__}"
    failed = sorted(name for name, state in checks.items() if state != "ok")
    status = 503 if failed else 200
    return status, {
        "status": "ok" if not failed else "unavailable",
        "checks": checks,
        "failed": failed,
    }


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class HealthASGI:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/health/live":
                await _send_json(send, 200, {"status": "ok"})
                return
            if path == "/health/ready":
                status, body = await readiness_report()
                await _send_json(send, status, body)
                return
        await self.app(scope, receive, send)
