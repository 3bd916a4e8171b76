"""The mock upstream: nginx serving static OpenAI answers, far faster than any gateway."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.bodies import completion_json, completion_sse
from bench.procs import ROOT, at_idle_priority, free_port, pinned, python, stop, wait_port

# What a client sends nginx directly (the mock answers any key): the baselines' requests.
DIRECT_HEADERS = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}

CONFIG = """
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    etag off;
    # Static files refuse POST with 405; answer it with the file instead.
    error_page 405 =200 $uri;
    server {{
        listen 127.0.0.1:{json_port} backlog=4096;
        location = /v1/chat/completions {{
            default_type application/json;
            alias {dir}/completion.json;
        }}
    }}
    server {{
        listen 127.0.0.1:{sse_port} backlog=4096;
        location = /v1/chat/completions {{
            default_type text/event-stream;
            alias {dir}/completion.sse;
        }}
    }}
}}
"""


@dataclass
class MockUpstream:
    process: subprocess.Popen
    json_port: int
    sse_port: int
    slow_port: int
    slow: subprocess.Popen | None = None  # bench.slow_upstream, serving slow_port

    def base(self, port: int) -> str:
        return f"http://127.0.0.1:{port}/v1"

    def stop(self) -> None:
        stop(self.slow)
        stop(self.process)


def start_nginx(
    *,
    nginx: str,
    workdir: Path,
    core: int | None,
    slow_events_per_second: float = 2,
    idle: bool = False,
) -> MockUpstream:
    """nginx (JSON and SSE ports) and the slow upstream, on `core`. `idle`: both under SCHED_IDLE,
    for a provider whose CPU is not one of the cores measured (`--batch-during`'s batch upstream,
    bench/batches.py)."""

    def placed(argv: list[str]) -> list[str]:
        return pinned(at_idle_priority(argv) if idle else argv, core)

    workdir.mkdir(parents=True, exist_ok=True)
    sse = completion_sse()
    (workdir / "completion.json").write_bytes(completion_json())
    (workdir / "completion.sse").write_bytes(sse)
    ports = {"json_port": free_port(), "sse_port": free_port()}
    # As root, nginx's worker would switch to `nobody`, who cannot read a private temp dir.
    user = "user root;" if os.geteuid() == 0 else ""
    config = CONFIG.format(
        user=user,
        dir=workdir,
        **ports,
    )
    conf = workdir / "nginx.conf"
    conf.write_text(config)
    process = subprocess.Popen(
        placed([nginx, "-p", str(workdir), "-c", str(conf), "-e", "stderr"]),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    slow_port = free_port()
    slow = subprocess.Popen(
        placed(
            [python(), "-m", "bench.slow_upstream", "--port", str(slow_port), "--rate",
             str(slow_events_per_second)],
        ),
        cwd=ROOT,
    )  # fmt: skip
    upstream = MockUpstream(process=process, slow_port=slow_port, slow=slow, **ports)
    try:
        for port in ports.values():
            wait_port(port, process, "nginx")
        wait_port(slow_port, slow, "the slow upstream")
    except BaseException:
        upstream.stop()
        raise
    return upstream
