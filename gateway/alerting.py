"""Alert rules (docs/alerts.md): evaluated every minute by beat's `alerts_evaluate` (in the
embedded default, by the web process after a usage flush, at most once a minute).

Each rule says which subjects fire now; billing/incidents.py keeps one incident per firing
subject and sends its trigger once, then its resolve message once the rule stops firing:

- error_rate: a deployment whose share of 5xx answers in the last `window` is over
  `error_rate_threshold` (with at least `min_requests` requests);
- latency: a deployment whose p95 latency in the window is over `latency_multiplier` times its
  baseline (the p95 of the `latency_baseline_hours` before), or over `latency_threshold_ms`;
- deployment_down: a deployment whose circuit is open (gateway/health.py), until a request or
  the active health check closes it;
- spend_anomaly: an organization or team whose spend today (UTC) is over `spend_multiplier`
  times its average day of the 7 before, and at least `spend_min_usd`.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings

from billing.incidents import AlertChannels, Finding, alert_incidents_sync, alert_notifications_send
from billing.selectors import deployment_request_stats, spend_by_day
from gateway.config import config_current
from gateway.config.types import AlertingSettings
from gateway.health import CLOSED, health_status
from gateway.registry import registry_get

logger = logging.getLogger(__name__)

TRAILING_DAYS = 7


def alert_channels(alerting: AlertingSettings) -> AlertChannels:
    """The configuration's destinations, else the environment's."""
    return AlertChannels(
        names=alerting.channels,
        slack_webhook_url=alerting.slack_webhook_url or settings.OGEM_ALERT_SLACK_WEBHOOK_URL,
        webhook_url=alerting.webhook_url or settings.OGEM_ALERT_WEBHOOK_URL,
        webhook_secret=alerting.webhook_secret or settings.OGEM_ALERT_WEBHOOK_SECRET,
        emails=alerting.emails or tuple(settings.OGEM_ALERT_EMAILS),
        pagerduty_routing_key=alerting.pagerduty_routing_key
        or settings.OGEM_ALERT_PAGERDUTY_ROUTING_KEY,
        pagerduty_url=alerting.pagerduty_url or settings.OGEM_ALERT_PAGERDUTY_URL,
    )


def alerts_evaluate(*, now: datetime | None = None) -> dict[str, int]:
    """Run every enabled rule, then send pending notifications. Returns firing counts per rule
    (empty when the configuration has no `alerting` section)."""
    registry_get()  # a process that has not served /v1 loads its configuration here
    alerting = config_current().alerting
    if alerting is None:
        return {}
    now = now or datetime.now(tz=UTC)
    rules = {
        "error_rate": _error_rate,
        "latency": _latency,
        "deployment_down": _deployment_down,
        "spend_anomaly": _spend_anomaly,
    }
    counts: dict[str, int] = {}
    for rule in alerting.alert_types:
        firing = rules[rule](alerting, now)
        alert_incidents_sync(rule=rule, firing=firing, now=now)
        counts[rule] = len(firing)
    alert_notifications_send(channels=alert_channels(alerting), now=now)
    return counts


def _names() -> dict[str, str]:
    return {d.id: d.model_name for d in registry_get().by_id.values()}


def _error_rate(alerting: AlertingSettings, now: datetime) -> dict[str, Finding]:
    since = now - timedelta(seconds=alerting.window)
    names = _names()
    firing: dict[str, Finding] = {}
    for deployment, stats in deployment_request_stats(since=since, until=now).items():
        if stats.requests < alerting.min_requests:
            continue
        rate = stats.errors / stats.requests
        if rate > alerting.error_rate_threshold:
            firing[deployment] = Finding(
                summary=f"Error rate of {names.get(deployment, deployment)} ({deployment}): "
                f"{rate:.0%} of {stats.requests} requests in {alerting.window:.0f} s",
                severity="error",
                details={
                    "deployment": deployment,
                    "requests": stats.requests,
                    "errors": stats.errors,
                    "error_rate": round(rate, 4),
                    "threshold": alerting.error_rate_threshold,
                },
            )
    return firing


def _latency(alerting: AlertingSettings, now: datetime) -> dict[str, Finding]:
    since = now - timedelta(seconds=alerting.window)
    current = deployment_request_stats(since=since, until=now)
    baseline = deployment_request_stats(
        since=since - timedelta(hours=alerting.latency_baseline_hours), until=since
    )
    names = _names()
    firing: dict[str, Finding] = {}
    for deployment, stats in current.items():
        p95 = stats.p95_latency_ms
        if p95 is None or stats.requests < alerting.min_requests:
            continue
        before = baseline.get(deployment)
        base = (
            before.p95_latency_ms if before and before.requests >= alerting.min_requests else None
        )
        over_baseline = base is not None and base > 0 and p95 > alerting.latency_multiplier * base
        over_threshold = (
            alerting.latency_threshold_ms is not None and p95 > alerting.latency_threshold_ms
        )
        if not (over_baseline or over_threshold):
            continue
        firing[deployment] = Finding(
            summary=f"Latency of {names.get(deployment, deployment)} ({deployment}): "
            f"p95 {p95:.0f} ms"
            + (f", {p95 / base:.1f}x its baseline of {base:.0f} ms" if over_baseline else ""),
            severity="warning",
            details={
                "deployment": deployment,
                "p95_ms": round(p95, 1),
                "baseline_p95_ms": None if base is None else round(base, 1),
                "threshold_ms": alerting.latency_threshold_ms,
                "requests": stats.requests,
            },
        )
    return firing


def _deployment_down(alerting: AlertingSettings, now: datetime) -> dict[str, Finding]:
    firing: dict[str, Finding] = {}
    for status in health_status(list(registry_get().by_id.values())):
        if status["state"] == CLOSED:
            continue
        deployment = str(status["deployment"])
        firing[deployment] = Finding(
            summary=f"Deployment down: {status['model']} ({deployment}), circuit {status['state']}",
            severity="critical",
            details={
                "deployment": deployment,
                "model": status["model"],
                "provider": status["provider"],
                "state": status["state"],
            },
        )
    return firing


def _spend_anomaly(alerting: AlertingSettings, now: datetime) -> dict[str, Finding]:
    today = now.date()
    first = today - timedelta(days=TRAILING_DAYS)
    firing: dict[str, Finding] = {}
    for scope in ("organization", "team"):
        spend = spend_by_day(scope=scope, since=first, until=today)
        for owner in {owner for owner, _ in spend}:
            current = spend.get((owner, today), Decimal("0"))
            trailing = sum(
                (spend.get((owner, first + timedelta(days=n)), Decimal("0")) for n in range(7)),
                Decimal("0"),
            )
            average = trailing / TRAILING_DAYS
            if current < Decimal(str(alerting.spend_min_usd)) or not average:
                continue  # without a trailing average there is nothing to compare with
            if current <= average * Decimal(str(alerting.spend_multiplier)):
                continue
            firing[f"{scope}:{owner}"] = Finding(
                summary=f"Spend anomaly: {scope} {owner} spent ${current:.2f} today, "
                f"{current / average:.1f}x its {TRAILING_DAYS}-day average of ${average:.2f}",
                severity="warning",
                details={
                    "scope": scope,
                    "id": owner,
                    "spend_today": str(current),
                    "trailing_average": str(average.quantize(Decimal("0.000001"))),
                    "multiplier": alerting.spend_multiplier,
                },
            )
    return firing


# ---- The embedded default: no beat, so the web process evaluates after a usage flush ----------

_last_run = 0.0
_running = threading.Lock()


def alerts_evaluate_if_due() -> None:
    """Evaluate when the last run here is `OGEM_ALERT_INTERVAL` seconds old (called from a
    worker thread; a run already going, or a failing one, never blocks the caller)."""
    global _last_run
    if settings.REDIS_URL or time.monotonic() - _last_run < settings.OGEM_ALERT_INTERVAL:
        return
    if not _running.acquire(blocking=False):
        return
    from django.db import connection

    try:
        _last_run = time.monotonic()
        if config_current().alerting is not None:
            alerts_evaluate()
    except Exception:
        logger.exception("alert evaluation failed")
    finally:
        _running.release()
        connection.close()
