"""Alert incidents and their notifications (docs/alerts.md).

An evaluation (gateway/alerting.py) says, per rule, which subjects are firing now.
`alert_incidents_sync` opens an incident for each new one and resolves the open ones that no
longer fire; `alert_notifications_send` then sends what is pending: each open incident's trigger
once per channel, each resolved incident's resolve message to the channels that got its
trigger. A channel that fails is retried (twice at once, then at every later evaluation), and
never stops the others.

Channels: a Slack incoming webhook (`text` and `blocks`), the signed webhook of
billing/alerts.py, email, and PagerDuty's Events API v2 (`POST /v2/enqueue`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
from django.core.mail import send_mail
from django.db import IntegrityError, transaction

from billing.alerts import AlertDeliveryError, alert_webhook_post
from billing.models import AlertIncident

logger = logging.getLogger(__name__)

CHANNELS = ("slack", "webhook", "email", "pagerduty")
PAGERDUTY_URL = "https://events.pagerduty.com"
DELIVERY_TIMEOUT = 5.0  # seconds per attempt
DELIVERY_ATTEMPTS = 2  # at once; a channel still failing is retried by the next evaluation
TRIGGER, RESOLVE = "trigger", "resolve"


@dataclass(frozen=True, slots=True)
class AlertChannels:
    """Where notifications go: a channel is on when it is named and has its destination."""

    names: tuple[str, ...] = ()
    slack_webhook_url: str = field(default="", repr=False)
    webhook_url: str = field(default="", repr=False)
    webhook_secret: str = field(default="", repr=False)
    emails: tuple[str, ...] = ()
    pagerduty_routing_key: str = field(default="", repr=False)
    pagerduty_url: str = PAGERDUTY_URL

    def enabled(self) -> tuple[str, ...]:
        ready = {
            "slack": bool(self.slack_webhook_url),
            "webhook": bool(self.webhook_url),
            "email": bool(self.emails),
            "pagerduty": bool(self.pagerduty_routing_key),
        }
        return tuple(name for name in CHANNELS if name in self.names and ready[name])


@dataclass(frozen=True, slots=True)
class Finding:
    """A subject for which a rule fires now."""

    summary: str
    severity: str = "error"  # PagerDuty's: critical, error, warning or info
    details: dict[str, Any] = field(default_factory=dict)


def alert_incidents_sync(*, rule: str, firing: Mapping[str, Finding], now: datetime) -> None:
    """Open an incident for each firing subject without one, resolve the open ones of `rule`
    that no longer fire. Safe to run concurrently with itself: one incident stays open."""
    open_subjects = set(
        AlertIncident.objects.filter(rule=rule, resolved_at__isnull=True).values_list(
            "subject", flat=True
        )
    )
    for subject, finding in firing.items():
        if subject in open_subjects:
            continue
        try:
            with transaction.atomic():
                AlertIncident.objects.create(
                    rule=rule,
                    subject=subject,
                    severity=finding.severity,
                    summary=finding.summary[:1024],
                    details=finding.details,
                    opened_at=now,
                )
        except IntegrityError:
            pass  # another evaluation opened it
    cleared = open_subjects - set(firing)
    if cleared:
        AlertIncident.objects.filter(
            rule=rule, subject__in=cleared, resolved_at__isnull=True
        ).update(resolved_at=now, pending=True)


def alert_notifications_send(*, channels: AlertChannels, now: datetime) -> int:
    """Send every pending notification; returns how many were delivered. Rows are locked while
    they are sent (a concurrent run skips them), so each message leaves once."""
    enabled = channels.enabled()
    delivered = 0
    with transaction.atomic():
        incidents = list(
            AlertIncident.objects.select_for_update(skip_locked=True)
            .filter(pending=True)
            .order_by("pk")[:100]
        )
        for incident in incidents:
            action = TRIGGER if incident.resolved_at is None else RESOLVE
            notified = {TRIGGER: [], RESOLVE: [], **(incident.notified or {})}
            wanted = enabled if action == TRIGGER else tuple(notified[TRIGGER])
            missing = [name for name in wanted if name not in notified[action]]
            sent = 0
            for name in missing:
                if name not in enabled:
                    continue  # switched off since the trigger: nothing to resolve there
                if _deliver(channel=name, channels=channels, incident=incident, action=action):
                    notified[action].append(name)
                    sent += 1
            incident.notified = notified
            incident.pending = any(
                name in enabled and name not in notified[action] for name in wanted
            )
            if sent:
                incident.last_notified_at = now
                delivered += sent
            incident.save(update_fields=["notified", "pending", "last_notified_at"])
    return delivered


def _deliver(
    *, channel: str, channels: AlertChannels, incident: AlertIncident, action: str
) -> bool:
    for attempt in range(DELIVERY_ATTEMPTS):
        try:
            _SENDERS[channel](channels=channels, incident=incident, action=action)
            return True
        except (httpx.HTTPError, AlertDeliveryError, OSError) as exc:
            # Never the URL: a Slack webhook's path is its secret.
            logger.warning(
                "alert %s of incident %s to %s failed (attempt %d): %s",
                action,
                incident.pk,
                channel,
                attempt + 1,
                type(exc).__name__ if isinstance(exc, httpx.HTTPError) else exc,
            )
            if attempt + 1 < DELIVERY_ATTEMPTS:
                time.sleep(0.5)
    return False


def alert_payload_of(*, incident: AlertIncident, action: str) -> dict[str, Any]:
    return {
        "event": f"alert.{'triggered' if action == TRIGGER else 'resolved'}",
        "incident": {
            "id": incident.pk,
            "rule": incident.rule,
            "subject": incident.subject,
            "severity": incident.severity,
            "summary": incident.summary,
            "details": incident.details,
            "opened_at": incident.opened_at.isoformat(),
            "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        },
    }


def _title(incident: AlertIncident, action: str) -> str:
    if action == TRIGGER:
        return f"[Ogem] {incident.summary}"
    return f"[Ogem] resolved: {incident.summary}"


def _slack_send(*, channels: AlertChannels, incident: AlertIncident, action: str) -> None:
    title = _title(incident, action)
    lines = [f"*{key}*: {value}" for key, value in incident.details.items()]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": title[:3000]}}
    ]
    if lines and action == TRIGGER:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}
        )
    response = httpx.post(
        channels.slack_webhook_url,
        json={"text": title, "blocks": blocks},
        timeout=DELIVERY_TIMEOUT,
    )
    if not response.is_success:
        raise AlertDeliveryError(f"Slack answered {response.status_code}")


def _webhook_send(*, channels: AlertChannels, incident: AlertIncident, action: str) -> None:
    payload = alert_payload_of(incident=incident, action=action)
    alert_webhook_post(
        url=channels.webhook_url,
        secret=channels.webhook_secret,
        event=payload["event"],
        body=orjson.dumps(payload),
        timeout=DELIVERY_TIMEOUT,
    )


def _email_send(*, channels: AlertChannels, incident: AlertIncident, action: str) -> None:
    lines = [incident.summary, ""]
    lines += [f"{key}: {value}" for key, value in incident.details.items()]
    lines += ["", f"Opened: {incident.opened_at.isoformat()}"]
    if incident.resolved_at is not None:
        lines.append(f"Resolved: {incident.resolved_at.isoformat()}")
    send_mail(_title(incident, action), "\n".join(lines), None, list(channels.emails))


def _pagerduty_send(*, channels: AlertChannels, incident: AlertIncident, action: str) -> None:
    event: dict[str, Any] = {
        "routing_key": channels.pagerduty_routing_key,
        "event_action": action,
        "dedup_key": f"ogem-incident-{incident.pk}",
    }
    if action == TRIGGER:
        event["payload"] = {
            "summary": incident.summary[:1024],
            "source": incident.subject,
            "severity": incident.severity,
            "timestamp": incident.opened_at.isoformat(),
            "component": incident.subject,
            "class": incident.rule,
            "custom_details": incident.details,
        }
    response = httpx.post(
        f"{channels.pagerduty_url.rstrip('/')}/v2/enqueue",
        json=event,
        timeout=DELIVERY_TIMEOUT,
    )
    if response.status_code != 202:
        raise AlertDeliveryError(f"PagerDuty answered {response.status_code}")


_SENDERS = {
    "slack": _slack_send,
    "webhook": _webhook_send,
    "email": _email_send,
    "pagerduty": _pagerduty_send,
}
