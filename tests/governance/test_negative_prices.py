"""A price below zero never credits a budget: a deployment whose params carry one (however it got
there) is charged at the price that applies without it, through the live server."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from billing.models import BudgetScope, RequestLog
from billing.services import budget_live_spend, budget_upsert, usage_drain
from gateway.governance import governance_snapshot_flush
from keys.services import key_create
from providers.base import Deployment
from tests.factories import TeamFactory
from tests.live import LiveServer

pytestmark = pytest.mark.live


def test_a_negative_price_is_never_applied_and_the_budget_only_grows(
    live_ogem: LiveServer,
    backend: str,
    install_deployments,  # type: ignore[no-untyped-def]
) -> None:
    governance_snapshot_flush()
    install_deployments(
        Deployment(
            id="test:negative",
            model_name="negative",
            provider="mock",
            upstream_model="mock-chat",
            params={"input_cost_per_token": -1, "output_cost_per_token": "-0.5"},
        )
    )
    team = TeamFactory()
    budget = budget_upsert(scope=BudgetScope.TEAM, target=team, max_budget=Decimal("1"))
    issued = key_create(name="negative", team=team)
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=issued.secret, max_retries=0)
    for _ in range(2):
        reply = client.chat.completions.create(
            model="negative", messages=[{"role": "user", "content": "hello there"}], max_tokens=20
        )
    assert usage_drain() == 2
    usage = reply.usage
    # mock-chat's shipped price ($1/M in, $2/M out): the params' negative prices are ignored.
    each = Decimal(usage.prompt_tokens) * Decimal("0.000001") + Decimal(
        usage.completion_tokens
    ) * Decimal("0.000002")
    assert [row.cost for row in RequestLog.objects.filter(key_id=issued.key.pk)] == [each, each]
    assert budget_live_spend(budget=budget) == 2 * each
    governance_snapshot_flush()
