"""Alert rules end to end: request log rows and circuits in, one trigger per channel out (a
Slack webhook, PagerDuty Events v2, the signed webhook and email, each over a real socket),
nothing more while the incident is open, one resolve message once it clears."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from billing.alerts import alert_signature
from billing.models import AlertIncident, RequestLog
from gateway.alerting import alerts_evaluate
from gateway.config import watch as config_watch
from gateway.config.loader import config_parse
from gateway.config.problems import Problems
from gateway.config.types import AlertingSettings
from gateway.health import HealthPolicy, health_store
from gateway.registry import registry_get
from tests.emulators.alert_receivers import (
    PAGERDUTY_ROUTING_KEY,
    SLACK_PATH,
    PagerDutyEmulator,
    SlackWebhookEmulator,
)
from tests.emulators.vault_api import JsonEmulator, Reply, Seen
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

SECRET = "whsec-incidents"
DEPLOYMENT = "builtin:mock-chat"


class Receiver(JsonEmulator):
    def handle(self, request: Seen) -> Reply:
        return 200, {"ok": True}, {}


@pytest.fixture
def channels() -> Iterator[dict[str, Any]]:
    servers = {
        "slack": SlackWebhookEmulator().start(),
        "pagerduty": PagerDutyEmulator().start(),
        "webhook": Receiver().start(),
    }
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def alerting_on(channels: dict[str, Any]) -> Iterator[Callable[..., AlertingSettings]]:
    registry_get()  # the first load installs its configuration: before this test's
    previous = config_watch._current

    def turn_on(**fields: Any) -> AlertingSettings:
        alerting = AlertingSettings(
            **{
                "channels": ("slack", "webhook", "email", "pagerduty"),
                "slack_webhook_url": channels["slack"].url + SLACK_PATH,
                "webhook_url": channels["webhook"].url + "/hooks/ogem",
                "webhook_secret": SECRET,
                "emails": ("oncall@example.com",),
                "pagerduty_routing_key": PAGERDUTY_ROUTING_KEY,
                "pagerduty_url": channels["pagerduty"].url,
                **fields,
            }
        )
        config_watch._current = replace(previous, alerting=alerting)
        return alerting

    yield turn_on
    config_watch._current = previous


def _logs(
    *, at: datetime, count: int, status: int = 200, latency: int = 100, **fields: Any
) -> None:
    RequestLog.objects.bulk_create(
        RequestLog(
            request_id=uuid.uuid4().hex,
            created_at=at - timedelta(seconds=n % 50 + 1),
            endpoint="chat/completions",
            model="mock-chat",
            provider="mock",
            deployment=DEPLOYMENT,
            status_code=status,
            latency_ms=latency,
            **fields,
        )
        for n in range(count)
    )


def test_error_rate_fires_once_on_every_channel_and_resolves(
    alerting_on, channels, mailoutbox
) -> None:
    alerting_on(alert_types=("error_rate",))
    now = datetime.now(tz=UTC)
    _logs(at=now, count=4)
    _logs(at=now, count=8, status=502)

    assert alerts_evaluate(now=now) == {"error_rate": 1}
    assert alerts_evaluate(now=now + timedelta(seconds=60)) == {"error_rate": 1}  # still open

    slack, pagerduty, webhook = channels["slack"], channels["pagerduty"], channels["webhook"]
    (message,) = slack.messages
    assert message["text"] == (
        f"[Ogem] Error rate of mock-chat ({DEPLOYMENT}): 67% of 12 requests in 300 s"
    )
    assert "*errors*: 8" in message["blocks"][1]["text"]["text"]
    (trigger,) = pagerduty.events
    incident = AlertIncident.objects.get()
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == f"ogem-incident-{incident.pk}"
    assert trigger["payload"]["severity"] == "error"
    assert trigger["payload"]["source"] == DEPLOYMENT
    assert list(pagerduty.incidents) == [trigger["dedup_key"]]
    (hook,) = webhook.requests
    assert hook.headers["X-Ogem-Event"] == "alert.triggered"
    assert hook.headers["X-Ogem-Signature"] == alert_signature(
        secret=SECRET, timestamp=hook.headers["X-Ogem-Timestamp"], body=hook.body
    )
    payload = json.loads(hook.body)
    assert payload["incident"]["rule"] == "error_rate"
    assert payload["incident"]["details"]["errors"] == 8
    (email,) = mailoutbox
    assert email.to == ["oncall@example.com"]
    assert email.subject.startswith("[Ogem] Error rate of mock-chat")

    # Recovery: the next window holds healthy traffic only.
    later = now + timedelta(seconds=400)
    _logs(at=later, count=12)
    assert alerts_evaluate(now=later) == {"error_rate": 0}
    assert alerts_evaluate(now=later + timedelta(seconds=60)) == {"error_rate": 0}

    assert len(slack.messages) == 2
    assert slack.messages[1]["text"].startswith("[Ogem] resolved: Error rate of mock-chat")
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"]
    assert pagerduty.events[1]["dedup_key"] == trigger["dedup_key"]
    assert pagerduty.incidents == {}
    assert [json.loads(r.body)["event"] for r in webhook.requests] == [
        "alert.triggered",
        "alert.resolved",
    ]
    assert len(mailoutbox) == 2
    incident.refresh_from_db()
    assert incident.resolved_at == later
    assert incident.pending is False
    assert incident.notified == {
        "trigger": ["slack", "webhook", "email", "pagerduty"],
        "resolve": ["slack", "webhook", "email", "pagerduty"],
    }


def test_too_few_requests_fire_nothing(alerting_on, channels) -> None:
    alerting_on(alert_types=("error_rate",), min_requests=10)
    now = datetime.now(tz=UTC)
    _logs(at=now, count=9, status=500)
    assert alerts_evaluate(now=now) == {"error_rate": 0}
    assert channels["slack"].requests == []


def test_a_channel_down_is_retried_and_stops_nothing(alerting_on, channels, mailoutbox) -> None:
    alerting_on(alert_types=("error_rate",))
    pagerduty = channels["pagerduty"]
    pagerduty.fail_with = 503
    now = datetime.now(tz=UTC)
    _logs(at=now, count=10, status=500)

    alerts_evaluate(now=now)
    assert len(pagerduty.requests) == 2  # tried twice at once
    assert pagerduty.events == []
    assert len(channels["slack"].messages) == 1
    assert len(mailoutbox) == 1
    incident = AlertIncident.objects.get()
    assert incident.pending is True
    assert incident.notified["trigger"] == ["slack", "webhook", "email"]

    pagerduty.fail_with = None
    alerts_evaluate(now=now + timedelta(seconds=60))
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]
    assert len(channels["slack"].messages) == 1  # the others are not sent again
    assert len(channels["webhook"].requests) == 1
    assert len(mailoutbox) == 1
    incident.refresh_from_db()
    assert incident.pending is False


def test_latency_over_its_baseline(alerting_on, channels) -> None:
    alerting_on(alert_types=("latency",), channels=("slack",))
    now = datetime.now(tz=UTC)
    _logs(at=now - timedelta(hours=2), count=20, latency=100)
    _logs(at=now, count=10, latency=450)
    assert alerts_evaluate(now=now) == {"latency": 1}
    (message,) = channels["slack"].messages
    assert message["text"] == (
        f"[Ogem] Latency of mock-chat ({DEPLOYMENT}): p95 450 ms, 4.5x its baseline of 100 ms"
    )

    _logs(at=now + timedelta(seconds=400), count=10, latency=120)
    assert alerts_evaluate(now=now + timedelta(seconds=400)) == {"latency": 0}
    assert channels["slack"].messages[1]["text"].startswith("[Ogem] resolved: Latency")


def test_latency_under_its_multiplier_is_quiet(alerting_on, channels) -> None:
    alerting_on(alert_types=("latency",), channels=("slack",))
    now = datetime.now(tz=UTC)
    _logs(at=now - timedelta(hours=2), count=20, latency=100)
    _logs(at=now, count=10, latency=250)
    assert alerts_evaluate(now=now) == {"latency": 0}
    assert channels["slack"].requests == []


def _run(coroutine: Any) -> None:
    from ogem_site.redis import redis_clients_close

    async def run() -> None:
        try:
            await coroutine
        finally:
            await redis_clients_close()

    asyncio.run(run())


def test_deployment_down_from_its_circuit(alerting_on, channels) -> None:
    alerting_on(alert_types=("deployment_down",), channels=("pagerduty",))
    store = health_store()
    _run(store.failure(DEPLOYMENT, policy=HealthPolicy(), forced=120.0))
    try:
        assert alerts_evaluate() == {"deployment_down": 1}
        assert alerts_evaluate() == {"deployment_down": 1}
        (trigger,) = channels["pagerduty"].events
        assert trigger["payload"]["severity"] == "critical"
        assert trigger["payload"]["summary"] == (
            f"Deployment down: mock-chat ({DEPLOYMENT}), circuit open"
        )
    finally:
        _run(store.success(DEPLOYMENT))
    assert alerts_evaluate() == {"deployment_down": 0}
    assert [e["event_action"] for e in channels["pagerduty"].events] == ["trigger", "resolve"]


def test_spend_anomaly_of_an_organization(alerting_on, channels) -> None:
    alerting_on(alert_types=("spend_anomaly",), channels=("slack",), spend_multiplier=3.0)
    organization = OrganizationFactory()
    quiet = OrganizationFactory()
    now = datetime.now(tz=UTC).replace(hour=12)
    for day in range(1, 8):
        for org in (organization, quiet):
            _logs(
                at=now - timedelta(days=day),
                count=1,
                organization_id=org.pk,
                cost=Decimal("2"),
            )
    _logs(at=now, count=1, organization_id=organization.pk, cost=Decimal("5"))
    _logs(at=now, count=1, organization_id=quiet.pk, cost=Decimal("5"))
    assert alerts_evaluate(now=now) == {"spend_anomaly": 0}  # 5 is not over 3 x 2

    _logs(at=now, count=1, organization_id=organization.pk, cost=Decimal("1.6"))
    assert alerts_evaluate(now=now) == {"spend_anomaly": 1}
    (message,) = channels["slack"].messages
    assert message["text"] == (
        f"[Ogem] Spend anomaly: organization {organization.pk} spent $6.60 today, "
        "3.3x its 7-day average of $2.00"
    )
    assert AlertIncident.objects.get().subject == f"organization:{organization.pk}"


def test_no_alerting_section_runs_nothing(channels) -> None:
    registry_get()
    assert config_watch._current.alerting is None
    now = datetime.now(tz=UTC)
    _logs(at=now, count=10, status=500)
    assert alerts_evaluate(now=now) == {}
    assert AlertIncident.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_evaluations_open_and_notify_once(alerting_on, channels) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers: one process evaluates at a time")
    alerting_on(alert_types=("error_rate",), channels=("slack",))
    now = datetime.now(tz=UTC)
    _logs(at=now, count=10, status=500)
    barrier = threading.Barrier(4)
    failures: list[BaseException] = []

    def evaluate() -> None:
        try:
            barrier.wait()
            alerts_evaluate(now=now)
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert AlertIncident.objects.count() == 1
    assert len(channels["slack"].messages) == 1


def _parse(text: str) -> tuple[Any, list[str]]:
    problems = Problems()
    config = config_parse(text, source="test.yaml", problems=problems, resolve_secrets=True)
    return config, [p.message for p in problems.items]


def test_ogem_format_alerting_section(monkeypatch) -> None:
    monkeypatch.setenv("OPS_SLACK", "https://hooks.slack.example/services/x")
    config, problems = _parse(
        """
models:
  - {name: m, model: openai/gpt-4o-mini}
alerting:
  channels: [slack, pagerduty, teams]
  alert_types: [error_rate, deployment_down]
  error_rate_threshold: 0.2
  min_requests: 5
  slack_webhook_url: os.environ/OPS_SLACK
  pagerduty_url: http://127.0.0.1:9/
"""
    )
    assert config is not None, problems
    assert config.alerting == AlertingSettings(
        channels=("slack", "pagerduty"),
        alert_types=("error_rate", "deployment_down"),
        error_rate_threshold=0.2,
        min_requests=5,
        slack_webhook_url="https://hooks.slack.example/services/x",
        pagerduty_url="http://127.0.0.1:9/",
    )
    assert any('alerting channel "teams"' in p for p in problems)


def test_litellm_general_settings_alerting() -> None:
    config, problems = _parse(
        """
model_list:
  - model_name: m
    litellm_params: {model: openai/gpt-4o-mini}
general_settings:
  alerting: ["slack", "email"]
  alerting_threshold: 300
  alert_types: ["llm_exceptions", "llm_too_slow", "budget_alerts", "db_exceptions"]
"""
    )
    assert config is not None, problems
    assert config.alerting == AlertingSettings(
        channels=("slack", "email"),
        alert_types=("error_rate", "latency"),
        latency_threshold_ms=300_000,
    )
    assert any('alert type "db_exceptions"' in p for p in problems)


def test_a_channel_without_destination_is_reported(settings) -> None:
    settings.OGEM_ALERT_SLACK_WEBHOOK_URL = ""
    settings.OGEM_ALERT_EMAILS = ["ops@example.com"]
    config, problems = _parse(
        """
models:
  - {name: m, model: openai/gpt-4o-mini}
alerting:
  channels: [slack, email]
"""
    )
    assert config is not None
    assert [p for p in problems if "no destination" in p] == [
        'alerting: alerting channel "slack" has no destination (slack_webhook_url or '
        "SLACK_WEBHOOK_URL); it stays off"
    ]


@pytest.mark.django_db(transaction=True)
def test_without_beat_the_web_process_evaluates_once_an_interval(
    alerting_on, channels, settings
) -> None:
    from gateway import alerting

    settings.REDIS_URL = ""  # the embedded default: no beat
    settings.OGEM_ALERT_INTERVAL = 60
    alerting_on(alert_types=("error_rate",), channels=("slack",))
    _logs(at=datetime.now(tz=UTC), count=10, status=500)
    alerting._last_run = 0.0

    def in_a_worker_thread() -> None:  # as gateway/accounting.py calls it, after a flush
        thread = threading.Thread(target=alerting.alerts_evaluate_if_due)
        thread.start()
        thread.join()

    in_a_worker_thread()
    assert len(channels["slack"].messages) == 1
    RequestLog.objects.all().delete()
    in_a_worker_thread()  # within the interval: not evaluated, so not resolved yet
    assert AlertIncident.objects.get().resolved_at is None
    alerting._last_run -= 60
    in_a_worker_thread()
    assert AlertIncident.objects.get().resolved_at is not None
    assert channels["slack"].messages[1]["text"].startswith("[Ogem] resolved:")
