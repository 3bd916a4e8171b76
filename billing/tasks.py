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


@shared_task(
    name="billing.tasks.budget_alert_webhook",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=6,
)
def budget_alert_webhook(budget_id: int, spend: str) -> bool:
    from billing.alerts import budget_alert_webhook_send

    return budget_alert_webhook_send(budget_id=budget_id, spend=spend)


@shared_task(
    name="billing.tasks.budget_alert_email",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=6,
)
def budget_alert_email(budget_id: int, spend: str) -> bool:
    from billing.alerts import budget_alert_email_send

    return budget_alert_email_send(budget_id=budget_id, spend=spend)


@shared_task(name="billing.tasks.usage_rollups", ignore_result=True)
def usage_rollups() -> int:
    from billing.rollups import rollups_run

    return len(rollups_run())


@shared_task(name="billing.tasks.request_log_partitions", ignore_result=True)
def request_log_partitions() -> int:
    from billing.partitions import request_log_partitions_ensure, request_log_retention_apply

    return len(request_log_partitions_ensure()) + len(request_log_retention_apply())
