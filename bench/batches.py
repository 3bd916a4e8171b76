"""`python -m bench --batch N`: an N-line chat batch run by one Celery worker process against the
nginx mock (docs/batches.md, docs/benchmark.md): lines per second and the worker's peak RSS.

`--batch-during N`: the web worker's /v1 figures (wrk) while such a batch runs, in windows with
its worker paused and running in turn (`--rounds` pairs a concurrency). What
it measures is issue 21's acceptance: Ogem's /v1 while Ogem's batch worker runs beside it. So
only Ogem's processes share the measured cores as they would in production:
- the worker shares the web worker's core at OGEM_CELERY_CPU_PRIORITY=idle (SCHED_IDLE), or
  with `--batch-core load` runs at normal priority on the load's core;
- the batch's lines go to an nginx mock of their own (the worker's own OGEM_CONFIG: the same
  models on that upstream), at SCHED_IDLE on the load's core: a provider's CPU is the
  provider's, while on the nginx /v1 calls (`--batch-upstream shared`) every line's answer
  took load-core time from /v1's answers. Being idle, that nginx answers the batch only on
  time the load leaves, so the batch's pace is set by both cores' spare time;
- the worker's PostgreSQL backends are kept on the load's core (bench/pg_backends.py;
  `--batch-db-core any` leaves them to the kernel): the machine's PostgreSQL is shared, its
  backends float onto Ogem's core at normal priority, where no database host's CPU is.
- the worker's lines yield the CPU while other processes keep its CPUs busy (batches/cpu_yield.py,
  OGEM_BATCH_YIELD_CPU at its default), as in production; `--batch-yield off` measures SCHED_IDLE
  alone.
Redis stays shared, as in production: its limits, budgets and usage stream are the web
worker's too, and the batch's commands are served by the same Redis on the load's core.
The report gives, per concurrency, the change in requests per second, the web worker's CPU
time a request alone and during (a batch that only costs CPU elsewhere leaves it as it was),
and the batch lines answered meanwhile: read from the batch's `request_counts` (completed and
failed: a line that failed ran too), which the runner keeps within a second of each answer even
while a chunk's lines start at the minimum pace (batches/runner.py PROGRESS_SECONDS), so a
window's count is right to within a second's lines at either end."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

from bench.load import WrkResult
from bench.ogem import Ogem
from bench.pg_backends import APPLICATION_NAME, BackendsPinned
from bench.procs import ROOT, BenchError, cpu_seconds, pinned, python, rss_kib, stop


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
    ogem: Ogem,
    workdir: Path,
    core: int | None,
    *,
    idle: bool = False,
    config: Path | None = None,
    cpu_yield: bool = True,
) -> subprocess.Popen:
    """One Celery worker process with Ogem's environment; `config`: its own OGEM_CONFIG (the
    same models on another upstream); `cpu_yield`: its lines yield the CPU to other processes
    (OGEM_BATCH_YIELD_CPU at its default), or never."""
    env = {**ogem.env, "OGEM_BATCH_RUNNER": "celery", "PGAPPNAME": APPLICATION_NAME}
    env.pop("OGEM_BATCH_YIELD_CPU", None)
    if not cpu_yield:
        env["OGEM_BATCH_YIELD_CPU"] = "off"
    if idle:
        env["OGEM_CELERY_CPU_PRIORITY"] = "idle"
    if config is not None:
        env["OGEM_CONFIG"] = str(config)
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
    rounds: int = 3,
    own_core: bool = False,
    idle: bool = True,
    worker_config: Path | None = None,
    database_core: int | None = None,
    cpu_yield: bool = True,
) -> str:
    """The web worker's /v1 figures (`measure(concurrency)`: wrk) with the batch's Celery worker
    paused and running in turn, `rounds` pairs a concurrency, once the batch has started: the
    worker shares Ogem's core at the idle CPU priority (OGEM_CELERY_CPU_PRIORITY=idle: batch
    work takes only the CPU live traffic leaves, as Ogem's batch queue priority yields to live
    requests). Neighbouring windows compare like with like: a machine whose speed drifts over a
    run (another tenant of the host, a warming cache) moves both, where "alone, then during"
    read the drift as the batch's effect. The worker is paused with SIGSTOP (its threads and
    connections kept), resumed with SIGCONT. Also given: the lines the batch answered while
    running and the web worker's CPU time a request. `own_core`: the worker runs on `core`,
    the load's (as on a machine with a core for it), not Ogem's; `idle`: at
    OGEM_CELERY_CPU_PRIORITY=idle (SCHED_IDLE), else at normal priority.
    `worker_config`: the worker's OGEM_CONFIG, the batch's models on an upstream of their own
    (None: Ogem's, on the nginx that /v1 calls too). `database_core`: where the worker's
    PostgreSQL backends are kept (bench/pg_backends.py). `cpu_yield`: the batch's lines yield
    the CPU while other processes keep the worker's CPUs busy (batches/cpu_yield.py; the
    default, as in production), or never (`--batch-yield off`: SCHED_IDLE alone)."""
    servers = ogem.server_pids()

    def measured(concurrency: int) -> tuple[WrkResult, float]:
        before = sum(cpu_seconds(pid) for pid in servers)
        result = measure(concurrency)
        spent = sum(cpu_seconds(pid) for pid in servers) - before
        return result, spent * 1000 / max(result.requests, 1)

    database_url = ogem.env.get("DATABASE_URL", "")
    pinning = (
        BackendsPinned(database_url=database_url, core=database_core)
        if database_core is not None and database_url.startswith("postgres")
        else contextlib.nullcontext()
    )
    worker = _worker_start(
        ogem, workdir, core, idle=idle, config=worker_config, cpu_yield=cpu_yield
    )
    auth = {"Authorization": ogem.headers["Authorization"]}
    client = httpx.Client(base_url=f"{ogem.url}/v1", headers=auth, timeout=600)
    paused: dict[int, list[tuple[WrkResult, float]]] = {c: [] for c in concurrencies}
    running: dict[int, list[tuple[WrkResult, float]]] = {c: [] for c in concurrencies}
    answered_running = dict.fromkeys(concurrencies, 0)
    try:
        with pinning:
            batch_id = _batch_create(client, lines)

            def answered() -> int:
                batch = client.get(f"/batches/{batch_id}").json()
                if batch["status"] not in ("validating", "in_progress"):
                    raise BenchError(f"the batch was {batch['status']} mid-run: use more lines")
                counts = batch["request_counts"]
                return int(counts["completed"]) + int(counts["failed"])

            _started(answered)
            for concurrency in concurrencies:
                for _ in range(rounds):
                    os.kill(worker.pid, signal.SIGSTOP)
                    try:
                        paused[concurrency].append(measured(concurrency))
                    finally:
                        os.kill(worker.pid, signal.SIGCONT)
                    before = answered()
                    running[concurrency].append(measured(concurrency))
                    answered_running[concurrency] += answered() - before
    finally:
        client.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGCONT)
        stop(worker)
    where = f"its Celery worker on {'the load' if own_core else 'Ogem'}'s core, " + (
        "OGEM_CELERY_CPU_PRIORITY=idle" if idle else "normal priority"
    )
    where += (
        ", its lines yielding the CPU (OGEM_BATCH_YIELD_CPU default)"
        if cpu_yield
        else ", OGEM_BATCH_YIELD_CPU=off"
    )
    where += (
        "; its upstream an nginx of its own at SCHED_IDLE on the load's core"
        if worker_config is not None
        else "; its upstream the nginx /v1 calls"
    )
    if isinstance(pinning, BackendsPinned):
        where += f"; its {pinning.pinned} PostgreSQL backends on the load's core"
    rows = [
        f"## /v1 while a {lines:,}-line batch runs ({where})",
        "",
        f"{rounds} pairs of windows a concurrency, the worker paused (SIGSTOP) then running; "
        "medians of each.",
        "",
        "| concurrency | req/s paused | req/s running | change | pairs' changes | "
        "p50 ms paused / running | web worker CPU ms a request paused / running | "
        "batch lines answered running |",
        "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for concurrency in concurrencies:
        base = statistics.median(r.requests_per_second for r, _ in paused[concurrency])
        result = statistics.median(r.requests_per_second for r, _ in running[concurrency])
        pairs = ", ".join(
            _change(b.requests_per_second, r.requests_per_second)
            for (b, _), (r, _) in zip(paused[concurrency], running[concurrency], strict=True)
        )
        rows.append(
            f"| {concurrency} | {base:,.0f} | {result:,.0f} | "
            f"{_change(base, result)} | {pairs} | "
            f"{statistics.median(r.p50_ms for r, _ in paused[concurrency]):.2f} / "
            f"{statistics.median(r.p50_ms for r, _ in running[concurrency]):.2f} | "
            f"{statistics.median(c for _, c in paused[concurrency]):.3f} / "
            f"{statistics.median(c for _, c in running[concurrency]):.3f} | "
            f"{answered_running[concurrency]:,} |"
        )
    return "\n".join(rows)


def _change(base: float, value: float) -> str:
    return f"{(value / base - 1) * 100:+.1f}%" if base else "n/a"


def _started(answered: Callable[[], int]) -> None:
    """Return once the worker answered the batch's first lines."""
    deadline = time.monotonic() + 120
    while answered() == 0:
        if time.monotonic() > deadline:
            raise BenchError(
                "the batch had not started after 120 s: at the idle CPU priority its worker "
                "gets no CPU on a saturated machine (run it quiet, or --batch-core load)"
            )
        time.sleep(0.2)
