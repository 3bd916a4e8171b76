"""The benchmark's own parts: its wrk reader, its mock upstreams and its slow-stream probe (over
real sockets)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import orjson
import pytest

from bench.bodies import CHUNKS, REQUEST_JSON
from bench.load import slow_stream_probe, wrk_parse
from bench.nginx import start_nginx
from bench.procs import BenchError

WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:4000/v1/chat/completions
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us  101.00us   3.10ms   90.00%
    Req/Sec    12.20k   300.00    12.80k    70.00%
  Latency Distribution
     50%  790.00us
     75%  850.00us
     90%  930.00us
     99%    1.42ms
  97123 requests in 8.00s, 60.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  12140.37
Transfer/sec:      7.50MB
"""


def test_wrk_output_is_read_exactly():
    result = wrk_parse(WRK_OUTPUT)
    assert result.requests_per_second == 12140.37
    assert result.p50_ms == pytest.approx(0.79)
    assert result.p99_ms == pytest.approx(1.42)
    assert result.requests == 97123
    assert result.errors == 7


def test_unreadable_wrk_output_is_an_error():
    with pytest.raises(BenchError, match="cannot read wrk output"):
        wrk_parse("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.skipif(not shutil.which("nginx", path="/usr/sbin:/usr/bin"), reason="needs nginx")
def test_mock_upstream_answers_posts_with_static_openai_bodies(tmp_path):
    upstream = start_nginx(
        nginx=shutil.which("nginx", path="/usr/sbin:/usr/bin"), workdir=tmp_path, core=None
    )
    try:
        json_url = f"{upstream.base(upstream.json_port)}/chat/completions"
        response = httpx.post(json_url, content=REQUEST_JSON)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert body["object"] == "chat.completion"
        assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}

        sse_url = f"{upstream.base(upstream.sse_port)}/chat/completions"
        response = httpx.post(sse_url, content=REQUEST_JSON)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        events = [e for e in response.text.split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        chunks = [orjson.loads(e.removeprefix("data: ")) for e in events[:-1]]
        assert len(chunks) == CHUNKS + 1
        assert chunks[-1]["usage"]["total_tokens"] == 30
        assert "".join(c["choices"][0]["delta"]["content"] for c in chunks[:-1]) == "Hello! " * 20
    finally:
        upstream.stop()
    assert upstream.process.returncode is not None


@pytest.mark.skipif(not shutil.which("nginx", path="/usr/sbin:/usr/bin"), reason="needs nginx")
@pytest.mark.skipif(
    not hasattr(os, "SCHED_IDLE") or not shutil.which("chrt"), reason="needs Linux's chrt"
)
def test_idle_mock_upstream_runs_every_process_under_sched_idle(tmp_path):
    """`--batch-during`'s batch upstream: a provider's CPU is not one of the cores measured."""
    upstream = start_nginx(
        nginx=shutil.which("nginx", path="/usr/sbin:/usr/bin"),
        workdir=tmp_path,
        core=None,
        idle=True,
    )
    try:
        response = httpx.post(
            f"{upstream.base(upstream.json_port)}/chat/completions", content=REQUEST_JSON
        )
        assert response.status_code == 200
        assert response.json()["object"] == "chat.completion"
        master = upstream.process.pid
        workers = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        assert workers  # the one that answered
        assert upstream.slow is not None
        pids = [master, *map(int, workers), upstream.slow.pid]
        assert {os.sched_getscheduler(pid) for pid in pids} == {os.SCHED_IDLE}
    finally:
        upstream.stop()


@pytest.mark.skipif(not shutil.which("nginx", path="/usr/sbin:/usr/bin"), reason="needs nginx")
def test_slow_upstream_sends_one_whole_event_per_interval(tmp_path):
    # 100 ms apart, not 50: a client stalled past one interval reads two events at once, which
    # a loaded machine (the whole suite on 2 cores) does for 50 ms but rarely for 100 ms.
    interval = 0.1
    upstream = start_nginx(
        nginx=shutil.which("nginx", path="/usr/sbin:/usr/bin"),
        workdir=tmp_path,
        core=None,
        slow_events_per_second=1 / interval,
    )
    try:
        result = slow_stream_probe(
            url=f"{upstream.base(upstream.slow_port)}/chat/completions",
            body=REQUEST_JSON,
            headers={"Content-Type": "application/json"},
            count=4,
            ramp_seconds=0.1,
        )
    finally:
        upstream.stop()
    assert result.completed == 4
    assert result.errors == {}
    # 22 events (20 chunks, usage, [DONE]) one interval apart: 21 gaps a stream, each its own read.
    assert result.ramp.gaps + result.open.gaps == 4 * (CHUNKS + 1)
    assert result.ramp_started <= result.all_open
    # Load only lengthens gaps (a late read), so the upper bound is loose; bunched events fail low.
    assert 0.8 * interval * 1000 < result.open.p99_ms < 3 * interval * 1000
    # On a schedule from each stream's start (21 intervals: 2.1 s), not drifting with each write:
    # never sooner after the request than the schedule (load cannot make the mock early: this
    # holds to uvloop's clock, whole milliseconds), late only by what load adds to the last read.
    assert len(result.opened) == len(result.spans) == 4
    for opened, (first, last) in zip(result.opened, result.spans, strict=True):
        assert last - opened > (CHUNKS + 1) * interval - 0.005
        assert last - first < (CHUNKS + 1) * interval + 0.5


@pytest.mark.skipif(not shutil.which("wrk"), reason="needs wrk")
def test_wrk_unique_sends_a_new_body_each_request(tmp_path):
    """`--cache`'s all-miss runs: wrk's Lua numbers the prompt, so no two bodies are alike."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from bench.load import wrk_run

    bodies: list[bytes] = []

    class Recorder(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
        result = wrk_run(
            wrk=shutil.which("wrk"), url=url, connections=2, seconds=1, workdir=tmp_path,
            body=REQUEST_JSON, headers={"Content-Type": "application/json"}, unique=True,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert result.errors == 0
    assert len(bodies) > 10
    assert len(set(bodies)) == len(bodies)
    prompts = [orjson.loads(body)["messages"][0]["content"] for body in bodies]
    assert all(prompt.startswith("Say hello. #") for prompt in prompts)


def test_bench_config_turns_the_response_cache_on_as_litellm_says_it(tmp_path):
    import yaml

    from bench.nginx import MockUpstream
    from bench.ogem import write_config

    upstream = MockUpstream(process=None, json_port=1, sse_port=2, slow_port=3)  # type: ignore[arg-type]
    off = yaml.safe_load(write_config(tmp_path / "off.yaml", upstream).read_text())
    assert "litellm_settings" not in off
    on = yaml.safe_load(write_config(tmp_path / "on.yaml", upstream, cache="redis").read_text())
    assert on["litellm_settings"] == {"cache": True, "cache_params": {"type": "redis"}}


@pytest.mark.skipif(
    "postgres" not in os.environ.get("DATABASE_URL", "") or os.geteuid() != 0,
    reason="needs a PostgreSQL on this machine and root to move its backends",
)
def test_batch_workers_database_backends_are_kept_on_the_given_core():
    """`--batch-during`: the batch worker's backends (its PGAPPNAME) run on the load's core."""
    import psycopg

    from bench.pg_backends import APPLICATION_NAME, BackendsPinned

    url = os.environ["DATABASE_URL"]
    core = max(os.sched_getaffinity(0))
    with (
        psycopg.connect(url, application_name=APPLICATION_NAME) as worker,
        psycopg.connect(url, application_name="someone-else") as other,
    ):
        backend = worker.info.backend_pid
        cmdline = Path(f"/proc/{backend}/cmdline")
        if not cmdline.exists() or not cmdline.read_bytes().startswith(b"postgres"):
            pytest.skip("the PostgreSQL server is not a process of this machine")
        left = os.sched_getaffinity(other.info.backend_pid)
        with BackendsPinned(database_url=url, core=core) as pinning:
            assert pinning.scanned.wait(timeout=30)
        assert pinning.pinned == 1
        assert os.sched_getaffinity(backend) == {core}
        assert os.sched_getaffinity(other.info.backend_pid) == left


def test_the_header_says_how_an_idle_core_waits(tmp_path, monkeypatch):
    from bench import procs

    driver, polling = tmp_path / "current_driver", tmp_path / "guest_halt_poll_ns"
    monkeypatch.setattr(procs, "_CPUIDLE", driver)
    monkeypatch.setattr(procs, "_HALT_POLL", polling)
    assert procs.cpu_idle_described() == ""  # not Linux's files: nothing said
    driver.write_text("haltpoll\n")
    assert procs.cpu_idle_described() == "CPU idle driver haltpoll."
    polling.write_text("200000\n")
    assert procs.cpu_idle_described() == (
        "CPU idle driver haltpoll, guest halt polling 200,000 ns."
    )
