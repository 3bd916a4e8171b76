"""Soft-budget alerts: one signed webhook and one email per budget period, sent after commit."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from billing.alerts import EVENT, alert_signature
from billing.models import Budget, BudgetScope
from billing.services import budget_periods_reset, budget_reset, budget_upsert
from tests.emulators.vault_api import JsonEmulator, Reply, Seen
from tests.factories import OrganizationFactory, TeamFactory

pytestmark = pytest.mark.django_db

SECRET = "whsec-test"


class Receiver(JsonEmulator):
    status = 200

    def handle(self, request: Seen) -> Reply:
        return self.status, {"ok": self.status == 200}, {}


@pytest.fixture
def receiver(settings) -> Any:
    server = Receiver().start()
    settings.OGEM_ALERT_WEBHOOK_URL = f"{server.url}/hooks/ogem"
    settings.OGEM_ALERT_WEBHOOK_SECRET = SECRET
    settings.OGEM_ALERT_EMAILS = ["finops@example.com"]
    yield server
    server.stop()


def _cross(budget: Budget, spend: str) -> None:
    Budget.objects.filter(pk=budget.pk).update(spend=Decimal(spend))


def test_one_alert_per_period(receiver, mailoutbox, django_capture_on_commit_callbacks) -> None:
    team = TeamFactory(name="Search")
    budget = budget_upsert(
        scope=BudgetScope.TEAM,
        target=team,
        max_budget=Decimal("10"),
        soft_budget=Decimal("8"),
        duration="30d",
    )
    _cross(budget, "7.5")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        budget_periods_reset()
    assert callbacks == []
    assert receiver.requests == []

    _cross(budget, "8.25")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        budget_periods_reset()
        assert receiver.requests == []  # nothing leaves before the claim commits
    assert len(callbacks) == 2
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        budget_periods_reset()  # the next beat run: already sent for this period
    assert callbacks == []

    (hook,) = receiver.requests
    assert (hook.method, hook.path) == ("POST", "/hooks/ogem")
    assert hook.headers["X-Ogem-Event"] == EVENT
    timestamp = hook.headers["X-Ogem-Timestamp"]
    assert hook.headers["X-Ogem-Signature"] == alert_signature(
        secret=SECRET, timestamp=timestamp, body=hook.body
    )
    assert hook.headers["X-Ogem-Signature"] != alert_signature(
        secret="other", timestamp=timestamp, body=hook.body
    )
    budget.refresh_from_db()
    assert json.loads(hook.body) == {
        "event": EVENT,
        "budget": {
            "id": budget.pk,
            "scope": "team",
            "target_id": team.pk,
            "target": str(team),
            "soft_budget": "8.00000000",
            "max_budget": "10.00000000",
            "duration": "30d",
            "period_started_at": budget.period_started_at.isoformat(),
            "reset_at": budget.reset_at.isoformat(),
        },
        "spend": "8.25000000",
    }
    (email,) = mailoutbox
    assert email.to == ["finops@example.com"]
    assert email.subject == "[Ogem] Team budget: soft limit reached"
    assert "Spend this period: $8.25000000" in email.body
    assert budget.soft_alert_sent_for == budget.period_started_at

    # A new period alerts again when it crosses the soft limit.
    budget_reset(budget=budget)
    _cross(budget, "9")
    with django_capture_on_commit_callbacks(execute=True):
        budget_periods_reset()
    assert len(receiver.requests) == 2
    assert len(mailoutbox) == 2


def test_no_alert_below_soft_or_without_soft(
    receiver, mailoutbox, django_capture_on_commit_callbacks
) -> None:
    org = OrganizationFactory()
    budget = budget_upsert(scope=BudgetScope.ORGANIZATION, target=org, max_budget=Decimal("1"))
    _cross(budget, "5")  # over the hard limit, but no soft limit: no alert
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        budget_periods_reset()
    assert callbacks == []
    assert receiver.requests == [] and mailoutbox == []


def test_without_a_webhook_only_email(settings, mailoutbox, django_capture_on_commit_callbacks):
    settings.OGEM_ALERT_WEBHOOK_URL = ""
    settings.OGEM_ALERT_EMAILS = ["a@example.com", "b@example.com"]
    org = OrganizationFactory()
    budget = budget_upsert(scope=BudgetScope.ORGANIZATION, target=org, soft_budget=Decimal("1"))
    _cross(budget, "1")
    with django_capture_on_commit_callbacks(execute=True):
        budget_periods_reset()
    (email,) = mailoutbox
    assert email.to == ["a@example.com", "b@example.com"]


def test_tiny_amounts_are_fixed_point(receiver, mailoutbox, django_capture_on_commit_callbacks):
    """A soft limit of 1e-7 USD is "0.00000010" in the webhook and the email, not "1.0E-7"."""
    team = TeamFactory(name="Search")
    budget = budget_upsert(scope=BudgetScope.TEAM, target=team, soft_budget=Decimal("0.0000001"))
    _cross(budget, "0.00000012")
    with django_capture_on_commit_callbacks(execute=True):
        budget_periods_reset()
    (hook,) = receiver.requests
    body = json.loads(hook.body)
    assert (body["budget"]["soft_budget"], body["spend"]) == ("0.00000010", "0.00000012")
    (email,) = mailoutbox
    assert "Soft limit: $0.00000010" in email.body
    assert "E-" not in email.body
