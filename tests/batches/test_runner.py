"""The batch runner's choices that the live tests cannot see: the Caller its lines run as (queued
behind live traffic), the hold of a batch (one worker at a time, per-organization bound), the
line's stable request id."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.utils import timezone

from batches.models import Batch
from batches.runner import _batch_caller, batch_lease_take, line_request_id
from keys.services import key_create
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _batch(key, name: str) -> Batch:  # type: ignore[no-untyped-def]
    now = timezone.now()
    return Batch.objects.create(
        batch_id=f"batch_{name}",
        organization_id=key.organization_id,
        team_id=key.team_id,
        key=key,
        endpoint="/v1/chat/completions",
        input_file_id="file-x",
        request_total=1,
        created_at=now,
        expires_at=now + timedelta(hours=24),
    )


def test_lines_queue_behind_live_traffic_as_the_creating_key(settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_BATCH_QUEUE_PRIORITY = 1000
    team = TeamFactory()
    plain = key_create(name="plain", team=team).key
    urgent = key_create(name="urgent", team=team, metadata={"priority": 5}).key
    patient = key_create(name="patient", team=team, metadata={"priority": 5000}).key
    callers = {
        key.name: asyncio.run(_batch_caller(_batch(key, key.name)))
        for key in (plain, urgent, patient)
    }
    assert {name: caller.priority for name, caller in callers.items()} == {  # type: ignore[union-attr]
        "plain": 1000,  # live requests: 100
        "urgent": 1000,  # a key's high priority is for its live requests, not its batches
        "patient": 5000,
    }
    assert callers["plain"].key_id == plain.pk  # type: ignore[union-attr]
    assert callers["plain"].team_id == team.pk  # type: ignore[union-attr]


def test_one_worker_holds_a_batch_and_an_organization_runs_a_bounded_number(settings) -> None:  # type: ignore[no-untyped-def]
    settings.OGEM_BATCH_TENANT_RUNNING = 1
    key = key_create(name="k", team=TeamFactory()).key
    first, second = _batch(key, "one"), _batch(key, "two")
    held = batch_lease_take(batch_id=first.batch_id, owner="worker-a")
    assert held is not None and held.status == "in_progress"
    assert batch_lease_take(batch_id=first.batch_id, owner="worker-b") is None
    assert batch_lease_take(batch_id=first.batch_id, owner="worker-a") is not None  # its own
    # The organization already runs one: the second waits for the sweep.
    assert batch_lease_take(batch_id=second.batch_id, owner="worker-b") is None
    # A hold that lapsed (its worker died) is taken over.
    Batch.objects.filter(pk=first.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert batch_lease_take(batch_id=first.batch_id, owner="worker-b") is not None
    Batch.objects.filter(pk=first.pk).update(status="completed")
    assert batch_lease_take(batch_id=first.batch_id, owner="worker-c") is None  # ended
    assert batch_lease_take(batch_id=second.batch_id, owner="worker-b") is not None


def test_a_lines_request_id_is_the_same_on_every_run() -> None:
    assert line_request_id(batch_id="batch_a", line=3) == line_request_id(
        batch_id="batch_a", line=3
    )
    assert line_request_id(batch_id="batch_a", line=3) != line_request_id(
        batch_id="batch_a", line=4
    )
    assert line_request_id(batch_id="batch_a", line=3) != line_request_id(
        batch_id="batch_b", line=3
    )
