"""Celery tasks of the gateway: thin wrappers over its services (scheduled by beat)."""

from __future__ import annotations

import asyncio

from celery import shared_task
from django.conf import settings


@shared_task(name="gateway.tasks.routing_health_check", ignore_result=True)
def routing_health_check() -> dict[str, int]:
    return asyncio.run(_health_check())


async def _health_check() -> dict[str, int]:
    # Imported on use: they load every adapter and the Redis client (about 0.5 s), which every
    # Celery worker and beat process would pay at start, whatever tasks it runs.
    from gateway.health import health_check_run
    from gateway.redis import get_redis
    from providers.http import http_clients_close

    try:
        return await health_check_run()
    finally:
        # This loop ends with the task: close its HTTP session (and Redis pool, if it made one).
        await http_clients_close()
        if settings.REDIS_URL:
            await get_redis().aclose()
