"""A job's end announced through Ogem's alert channels (billing/alerts.py): a signed JSON POST to
`OGEM_ALERT_WEBHOOK_URL` (same headers and signature as budget alerts, event
`fine_tuning.job.<status>`), and an email to `OGEM_ALERT_EMAILS` and to the owner of the key that
created the job, when that user has an address."""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson
from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from billing.alerts import AlertDeliveryError, alert_signature
from fine_tuning.models import FineTuningJob


def job_alert_payload(*, job: FineTuningJob) -> dict[str, Any]:
    return {
        "event": f"fine_tuning.job.{job.status}",
        "job": {
            "id": job.job_id,
            "status": job.status,
            "model": job.model,
            "fine_tuned_model": job.fine_tuned_model or None,
            "organization_id": job.organization_id,
            "team_id": job.team_id,
            "key_id": job.key_id,
            "trained_tokens": job.trained_tokens,
            "cost": None if job.cost is None else str(job.cost),
            "error": job.error,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        },
    }


def _owner_email(job: FineTuningJob) -> str:
    key = job.key
    user = key.user if key is not None else None
    return (getattr(user, "email", "") or "") if user is not None else ""


def job_alert_send(*, job_id: str) -> bool:
    """Send both; False when the job is gone or no channel is configured."""
    job = FineTuningJob.objects.select_related("key__user").filter(job_id=job_id).first()
    if job is None:
        return False
    payload = job_alert_payload(job=job)
    sent = False
    url = settings.OGEM_ALERT_WEBHOOK_URL
    if url:
        body = orjson.dumps(payload)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Ogem-Alerts",
            "X-Ogem-Event": payload["event"],
            "X-Ogem-Timestamp": timestamp,
        }
        if settings.OGEM_ALERT_WEBHOOK_SECRET:
            headers["X-Ogem-Signature"] = alert_signature(
                secret=settings.OGEM_ALERT_WEBHOOK_SECRET, timestamp=timestamp, body=body
            )
        response = httpx.post(url, content=body, headers=headers, timeout=10.0)
        if not response.is_success:
            raise AlertDeliveryError(f"alert webhook answered {response.status_code}")
        sent = True
    recipients = list(dict.fromkeys([*settings.OGEM_ALERT_EMAILS, _owner_email(job)]))
    recipients = [address for address in recipients if address]
    if recipients:
        lines = [
            f"Fine-tuning job {job.job_id} on {job.model} has {job.status}.",
            "",
            f"Fine-tuned model: {job.fine_tuned_model or '-'}",
            f"Trained tokens: {job.trained_tokens if job.trained_tokens is not None else '-'}",
            f"Cost: {'$' + str(job.cost) if job.cost is not None else '-'}",
        ]
        if job.error:
            lines.append(f"Error: {job.error.get('message')}")
        send_mail(
            f"[Ogem] Fine-tuning job {job.job_id} {job.status}", "\n".join(lines), None, recipients
        )
        sent = True
    return sent


@shared_task(
    name="fine_tuning.alerts.fine_tuning_job_alert",
    ignore_result=True,
    autoretry_for=(Exception,),
    retry_backoff=True,
    max_retries=6,
)
def fine_tuning_job_alert(job_id: str) -> bool:
    return job_alert_send(job_id=job_id)


def job_alert_enqueue(*, job_id: str) -> None:
    """Call after commit."""
    fine_tuning_job_alert.delay(job_id)
