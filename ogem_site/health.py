"""Liveness and readiness as a pure ASGI wrapper: no middleware, session or auth is touched.

Readiness checks the database and, with Redis, pings it. A Redis that does not answer is a
degraded state, not a failure, under OGEM_REDIS_FAILURE_POLICY=open (the worker serves every
request, counting limits and budgets on its own, its usage spooled): 200 with ``"status":
"degraded"``. Under ``closed`` it refuses governed requests, so it is not ready: 503. Either way
the body says what is degraded and since when (`ogem_site.redis.redis_outage_report`); liveness
stays 200 (docs/redis.md). Once `manage.py serve` is stopping, readiness answers 503 "draining"
while the worker still serves (docs/deploy.md, "Stopping").
"""

from __future__ import annotations

from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from ogem_site.asgi_types import ASGIApp, Receive, Scope, Send, asgi_respond
from ogem_site.redis import redis_failed, redis_outage_report, redis_ping
from ogem_site.supervision import draining

# While `manage.py serve` drains before it stops (OGEM_SHUTDOWN_DELAY), so that load balancers
# take this replica out of rotation; the dependencies are not checked.
DRAINING_REPORT: dict[str, Any] = {
    "status": "draining",
    "checks": {"server": "draining: stopping, still serving open and new requests"},
    "failed": ["server"],
}


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()


def liveness_report() -> dict[str, Any]:
    """The process is up (always 200), and what it runs without, if anything (no I/O)."""
    outage = redis_outage_report()
    if outage is None:
        return {"status": "ok"}
    return {"status": "ok", "degraded": {"redis": outage}}


async def readiness_report() -> tuple[int, dict[str, Any]]:
    if draining():
        return 503, DRAINING_REPORT
    checks: dict[str, str] = {}
    try:
        await sync_to_async(_check_database, thread_sensitive=False)()
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
    checks["cache"] = "ok"  # without Redis: this process's memory
    if settings.REDIS_URL:
        try:
            await redis_ping()
        except Exception as exc:
            redis_failed(exc, what="readiness")  # the hot path need not find out on its own
            checks["cache"] = f"failed: {type(exc).__name__}"
    failed = sorted(name for name, state in checks.items() if state != "ok")
    degraded: dict[str, Any] = {}
    outage = redis_outage_report()
    if outage is not None:
        degraded["redis"] = outage
    if failed == ["cache"] and settings.OGEM_REDIS_FAILURE_POLICY == "open":
        failed = []
        degraded.setdefault("redis", {"error": checks["cache"]})
    body: dict[str, Any] = {
        "status": "unavailable" if failed else "degraded" if degraded else "ok",
        "checks": checks,
        "failed": failed,
    }
    if degraded:
        body["degraded"] = degraded
    return (503 if failed else 200), body


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    await asgi_respond(
        send,
        status=status,
        body=orjson.dumps(body),
        headers=[(b"content-type", b"application/json"), (b"cache-control", b"no-store")],
    )


def litellm_readiness(*, status: int, report: dict[str, Any]) -> dict[str, Any]:
    """Ogem's readiness report in LiteLLM's field names (`status`, `db`, `cache`), with Ogem's
    own report beside them."""
    database = report.get("checks", {}).get("database")
    return {
        "status": "healthy" if status == 200 else "unhealthy",
        "db": "connected" if database == "ok" else "Not connected",
        "cache": report.get("checks", {}).get("cache"),
        "ogem": report,
    }


class HealthASGI:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            if path == "/health/live":
                await _send_json(send, 200, liveness_report())
                return
            if path == "/health/ready":
                status, body = await readiness_report()
                await _send_json(send, status, body)
                return
            # LiteLLM's names for the same probes, as its deployments' manifests call them.
            if path == "/health/liveliness":
                await asgi_respond(
                    send,
                    status=200,
                    body=orjson.dumps("I'm alive!"),
                    headers=[(b"content-type", b"application/json")],
                )
                return
            if path == "/health/readiness":
                status, body = await readiness_report()
                await _send_json(send, status, litellm_readiness(status=status, report=body))
                return
        await self.app(scope, receive, send)
