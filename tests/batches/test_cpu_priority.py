"""OGEM_CELERY_CPU_PRIORITY=idle (ogem_site/cpu_priority.py, docs/batches.md): a real Celery
worker puts every one of its threads under SCHED_IDLE before it takes tasks, and beat before it
sends any; `normal` leaves the policy alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.governance.cluster import REPO, celery_worker_start, cluster_env

pytestmark = [
    pytest.mark.live,
    pytest.mark.django_db,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SCHED_IDLE is Linux's"),
    pytest.mark.skipif(
        not os.environ.get("REDIS_URL") or "postgres" not in os.environ.get("DATABASE_URL", ""),
        reason="a real Celery worker needs the run's Redis (broker) and PostgreSQL",
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def _policies(pid: int) -> set[int]:
    return {os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def _answers_ping(hostname: str) -> bool:
    from ogem_site.celery import app

    replies = app.control.ping(destination=[hostname], timeout=1.0)
    return any(hostname in reply for reply in replies)


def _beat_start(env: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "celery", "-A", "ogem_site", "beat", "--loglevel", "WARNING"]
    argv += ["--schedule", str(tmp_path / "beat-schedule")]
    return subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.mark.parametrize(
    ("priority", "policy"), [("idle", os.SCHED_IDLE), ("normal", os.SCHED_OTHER)]
)
def test_worker_and_beat_run_at_the_configured_cpu_priority(
    tmp_path: Path, priority: str, policy: int
) -> None:
    import redis

    name = f"prio-{priority}-{uuid.uuid4().hex[:6]}"
    env = cluster_env(
        tmp=tmp_path,
        emulator_url="http://127.0.0.1:9",
        usage_stream=f"usage-{name}",
        OGEM_CELERY_CPU_PRIORITY=priority,
    )
    worker = celery_worker_start(env, name=name, queue=f"q-{name}")
    # Beat with a prefix of its own, so that the broker queue it sends to is this test's alone,
    # and the base settings: the test settings' eager tasks would run in beat, not be sent.
    beat = _beat_start(
        {**env, "OGEM_CACHE_PREFIX": name, "DJANGO_SETTINGS_MODULE": "ogem_site.settings.base"},
        tmp_path,
    )
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        deadline = time.monotonic() + 60
        # It answers a ping once it consumes: the priority is set before that.
        while not _answers_ping(f"{name}@soak"):
            assert worker.alive(), "the worker exited"
            assert time.monotonic() < deadline, "the worker never answered"
        # Beat's first task sent (the usage drain's, 2 s in): its priority is set before that.
        while not client.blpop([f"{name}:celery:celery"], timeout=1):
            assert beat.poll() is None, "beat exited"
            assert time.monotonic() < deadline, "beat sent nothing"
        assert _policies(worker.popen.pid) == {policy}
        assert _policies(beat.pid) == {policy}
    finally:
        worker.kill()
        beat.kill()
        beat.wait()
        for key in client.scan_iter(f"{name}:*"):
            client.delete(key)
