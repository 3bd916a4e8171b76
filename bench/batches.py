"""`python -m bench --batch N`: an N-line chat batch run by one Celery worker process against the
nginx mock (docs/batches.md, docs/benchmark.md): lines per second and the worker's peak RSS."""

from __future__ import annotations

import io
import subprocess
import time
from pathlib import Path

import httpx
import orjson

from bench.ogem import Ogem
from bench.procs import ROOT, BenchError, pinned, python, rss_kib, stop


def _input(lines: int) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "custom_id": f"line-{n}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {
                    "model": "bench-chat",
                    "messages": [{"role": "user", "content": f"Hello {n}"}],
                },
            }
        )
        + b"\n"
        for n in range(lines)
    )


def batch_run(ogem: Ogem, *, lines: int, workdir: Path, core: int | None) -> str:
    """Upload the file, start one worker, create the batch and time it from `in_progress` to
    `completed`, sampling the worker's RSS (its pool process's too) twice a second."""
    env = {**ogem.env, "OGEM_BATCH_RUNNER": "celery"}
    argv = [python(), "-m", "celery", "-A", "ogem_site", "worker", "--pool", "solo"]
    argv += ["--concurrency", "1", "--loglevel", "WARNING", "--without-heartbeat"]
    argv += ["--without-gossip", "--without-mingle"]
    log = (workdir / "worker.log").open("w")
    worker = subprocess.Popen(pinned(argv, core), cwd=ROOT, env=env, stdout=log, stderr=log)
    auth = {"Authorization": ogem.headers["Authorization"]}
    client = httpx.Client(base_url=f"{ogem.url}/v1", headers=auth, timeout=600)
    try:
        upload = client.post(
            "/files",
            data={"purpose": "batch"},
            files={"file": ("bench.jsonl", io.BytesIO(_input(lines)), "application/jsonl")},
        )
        if upload.status_code != 200:
            raise BenchError(f"upload answered {upload.status_code}: {upload.text[:300]}")
        created = client.post(
            "/batches",
            json={
                "input_file_id": upload.json()["id"],
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
            },
        )
        if created.status_code != 200:
            raise BenchError(f"batch create answered {created.status_code}: {created.text[:300]}")
        batch_id = created.json()["id"]
        peak = 0
        started = None
        while True:
            if worker.poll() is not None:
                raise BenchError(f"the Celery worker exited; its log: {workdir / 'worker.log'}")
            peak = max(peak, rss_kib(worker.pid))
            batch = client.get(f"/batches/{batch_id}").json()
            if started is None and batch["status"] != "validating":
                started = time.monotonic()
            if batch["status"] in ("completed", "failed", "expired", "cancelled"):
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - (started or time.monotonic())
        counts = batch["request_counts"]
        seconds = (batch["completed_at"] or 0) - (batch["in_progress_at"] or 0)
        return (
            f"## Batch of {lines:,} chat lines, one Celery worker (solo pool)\n\n"
            "| status | completed | failed | seconds (in_progress to completed) | lines/s | "
            "worker peak RSS |\n| --- | --- | --- | --- | --- | --- |\n"
            f"| {batch['status']} | {counts['completed']:,} | {counts['failed']:,} | "
            f"{seconds or elapsed:.0f} | {counts['completed'] / max(seconds or elapsed, 1):,.0f} | "
            f"{peak / 1024:.0f} MiB |"
        )
    finally:
        client.close()
        stop(worker)
