"""`python -m bench --batch N`: an N-line chat batch run by one Celery worker process against the
nginx mock (docs/batches.md, docs/benchmark.md): lines per second and the worker's peak RSS.
`--batch-during N`: the web worker's /v1 figures (wrk) alone, then while such a batch runs."""

from __future__ import annotations

import io
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from bench.load import WrkResult
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


def _worker_start(
    ogem: Ogem, workdir: Path, core: int | None, *, idle: bool = False
) -> subprocess.Popen:
    env = {**ogem.env, "OGEM_BATCH_RUNNER": "celery"}
    if idle:
        env["OGEM_CELERY_CPU_PRIORITY"] = "idle"
    argv = [python(), "-m", "celery", "-A", "ogem_site", "worker", "--pool", "solo"]
    argv += ["--concurrency", "1", "--loglevel", "WARNING", "--without-heartbeat"]
    argv += ["--without-gossip", "--without-mingle"]
    log = (workdir / "worker.log").open("w")
    return subprocess.Popen(pinned(argv, core), cwd=ROOT, env=env, stdout=log, stderr=log)


def _batch_create(client: httpx.Client, lines: int) -> str:
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
    return str(created.json()["id"])


def batch_run(ogem: Ogem, *, lines: int, workdir: Path, core: int | None) -> str:
    """Upload the file, start one worker, create the batch and time it from `in_progress` to
    `completed`, sampling the worker's RSS (its pool process's too) twice a second."""
    worker = _worker_start(ogem, workdir, core)
    auth = {"Authorization": ogem.headers["Authorization"]}
    client = httpx.Client(base_url=f"{ogem.url}/v1", headers=auth, timeout=600)
    try:
        batch_id = _batch_create(client, lines)
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


def batch_during_run(
    ogem: Ogem,
    *,
    lines: int,
    workdir: Path,
    core: int | None,
    measure: Callable[[int], WrkResult],
    concurrencies: tuple[int, ...] = (1, 50),
    own_core: bool = False,
) -> str:
    """The web worker's /v1 figures (`measure(concurrency)`: wrk) alone, then while an N-line
    batch runs on a Celery worker that shares its core at the idle CPU priority
    (OGEM_CELERY_CPU_PRIORITY=idle: batch work takes only the CPU live traffic leaves, as
    Ogem's batch queue priority yields to live requests), with the lines the batch
    answered during each measurement. `own_core`: the worker runs at normal priority on `core`,
    the load's (as on a machine with a core for it), not Ogem's."""
    alone = {concurrency: measure(concurrency) for concurrency in concurrencies}
    worker = _worker_start(ogem, workdir, core, idle=not own_core)
    auth = {"Authorization": ogem.headers["Authorization"]}
    client = httpx.Client(base_url=f"{ogem.url}/v1", headers=auth, timeout=600)
    during: dict[int, tuple[WrkResult, int]] = {}
    try:
        batch_id = _batch_create(client, lines)

        def answered() -> int:
            batch = client.get(f"/batches/{batch_id}").json()
            if batch["status"] not in ("validating", "in_progress"):
                raise BenchError(f"the batch was {batch['status']} mid-run: use more lines")
            return int(batch["request_counts"]["completed"])

        deadline = time.monotonic() + 120
        while answered() == 0:  # the worker has started on the batch
            if time.monotonic() > deadline:
                raise BenchError(
                    "the batch had not started after 120 s: at the idle CPU priority its worker "
                    "gets no CPU on a saturated machine (run it quiet, or --batch-core load)"
                )
            time.sleep(0.2)
        for concurrency in concurrencies:
            before = answered()
            result = measure(concurrency)
            during[concurrency] = (result, answered() - before)
    finally:
        client.close()
        stop(worker)
    rows = [
        f"## /v1 while a {lines:,}-line batch runs "
        + (
            "(its Celery worker on the load's core, normal priority)"
            if own_core
            else "(its Celery worker on Ogem's core, OGEM_CELERY_CPU_PRIORITY=idle)"
        ),
        "",
        "| concurrency | req/s alone | req/s during | change | p50 ms alone / during | "
        "batch lines answered during |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for concurrency in concurrencies:
        base = alone[concurrency]
        result, done = during[concurrency]
        change = (result.requests_per_second / base.requests_per_second - 1) * 100
        rows.append(
            f"| {concurrency} | {base.requests_per_second:,.0f} | "
            f"{result.requests_per_second:,.0f} | {change:+.1f}% | "
            f"{base.p50_ms:.2f} / {result.p50_ms:.2f} | {done:,} |"
        )
    return "\n".join(rows)
