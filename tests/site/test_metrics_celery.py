"""Celery's series on a real worker (`celery -A ogem_site worker`, broker: the run's Redis)
(docs/metrics.md): messages waiting in the queue, read from the broker at scrape time, and tasks
that raise on the worker, counted by Ogem's base task class and read by the web process."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.governance.cluster import celery_worker_start, cluster_env
from tests.site.test_metrics import _scrape

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL") or "postgres" not in os.environ.get("DATABASE_URL", ""),
        reason="a real Celery worker needs the run's Redis (broker) and PostgreSQL",
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

TASK = "files.tasks.files_expired_purge"


def test_queue_length_and_failures_of_a_real_worker(live_ogem, settings: Any, tmp_path: Path):  # type: ignore[no-untyped-def]
    from ogem_site.celery import app

    app.control.purge()
    failures = ("ogem_celery_task_failures_total", (("task", TASK),))
    queued = ("ogem_celery_queue_length", (("queue", "celery"),))
    before = _scrape(live_ogem.url)
    assert before[queued] == 0
    for _ in range(2):
        app.send_task(TASK, args=["an argument it does not take"], queue="celery")
    assert _scrape(live_ogem.url)[queued] == 2

    stream = f"usage-celery-metrics-{uuid.uuid4().hex[:8]}"
    env = cluster_env(tmp=tmp_path, emulator_url="http://127.0.0.1:9", usage_stream=stream)
    worker = celery_worker_start(env, name="metrics", queue="celery")
    try:
        deadline = time.monotonic() + 60
        while True:
            after = _scrape(live_ogem.url)
            if after.get(failures, 0.0) - before.get(failures, 0.0) >= 2:
                break
            assert time.monotonic() < deadline, "the worker's failures were never counted"
            time.sleep(0.2)
        assert after[failures] - before.get(failures, 0.0) == 2
        assert after[queued] == 0
    finally:
        worker.kill()
        app.control.purge()
        import redis

        redis.Redis.from_url(settings.REDIS_URL).hdel(
            f"{settings.OGEM_CACHE_PREFIX}:metrics:celery_task_failures", TASK
        )
