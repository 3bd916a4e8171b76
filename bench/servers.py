"""`python -m bench --asgi-servers`: uvicorn (uvloop, httptools) and granian on the same app."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path
from statistics import median

from bench.load import StreamResult, WrkResult, stream_probe, wrk_run
from bench.procs import ROOT, free_port, pinned, python, stop, wait_port

SERVERS = {
    "uvicorn": lambda app, port: [
        python(), "-m", "uvicorn", app, "--port", str(port), "--loop", "uvloop",
        "--http", "httptools", "--no-access-log", "--lifespan", "off", "--log-level", "warning",
    ],
    "granian": lambda app, port: [
        python(), "-m", "granian", "--interface", "asginl", "--port", str(port),
        "--workers", "1", "--loop", "uvloop", "--no-access-log", "--log-level", "warning", app,
    ],
}  # fmt: skip

CASES = [
    # (label, app, path, connections)
    ("tiny app JSON", "bench.asgi_app:application", "/json", 50),
    ("tiny app SSE, 20 events", "bench.asgi_app:application", "/sse", 50),
    ("Ogem /health/live", "ogem_site.asgi:application", "/health/live", 50),
    ("Ogem /admin/login/ (Django)", "ogem_site.asgi:application", "/admin/login/", 10),
]


def compare(
    *, wrk: str, workdir: Path, seconds: float, server_core: int, load_core: int, rounds: int = 3
) -> str:
    """Each case runs `rounds` times, servers interleaved, so that a noisy neighbour on the
    machine hurts both alike; the table shows the median and the best round."""
    env_dir = workdir / "servers"
    env_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[tuple[str, str], list[WrkResult]] = defaultdict(list)
    probes: dict[tuple[str, int], list[StreamResult]] = defaultdict(list)
    for _ in range(rounds):
        for label, app, path, conns in CASES:
            for name, argv_for in SERVERS.items():
                port = free_port()
                process = _start(argv_for(app, port), server_core, env_dir)
                try:
                    wait_port(port, process, name)
                    url = f"http://127.0.0.1:{port}{path}"
                    wrk_run(wrk=wrk, url=url, connections=conns, seconds=1, workdir=env_dir)
                    runs[name, label].append(
                        wrk_run(
                            wrk=wrk,
                            url=url,
                            connections=conns,
                            seconds=seconds,
                            workdir=env_dir,
                            core=load_core,
                        )
                    )
                    if path == "/sse":
                        timed = f"http://127.0.0.1:{port}/sse-timed"
                        for conns_timed in (1, 50):
                            probes[name, conns_timed].append(_timed_probe(timed, conns_timed))
                finally:
                    stop(process)
    rows = [
        "| server | case | conns | req/s median (best) | p50 ms | p99 ms |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for label, _app, _path, conns in CASES:
        for name in SERVERS:
            results = runs[name, label]
            rps = [result.requests_per_second for result in results]
            rows.append(
                f"| {name} | {label} | {conns} | {median(rps):,.0f} ({max(rps):,.0f}) | "
                f"{median(r.p50_ms for r in results):.2f} | "
                f"{median(r.p99_ms for r in results):.2f} |"
            )
    timing = [
        "| server | conns | first event p50 ms (median) | longest gap ms (median, worst) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for (name, conns), results in sorted(probes.items()):
        gaps = [result.max_gap_ms for result in results]
        timing.append(
            f"| {name} | {conns} | {median(r.ttfb_p50_ms for r in results):.1f} | "
            f"{median(gaps):.1f}, {max(gaps):.1f} |"
        )
    return "\n".join(
        [
            f"### Throughput ({rounds} interleaved rounds)",
            "",
            *rows,
            "",
            "### SSE chunk timing (20 events, 10 ms apart)",
            "",
            *timing,
        ]
    )


def _timed_probe(url: str, connections: int) -> StreamResult:
    return stream_probe(url=url, body=b"", headers={}, concurrency=connections, seconds=4)


def floor_start(*, core: int, workdir: Path) -> tuple[subprocess.Popen, str]:
    """granian as `manage.py serve` runs it, serving the tiny app's JSON on any path: what the
    server alone adds over nginx, before any of Ogem's Python runs. The caller stops it."""
    port = free_port()
    process = _start(SERVERS["granian"]("bench.asgi_app:application", port), core, workdir)
    wait_port(port, process, "granian")
    return process, f"http://127.0.0.1:{port}/json"


def _start(argv: list[str], core: int, workdir: Path) -> subprocess.Popen:
    env_log = (workdir / "server.log").open("a")
    return subprocess.Popen(pinned(argv, core), cwd=ROOT, stdout=env_log, stderr=env_log)
