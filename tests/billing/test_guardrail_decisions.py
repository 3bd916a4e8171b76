"""Guardrail decisions carried by usage events: written once by the drain's writer, never the
matched text, and read per tenant (billing.selectors.guardrail_decision_list)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from billing.models import GuardrailDecision
from billing.selectors import guardrail_decision_list
from billing.services import usage_events_record
from tenants.models import Role
from tenants.selectors import principal_for_user
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def _event(request_id: str, organization_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "ts": time.time(),
        "organization_id": organization_id,
        "team_id": None,
        "key_id": None,
        "user_id": None,
        "end_customer": "",
        "endpoint": "chat/completions",
        "model": "gpt",
        "provider": "openai",
        "deployment": "config:gpt#0",
        "status_code": 400,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cost": "0",
        "latency_ms": 3,
        "stream": False,
        "cancelled": False,
        "usage_estimated": False,
        "cache_hit": False,
        "cache_result": "",
        "cache_saved_cost": None,
        "cache_saved_tokens": None,
        "cache_saved_latency_ms": None,
        "tags": [],
        "batch_id": "",
        **extra,
    }


DECISION = {
    "guardrail": "pii",
    "phase": "pre_call",
    "action": "block",
    "category": "CREDIT_CARD",
    "count": 2,
    "confidence": 1.0,
}


def test_decisions_are_written_once_and_read_per_tenant() -> None:
    mine, theirs = OrganizationFactory(), OrganizationFactory()
    events = [
        _event("req-mine", mine.pk, guardrails=[DECISION]),
        _event("req-theirs", theirs.pk, guardrails=[{**DECISION, "action": "warn"}]),
        _event("req-clean", mine.pk),
    ]
    usage_events_record(events=events)
    usage_events_record(events=events)  # a batch delivered twice counts once
    assert GuardrailDecision.objects.count() == 2
    row = GuardrailDecision.objects.get(request_id="req-mine")
    assert (row.guardrail, row.phase, row.action, row.category, row.count, row.confidence) == (
        "pii",
        "pre_call",
        "block",
        "CREDIT_CARD",
        2,
        1.0,
    )
    admin = UserFactory()
    MembershipFactory(user=admin, organization=mine, role=Role.ORG_ADMIN)
    visible = guardrail_decision_list(principal=principal_for_user(user=admin))
    assert [d.request_id for d in visible] == ["req-mine"]
    assert (
        list(
            guardrail_decision_list(
                principal=principal_for_user(user=admin), filters={"action": "warn"}
            )
        )
        == []
    )
