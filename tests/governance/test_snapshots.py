"""The per-process budget snapshots: a flush is never undone by a query that started before it."""

from __future__ import annotations

import pytest

from gateway import governance
from tests.factories import TeamFactory


@pytest.mark.django_db(transaction=True)
def test_snapshots_read_before_a_flush_are_not_kept() -> None:
    team = TeamFactory()
    key = ("team", team.pk)
    governance.governance_snapshot_flush()
    generation = governance._snapshots.generation  # a request starts loading the snapshots ...
    governance.governance_snapshot_flush()  # ... while a budget's commit flushes them
    assert governance._snapshots_load([key], generation) == {key: None}  # served to that request
    assert governance._snapshots.peek(key) is None  # but not kept for the next ones
    governance._snapshots_load([key], governance._snapshots.generation)
    assert governance._snapshots.peek(key) == (None, True)
