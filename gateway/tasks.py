"""Celery tasks of the gateway: thin wrappers over its services (scheduled by beat)."""

from __future__ import annotations

import asyncio

from celery import shared_task


@shared_task(name="gateway.tasks.routing_health_check", ignore_result=True)
def routing_health_check() -> dict[str, int]:
    return asyncio.run(_health_check())


async def _health_check() -> dict[str, int]:
    from gateway.health import health_check_run
    from providers.http import http_clients_close

    try:
        return await health_check_run()
    finally:
        # This loop ends with the task: close its HTTP session (and Redis pool, if it made one).
        await http_clients_close()
        from django.conf import settings

        if settings.REDIS_URL:
            from gateway.redis import get_redis

            await get_redis().aclose()
