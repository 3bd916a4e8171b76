"""The run runner outside a request, as a Celery worker runs it (assistants/runner.py and
tasks.py): one worker at a time holds a run, a second advance is a no-op, a run whose worker died
is taken again by the sweep once its hold lapsed, a cancel reaches a run in progress at its next
checkpoint, a revoked key fails its runs, and runs past `expires_at` expire."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from assistants import runner
from assistants.models import Message, Run, Thread
from assistants.services import assistant_create, run_cancel, run_create, thread_create
from assistants.tasks import runs_sweep
from billing.models import RequestLog
from billing.services import usage_drain
from gateway.context import Caller
from keys.services import key_create, key_revoke
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db(transaction=True)

MASTER = Caller(is_master=True)


def _run(caller: Caller = MASTER, *, text: str = "Hello") -> Run:
    assistant = assistant_create(
        caller=caller, fields={"model": "mock-chat", "instructions": "Be brief."}
    )
    thread = thread_create(
        caller=caller,
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": {"value": text, "annotations": []}}],
            }
        ],
        tool_resources={},
        metadata={},
    )
    return run_create(
        caller=caller,
        thread=thread,
        assistant=assistant,
        fields={"model": "mock-chat", "instructions": "Be brief.", "tools": []},
        additional_messages=[],
        enqueue=False,
    )


def _answers(thread: Thread) -> list[str]:
    return [
        m.content[0]["text"]["value"]
        for m in Message.objects.filter(thread=thread, role="assistant")
    ]


def test_a_second_advance_of_a_run_is_a_no_op() -> None:
    usage_drain()  # earlier tests' events
    before = RequestLog.objects.filter(model="mock-chat").count()
    run = _run()
    assert runner.run_advance_blocking(run_id=run.run_id) == "completed"
    assert runner.run_advance_blocking(run_id=run.run_id) == "completed"
    assert _answers(run.thread) == ["Mock reply to: Hello"]
    usage_drain()
    assert RequestLog.objects.filter(model="mock-chat").count() == before + 1
    run.refresh_from_db()
    assert run.lease_owner == "" and run.started_at is not None
    log = RequestLog.objects.filter(model="mock-chat").latest("created_at")
    assert run.usage == {
        "prompt_tokens": log.prompt_tokens,
        "completion_tokens": log.completion_tokens,
        "total_tokens": log.prompt_tokens + log.completion_tokens,
    }
    assert log.completion_tokens == 5  # "Mock reply to: Hello"


def test_a_held_run_is_left_to_its_worker_and_resumed_once_the_hold_lapsed() -> None:
    run = _run()
    taken = runner.run_claim(run_id=run.run_id, owner="worker-1")
    assert taken is not None and taken.status == "in_progress"
    # Another worker finds it held.
    assert runner.run_claim(run_id=run.run_id, owner="worker-2") is None
    assert runner.run_advance_blocking(run_id=run.run_id) == "in_progress"
    assert runs_sweep() == 0
    # worker-1 died: once its hold lapsed, the sweep hands the run to a worker (eager here).
    Run.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert runs_sweep() == 1
    run.refresh_from_db()
    assert run.status == "completed"
    assert _answers(run.thread) == ["Mock reply to: Hello"]
    # The dead worker's late write is refused: it no longer holds the run.
    assert runner.run_fail(
        run_id=run.run_id, owner="worker-1", code="server_error", message="x"
    ) == (None, None, None)


def test_a_cancel_reaches_a_run_in_progress_at_its_next_checkpoint() -> None:
    run = _run()
    runner.run_claim(run_id=run.run_id, owner="worker-1")
    assert run_cancel(run=run).status == "cancelling"
    ended = runner.run_checkpoint(run_id=run.run_id, owner="worker-1")
    assert ended is not None and ended.status == "cancelled" and ended.cancelled_at is not None
    assert _answers(run.thread) == []


def test_an_answer_arriving_after_a_cancel_is_dropped() -> None:
    run = _run()
    runner.run_claim(run_id=run.run_id, owner="worker-1")
    run_cancel(run=run)
    recorded, message, step = runner.run_text_record(
        run_id=run.run_id,
        owner="worker-1",
        text="late",
        usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        truncated=False,
    )
    assert recorded is not None and recorded.status == "cancelled"
    assert (message, step) == (None, None)
    assert recorded.usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


def test_a_revoked_keys_run_fails() -> None:
    issued = key_create(name="runner", team=TeamFactory())
    key = issued.key
    caller = Caller(key_id=key.pk, organization_id=key.organization_id, team_id=key.team_id)
    run = _run(caller)
    key_revoke(key=key)
    assert runner.run_advance_blocking(run_id=run.run_id) == "failed"
    run.refresh_from_db()
    assert run.last_error == {
        "code": "server_error",
        "message": "The key that created this run is no longer active.",
    }


def test_runs_past_their_expiry_expire_in_the_sweep() -> None:
    run = _run()
    Run.objects.filter(pk=run.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert runs_sweep() == 1
    run.refresh_from_db()
    assert run.status == "expired"
    assert runner.run_advance_blocking(run_id=run.run_id) == "expired"
