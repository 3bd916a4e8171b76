"""A pass-through batch's spend reaches the live budget counters and tpm windows of its key and
team, once per line however often a step runs again; a batch whose key has no budget left is
refused at creation, and one whose budget runs out while the provider runs it is cancelled there
(docs/batches.md, "Budgets"). Each provider's emulator on a real socket, through the live server
and the official openai SDK; with REDIS_URL the counters are Redis's, else the process's."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import httpx
import openai
import orjson
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings

from batches.models import Batch
from batches.passthrough import batch_step
from billing.models import Budget, RequestLog
from billing.services import budget_live_spend, budget_periods_reset, budget_upsert
from gateway.governance import Charge, governance_charge, governance_snapshot_flush
from gateway.limits import local_limiter, rule_key
from keys.services import key_create
from ogem_site.redis import redis_client_sync
from providers.base import Endpoint
from tenants.models import EndCustomer
from tests.batches import test_passthrough
from tests.batches.conftest import sdk_retries, upload
from tests.batches.passthrough import input_lines
from tests.factories import TeamFactory
from tests.live import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# The emulators and the pass-through deployments of test_passthrough.py.
emulators = test_passthrough.emulators
urls = test_passthrough.urls
passthrough = test_passthrough.passthrough
_ended = test_passthrough._ended

PROVIDER = "openai"


def _client(live_ogem: Any, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=secret, max_retries=sdk_retries())


def _tpm_used(*, organization_id: int, key_id: int) -> int:
    key = rule_key(tenant=f"o:{organization_id}", entity=f"key:{key_id}", metric="tpm")
    if django_settings.REDIS_URL:
        return int(redis_client_sync().hget(key, "t") or 0)
    return sum(local_limiter.store.windows.get(key, {}).values())


def _spend_of(budget: Budget) -> Decimal:
    live = budget_live_spend(budget=budget)
    assert live is not None, "the budget has no live counter"
    return live


def test_a_batchs_spend_reaches_the_budgets_once(  # type: ignore[no-untyped-def]
    passthrough, live_ogem, master_key
) -> None:
    team = TeamFactory()
    budget_upsert(scope="team", target=team, max_budget=Decimal("100"))
    customer = EndCustomer.objects.create(organization=team.organization, external_id="cust-1")
    budget_upsert(scope="end_customer", target=customer, max_budget=Decimal("100"))
    issued = key_create(name="batch key", team=team, max_budget=Decimal("50"), tpm_limit=10_000_000)
    client = _client(live_ogem, issued.secret)
    lines = [orjson.loads(line) for line in input_lines(PROVIDER, 3).splitlines()]
    lines[0]["body"]["user"] = "cust-1"  # the first line is the end customer's
    source = upload(client, b"".join(orjson.dumps(line) + b"\n" for line in lines))
    created = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = _ended(client, created.id)
    assert done.status == "completed", done.errors

    logs = list(RequestLog.objects.filter(batch_id=done.id))
    cost = sum(log.cost for log in logs)
    tokens = sum(log.total_tokens for log in logs)
    assert cost > 0 and tokens > 0
    key_budget = Budget.objects.get(scope="key", key=issued.key)
    team_budget = Budget.objects.get(scope="team", team=team)
    customer_budget = Budget.objects.get(scope="end_customer", end_customer=customer)
    (customers,) = [log for log in logs if log.end_customer == "cust-1"]
    assert _spend_of(key_budget) == cost
    assert _spend_of(team_budget) == cost
    assert _spend_of(customer_budget) == customers.cost > 0
    assert _tpm_used(organization_id=team.organization_id, key_id=issued.key.pk) == tokens

    # A worker that died after writing the lines, before it ended the batch: the next step
    # reads the provider's results again and charges nothing twice.
    Batch.objects.filter(batch_id=done.id).update(status="in_progress")
    assert batch_step(batch_id=done.id) == "completed"
    assert RequestLog.objects.filter(batch_id=done.id).count() == len(logs)
    assert _spend_of(key_budget) == cost
    assert _spend_of(team_budget) == cost
    assert _spend_of(customer_budget) == customers.cost
    assert _tpm_used(organization_id=team.organization_id, key_id=issued.key.pk) == tokens

    # The management API's spend of the key (its persisted period spend) includes it.
    budget_periods_reset()
    listed = httpx.get(
        f"{live_ogem.url}/api/v1/keys",
        headers={"Authorization": f"Bearer {master_key}"},
        params={"team": team.pk},
    ).json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    (row,) = [item for item in rows if item["id"] == issued.key.pk]
    assert Decimal(row["spend"]) == cost


def test_a_batch_is_refused_when_the_budget_is_spent(  # type: ignore[no-untyped-def]
    passthrough, live_ogem, emulators
) -> None:
    team = TeamFactory()
    issued = key_create(name="spent key", team=team, max_budget=Decimal("1"))
    Budget.objects.filter(scope="key", key=issued.key).update(spend=Decimal("1"))
    governance_snapshot_flush()
    client = _client(live_ogem, issued.secret)
    source = upload(client, input_lines(PROVIDER, 2, failing=False))
    with pytest.raises(openai.RateLimitError) as refused:
        client.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert refused.value.status_code == 429
    assert refused.value.code == "budget_exceeded"
    assert not Batch.objects.filter(key=issued.key).exists()
    assert not emulators["openai"].batches_api.batches  # nothing reached the provider


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_budget_spent_mid_batch_cancels_it_upstream(  # type: ignore[no-untyped-def]
    provider: str, passthrough, live_ogem, emulators
) -> None:
    holder = {
        "openai": emulators["openai"].batches_api,
        "anthropic": emulators["anthropic"].batches,
    }[provider]
    holder.hold = True  # the provider keeps the batch running until it is cancelled
    team = TeamFactory()
    issued = key_create(name="key", team=team, max_budget=Decimal("1"))
    client = _client(live_ogem, issued.secret)
    source = upload(client, input_lines(provider, 2, failing=False))
    batch = client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    wait_for(
        lambda: Batch.objects.filter(batch_id=batch.id).exclude(upstream_batch_id="").exists(),
        what="the batch to reach the provider",
    )
    # Other requests of the key spend its whole budget meanwhile.
    from gateway.auth import caller_by_key_id

    caller = async_to_sync(caller_by_key_id)(key_id=issued.key.pk)
    assert caller is not None
    async_to_sync(governance_charge)(
        caller=caller,
        model="other",
        endpoint=Endpoint.CHAT,
        charges=[Charge(request_id=f"live-{uuid.uuid4().hex}", tokens=10, cost=Decimal("1"))],
    )
    done = _ended(client, batch.id)
    assert done.status == "cancelled"
    assert done.errors is not None and done.errors.data[0].code == "budget_exceeded"
    upstream_id = Batch.objects.get(batch_id=batch.id).upstream_batch_id
    if provider == "openai":
        assert holder.batches[upstream_id]["status"] == "cancelled"
    else:
        assert holder.items[upstream_id]["cancel_initiated_at"] is not None
