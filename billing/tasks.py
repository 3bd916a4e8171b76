"""Celery tasks of billing: thin wrappers over billing.services (scheduled by beat). The budget
alerts' tasks, which billing.services enqueues, live beside their senders in billing/alerts.py."""

from __future__ import annotations

from celery import shared_task

from billing import services
from billing.partitions import request_log_partitions_ensure, request_log_retention_apply
from billing.rollups import rollups_run


@shared_task(name="billing.tasks.usage_drain", ignore_result=True)
def usage_drain() -> int:
    return services.usage_drain()


@shared_task(name="billing.tasks.budget_periods_reset", ignore_result=True)
def budget_periods_reset() -> int:
    return services.budget_periods_reset()


@shared_task(name="billing.tasks.usage_rollups", ignore_result=True)
def usage_rollups() -> int:
    return len(rollups_run())


@shared_task(name="billing.tasks.request_log_partitions", ignore_result=True)
def request_log_partitions() -> int:
    return len(request_log_partitions_ensure()) + len(request_log_retention_apply())
