"""Celery tasks of the gateway: thin wrappers over its services (scheduled by beat)."""

from __future__ import annotations

import asyncio

from celery import shared_task


@shared_task(name="gateway.tasks.routing_health_check", ignore_result=True)
def routing_health_check() -> dict[str, int]:
    return asyncio.run(_health_check())


async def _health_check() -> dict[str, int]:
    # Imported on use: they load every adapter and the Redis client (about 0.5 s), which every
    # Celery worker and beat process would pay at start, whatever tasks it runs.
    from gateway.health import health_check_run
    from ogem_site.redis import redis_clients_close
    from providers.http import http_clients_close

    try:
        return await health_check_run()
    finally:
        # This loop ends with the task: close its HTTP session (and Redis clients, if it made any).
        await http_clients_close()
        await redis_clients_close()


@shared_task(name="gateway.tasks.usage_spool_replay", ignore_result=True)
def usage_spool_replay() -> int:
    """Replay the usage spools of web workers that died on this host (gateway/spool.py)."""
    from gateway.spool import usage_spool_replay as spool_replay  # on use, like the above

    return spool_replay()


@shared_task(name="gateway.tasks.semantic_cache_expire", ignore_result=True)
def semantic_cache_expire() -> int:
    """Delete expired semantic cache entries and those past their namespace's bound
    (gateway/semantic.py; idempotent)."""
    # On use, like the above: the configuration says the bound.
    from datetime import UTC, datetime

    from gateway.config import config_current
    from gateway.registry import registry_get
    from gateway.services import semantic_cache_expire as expire

    registry_get()  # a process that has not served /v1 loads its configuration here
    cache = config_current().cache
    semantic = cache.semantic if cache is not None else None
    return expire(now=datetime.now(tz=UTC), max_entries=semantic.max_entries if semantic else None)


@shared_task(name="gateway.tasks.alerts_evaluate", ignore_result=True)
def alerts_evaluate() -> dict[str, int]:
    """Alert rules: open and resolve incidents, send pending notifications (idempotent)."""
    from gateway.alerting import alerts_evaluate as evaluate  # on use, like the above

    return evaluate()


@shared_task(name="gateway.tasks.debug_captures_purge", ignore_result=True)
def debug_captures_purge() -> int:
    """Delete request-debugging captures past their retention (idempotent)."""
    from gateway.services import debug_captures_purge as purge

    return purge(now=None)
