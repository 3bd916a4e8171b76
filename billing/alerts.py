"""Soft-budget alerts: a signed webhook and an email, sent once per budget period.

The webhook is a JSON POST to `OGEM_ALERT_WEBHOOK_URL`. It is signed like Stripe's: the header
`X-Ogem-Signature: sha256=<hex>` is HMAC-SHA256 over `<X-Ogem-Timestamp>.<body>` with
`OGEM_ALERT_WEBHOOK_SECRET`, so a receiver can check both origin and freshness. The email goes to
`OGEM_ALERT_EMAILS`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from decimal import Decimal
from typing import Any

import httpx
import orjson
from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from billing.models import SCOPE_FIELDS, Budget
from keys.budgets import usd_str

EVENT = "budget.soft_limit_reached"


class AlertDeliveryError(Exception):
    """The webhook answered something other than 2xx; the task retries."""


def alert_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def alert_payload(*, budget: Budget, spend: Decimal) -> dict[str, Any]:
    field = SCOPE_FIELDS[budget.scope]
    target = getattr(budget, field)
    return {
        "event": EVENT,
        "budget": {
            "id": budget.pk,
            "scope": budget.scope,
            "target_id": getattr(budget, f"{field}_id"),
            "target": str(target) if target is not None else "",
            "soft_budget": None if budget.soft_budget is None else usd_str(budget.soft_budget),
            "max_budget": None if budget.max_budget is None else usd_str(budget.max_budget),
            "duration": budget.duration or None,
            "period_started_at": budget.period_started_at.isoformat()
            if budget.period_started_at
            else None,
            "reset_at": budget.reset_at.isoformat() if budget.reset_at else None,
        },
        "spend": usd_str(spend),
    }


def budget_alert_webhook_send(*, budget_id: int, spend: str) -> bool:
    """POST the alert to the webhook; False when none is configured or the budget is gone."""
    url = settings.OGEM_ALERT_WEBHOOK_URL
    budget = Budget.objects.filter(pk=budget_id).select_related(*SCOPE_FIELDS.values()).first()
    if not url or budget is None:
        return False
    body = orjson.dumps(alert_payload(budget=budget, spend=Decimal(spend)))
    alert_webhook_post(
        url=url, secret=settings.OGEM_ALERT_WEBHOOK_SECRET, event=EVENT, body=body, timeout=10.0
    )
    return True


def alert_webhook_post(*, url: str, secret: str, event: str, body: bytes, timeout: float) -> None:
    """POST a signed alert (budget alerts, billing/incidents.py's); AlertDeliveryError unless
    the receiver answers 2xx."""
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Ogem-Alerts",
        "X-Ogem-Event": event,
        "X-Ogem-Timestamp": timestamp,
    }
    if secret:
        headers["X-Ogem-Signature"] = alert_signature(secret=secret, timestamp=timestamp, body=body)
    response = httpx.post(url, content=body, headers=headers, timeout=timeout)
    if not response.is_success:
        raise AlertDeliveryError(f"alert webhook answered {response.status_code}")


def budget_alert_email_send(*, budget_id: int, spend: str) -> bool:
    """Email the alert; False when no recipient is configured or the budget is gone."""
    recipients = list(settings.OGEM_ALERT_EMAILS)
    budget = Budget.objects.filter(pk=budget_id).select_related(*SCOPE_FIELDS.values()).first()
    if not recipients or budget is None:
        return False
    payload = alert_payload(budget=budget, spend=Decimal(spend))
    details = payload["budget"]
    subject = f"[Ogem] {budget.get_scope_display()} budget: soft limit reached"
    lines = [
        f"The {details['scope']} budget of {details['target']} (budget #{budget.pk}) has reached "
        "its soft limit.",
        "",
        f"Spend this period: ${payload['spend']}",
        f"Soft limit: ${details['soft_budget']}",
        f"Hard limit: {'$' + details['max_budget'] if details['max_budget'] else 'none'}",
        f"Period started: {details['period_started_at'] or '-'}",
        f"Next reset: {details['reset_at'] or 'none'}",
    ]
    send_mail(subject, "\n".join(lines), None, recipients)
    return True


# Enqueued by billing.services.budget_soft_alert_enqueue; named as when they lived in
# billing/tasks.py, so messages already queued still find them.
@shared_task(
    name="billing.tasks.budget_alert_webhook",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=6,
)
def budget_alert_webhook(budget_id: int, spend: str) -> bool:
    return budget_alert_webhook_send(budget_id=budget_id, spend=spend)


@shared_task(
    name="billing.tasks.budget_alert_email",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=6,
)
def budget_alert_email(budget_id: int, spend: str) -> bool:
    return budget_alert_email_send(budget_id=budget_id, spend=spend)
