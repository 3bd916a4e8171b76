"""Celery tasks of billing: thin wrappers over billing.services (scheduled by beat)."""

from __future__ import annotations

from celery import shared_task

from billing import services


@shared_task(name="billing.tasks.usage_drain", ignore_result=True)
def usage_drain() -> int:
    return services.usage_drain()


@shared_task(name="billing.tasks.budget_periods_reset", ignore_result=True)
def budget_periods_reset() -> int:
    return services.budget_periods_reset()
