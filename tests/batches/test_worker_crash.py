"""A batch on real Celery workers (`celery -A ogem_site worker`, broker: the run's Redis): the
worker running it is SIGKILLed mid-batch, another takes it over from beat's sweep once the dead
worker's hold lapsed, and every custom_id is answered exactly once with its usage recorded once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import openai
import pytest
from django.db import connection

from batches.models import Batch, BatchLine
from billing.models import RequestLog
from billing.services import usage_drain
from tests.batches.conftest import chat_lines, jsonl, upload
from tests.emulators.fixtures import slow_mock
from tests.governance.cluster import Process, celery_worker_start, cluster_env
from tests.live import wait_for

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL") or "postgres" not in os.environ.get("DATABASE_URL", ""),
        reason="real Celery workers need the run's Redis (broker) and PostgreSQL",
    ),
    # Tasks go to the real workers through the broker; the test settings' eager mode is moot.
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

MODEL = "crash-chat"
SLOW = "crash-slow"  # every fourth line: a chunk's other lines are answered long before it
LINES = 40


def _input() -> bytes:
    return b"".join(
        chat_lines(1, model=SLOW if n % 4 == 3 else MODEL, start=n) for n in range(LINES)
    )


def _events(batch_id: str) -> list[str]:
    """The request ids of the batch's usage events in the stream (not drained yet)."""
    from billing.usage import usage_event_decode, usage_stream_key
    from ogem_site.redis import redis_client_sync

    events = [
        usage_event_decode(fields[b"e"])
        for _, fields in redis_client_sync().xrange(usage_stream_key())
    ]
    return [event["request_id"] for event in events if event.get("batch_id") == batch_id]


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_nothing(  # type: ignore[no-untyped-def]
    broker: str,
    settings,
    live_ogem,
    make_key: Callable[..., str],
    install_deployments,
    tmp_path: Path,
) -> None:
    from ogem_site.celery import app

    install_deployments(
        slow_mock(MODEL, latency_ms=50, upstream_model="mock-chat"),
        slow_mock(SLOW, latency_ms=1500, upstream_model="mock-chat"),
    )
    settings.OGEM_FILES_BATCH_MIXED_MODELS = True
    config = tmp_path / "batches.yaml"
    config.write_text(
        "model_list:\n"
        + "".join(
            f"  - model_name: {name}\n"
            "    litellm_params:\n"
            "      model: mock/mock-chat\n"
            f"      latency_ms: {latency}\n"
            for name, latency in ((MODEL, 50), (SLOW, 1500))
        )
    )
    env = cluster_env(tmp=tmp_path, emulator_url="http://127.0.0.1:9", usage_stream=broker)
    env.update(
        # Not the test settings, whose file storage is a directory of each test process: the
        # workers read the input and write the results where this test process stores files.
        DJANGO_SETTINGS_MODULE="ogem_site.settings.base",
        OGEM_CONFIG=str(config),
        OGEM_BATCH_RUNNER="celery",
        OGEM_BATCH_LEASE_SECONDS="2",
        OGEM_BATCH_CONCURRENCY="4",
        OGEM_FILES_DIR=str(tmp_path / "files"),
    )
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=make_key(), max_retries=0)
    workers: list[Process] = []
    try:
        doomed = celery_worker_start(env, name="doomed", queue="celery")
        workers.append(doomed)
        source = upload(client, _input())
        batch = client.batches.create(
            input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
        )

        def answered() -> int:
            return BatchLine.objects.filter(batch__batch_id=batch.id).count()

        # Killed when some lines were answered (their usage settled) but not yet kept: the
        # chunk they are in still waits for its slow line.
        wait_for(
            lambda: answered() >= 4 and len(_events(batch.id)) > answered(),
            timeout=60,
            what="lines answered and not yet kept",
        )
        doomed.kill()
        at_kill = answered()
        assert at_kill < LINES, "the batch ended before the worker was killed"
        row = Batch.objects.get(batch_id=batch.id)
        assert row.status == "in_progress" and row.lease_owner  # the dead worker's hold

        survivor = celery_worker_start(env, name="survivor", queue="celery")
        workers.append(survivor)

        def ended() -> bool:
            # What beat does every few seconds: a batch whose hold lapsed is run again.
            status = Batch.objects.get(batch_id=batch.id).status
            if status in ("in_progress", "finalizing"):
                app.send_task("batches.tasks.batches_sweep")
            return status == "completed"

        wait_for(ended, timeout=90, what="the survivor to finish the batch")
    finally:
        for worker in workers:
            worker.kill()
        connection.close()

    done = client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert (
        done.request_counts.total,
        done.request_counts.completed,
        done.request_counts.failed,
    ) == (
        LINES,
        LINES,
        0,
    )
    lines = jsonl(client.files.content(done.output_file_id).read())
    assert [line["custom_id"] for line in lines] == [f"req-{n}" for n in range(LINES)]
    for n, line in enumerate(lines):
        assert line["response"]["body"]["choices"][0]["message"]["content"] == (
            f"Mock reply to: line {n}"
        )
    # Usage once per line: one usage event each (the lines answered but not kept when their
    # worker died ran again under the same request ids, and their second settle was not
    # applied) ...
    events = _events(batch.id)
    assert len(events) == len(set(events)) == LINES
    # ... and one request log row each, under the line's own request id.
    while usage_drain():
        pass
    logs = RequestLog.objects.filter(batch_id=batch.id)
    assert logs.count() == LINES
    assert sorted(logs.values_list("request_id", flat=True)) == sorted(
        line["response"]["request_id"] for line in lines
    )
