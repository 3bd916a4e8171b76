"""`ogem loadtest` (sdk/python/ogem_sdk/loadtest.py): against the bench's nginx mock, next to wrk on
the same target, and in a real terminal against a live Ogem."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from bench.bodies import REQUEST_JSON
from bench.load import wrk_run
from bench.nginx import MockUpstream, start_nginx
from bench.procs import cores, pinned
from tests.live import LiveServer
from tests.sdk.test_cli import _environment, _ogem

NGINX = shutil.which("nginx", path="/usr/sbin:/usr/bin")
WRK = shutil.which("wrk")
ROUNDS = 8
SECONDS = 1
CONNECTIONS = 50


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[MockUpstream]:
    if not NGINX:
        pytest.skip("needs nginx")
    upstream = start_nginx(nginx=NGINX, workdir=tmp_path / "nginx", core=CORE)
    yield upstream
    upstream.stop()


# nginx and the load generators (one after the other) share one core: each generator's speed
# is then what it leaves nginx, and the machine's other core does not sway the result.
CORE = cores()[-1]


def _loadtest(home: Path, *args: str, core: int | None = None) -> dict:
    argv = pinned([sys.executable, "-m", "ogem_sdk.cli", "loadtest", *args], core)
    done = subprocess.run(
        argv, env=_environment(home), capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads((home / "report.json").read_text())


def _autogroup_nice(autogroup: Path) -> str | None:
    """The group's nice value ("/autogroup-85 nice 0"), or None where the kernel has no autogroup
    or shows an empty file (seen on a CI machine: autogroup off, the file empty)."""
    try:
        fields = autogroup.read_text().split()
    except OSError:
        return None
    if len(fields) < 3 or fields[-2] != "nice":
        return None
    return fields[-1]


def _autogroup_write(autogroup: Path, nice: str, *, restore: str) -> str | None:
    """Writes the group's nice value; None (nothing to restore) where the kernel refuses it."""
    try:
        autogroup.write_text(nice)
    except OSError:
        return None
    return restore


def _renice(process: int, nice: int) -> None:
    # A container without CAP_SYS_NICE refuses; the comparison then runs at the usual priority.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, process, nice)


@contextlib.contextmanager
def _ahead_of_the_machine(upstream: MockUpstream) -> Iterator[None]:
    """As root, this session's scheduler group (Linux autogroup: other sessions are the other
    helpers' load) and nginx's worker run at nice -10 while the tools are compared, then back."""
    if os.geteuid() != 0:
        yield
        return
    autogroup = Path("/proc/self/autogroup")
    group_nice = _autogroup_nice(autogroup)
    pid = upstream.process.pid
    try:
        workers = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        workers = []
    before = os.getpriority(os.PRIO_PROCESS, 0)
    if group_nice is not None:
        group_nice = _autogroup_write(autogroup, "-10", restore=group_nice)
    for process in (0, *workers):
        _renice(process, -10)
    try:
        yield
    finally:
        for process in (0, *workers):
            _renice(process, before)
        if group_nice is not None:
            _autogroup_write(autogroup, group_nice, restore=group_nice)


@pytest.mark.alone
@pytest.mark.skipif(not WRK, reason="needs wrk")
def test_throughput_is_within_ten_percent_of_wrk(nginx: MockUpstream, tmp_path: Path) -> None:
    """Same target, body, connections and duration, on nginx's core, one after the other, ROUNDS
    short rounds; each tool's best round is compared. Load only ever slows a run, so a tool's best
    round is its least disturbed one, and the rounds interleave (which goes first alternates), so
    a machine whose speed drifts over the run gives both tools its fast stretches alike."""
    url = f"{nginx.base(nginx.json_port)}/chat/completions"
    body_file = tmp_path / "body.json"
    body_file.write_bytes(REQUEST_JSON)
    core = CORE
    ours: list[float] = []
    theirs: list[float] = []
    with _ahead_of_the_machine(nginx):
        for round_number in range(ROUNDS):
            wrk_first = round_number % 2 == 0
            if wrk_first:
                theirs.append(_wrk_throughput(url, tmp_path, core))
            ours.append(_loadtest_throughput(url, body_file, tmp_path, core))
            if not wrk_first:
                theirs.append(_wrk_throughput(url, tmp_path, core))
    ratio = max(ours) / max(theirs)
    median = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    print(f"ogem loadtest {ours} req/s, wrk {theirs} req/s: best {ratio:.3f}, median {median:.3f}")
    assert 0.9 <= ratio <= 1.1, (ours, theirs)


def _wrk_throughput(url: str, tmp_path: Path, core: int | None) -> float:
    result = wrk_run(
        wrk=WRK or "wrk",
        url=url,
        connections=CONNECTIONS,
        seconds=SECONDS,
        workdir=tmp_path,
        body=REQUEST_JSON,
        headers={"Content-Type": "application/json"},
        core=core,
    )
    assert result.errors == 0
    return result.requests_per_second


def _loadtest_throughput(url: str, body_file: Path, tmp_path: Path, core: int | None) -> float:
    report = _loadtest(
        tmp_path, "--url", url, "--body", str(body_file), "-c", str(CONNECTIONS),
        "-d", f"{SECONDS}s", "--json", str(tmp_path / "report.json"), core=core,
    )  # fmt: skip
    assert report["errors"] == 0 and report["concurrency"] == CONNECTIONS
    assert report["bytes_in"] >= report["requests"] * 400  # each answer read whole
    return report["throughput"]


def test_streams_open_loop_errors_and_compare(nginx: MockUpstream, tmp_path: Path) -> None:
    sse = f"{nginx.base(nginx.sse_port)}/chat/completions"
    report_path = str(tmp_path / "report.json")
    closed = _loadtest(tmp_path, "--url", sse, "-m", "m", "--stream", "-c", "4", "-n", "200",
                       "--json", report_path)  # fmt: skip
    assert closed["requests"] == 200 and closed["errors"] == 0 and closed["mode"] == "closed"
    assert closed["ttft_ms"]["p50"] is not None
    assert closed["ttft_ms"]["p99"] <= closed["latency_ms"]["p99"]
    (tmp_path / "a.json").write_text(json.dumps(closed))

    opened = _loadtest(tmp_path, "--url", sse, "-m", "m", "--stream", "--rate", "200", "-n", "100",
                       "--json", report_path)  # fmt: skip
    assert opened["mode"] == "open" and opened["requests"] + opened["dropped"] == 100
    # 100 starts at 200/s take half a second, whatever the answers' speed.
    assert 0.49 <= opened["seconds"] < 5
    (tmp_path / "b.json").write_text(json.dumps(opened))

    compared = _ogem(tmp_path, "-o", "json", "loadtest", "compare",
                     str(tmp_path / "a.json"), str(tmp_path / "b.json"))  # fmt: skip
    assert compared.returncode == 0, compared.stderr
    rows = {row["metric"]: row for row in json.loads(compared.stdout)}
    assert rows["requests"]["a"] == "200" and rows["requests"]["b"] == str(opened["requests"])
    assert rows["requests"]["change"] == f"{(opened['requests'] - 200) / 200 * 100:+.1f}%"
    assert "TTFT p99" in rows
    (tmp_path / "bad.json").write_text("[]")
    bad = _ogem(
        tmp_path, "loadtest", "compare", str(tmp_path / "a.json"), str(tmp_path / "bad.json")
    )
    assert bad.returncode == 1 and "is not an `ogem loadtest --json` report" in bad.stderr

    missing = _ogem(tmp_path, "loadtest", "--url", f"{nginx.base(nginx.json_port)}/nowhere",
                    "-m", "m", "-n", "5", "--json", report_path)  # fmt: skip
    assert missing.returncode == 1 and "no request succeeded" in missing.stderr
    assert "errors      5 (404: 5)" in missing.stdout
    assert json.loads(Path(report_path).read_text())["errors_by_kind"] == {"404": 5}

    refused = _ogem(tmp_path, "loadtest", "--url", "http://127.0.0.1:9/v1", "-m", "m", "-n", "1")
    assert refused.returncode == 1 and "could not be reached" in refused.stderr
    assert "Traceback" not in refused.stderr
    no_model = _ogem(tmp_path, "loadtest", "--url", sse, "-n", "1")
    assert no_model.returncode == 2 and "--model" in no_model.stderr


@pytest.mark.live
def test_loadtest_in_a_terminal_against_ogem(
    live_ogem: LiveServer, master_key: str, tmp_path: Path
) -> None:
    """The logged-in Ogem's /v1/chat/completions by default (chunked SSE), progress line, report."""
    environ = _environment(tmp_path)
    environ.update(OGEM_BASE_URL=live_ogem.url, OGEM_API_KEY=master_key)
    terminal = pexpect.spawn(
        sys.executable,
        ["-m", "ogem_sdk.cli", "loadtest", "-m", "mock-chat", "--stream", "-c", "2", "-d", "2s"],
        env=environ,
        encoding="utf-8",
        timeout=60,
    )
    try:
        terminal.expect(r"\r\[[#.]{24}\]\s+\d+% ")
        terminal.expect(r"\r\[[#.]{24}\]\s+\d+% ")  # redrawn in place
        terminal.expect_exact("\r[########################] 100%")
        terminal.expect_exact(f"{live_ogem.url}/v1/chat/completions: closed loop, 2 connections")
        terminal.expect(r"throughput\s+[\d.]+ req/s")
        terminal.expect(r"latency\s+p50 [\d.]+ms\s+p90 [\d.]+ms\s+p99 [\d.]+ms\s+max [\d.]+ms")
        terminal.expect(r"TTFT\s+p50 [\d.]+ms")
        terminal.expect_exact("errors      0")
        terminal.expect(pexpect.EOF)
    finally:
        terminal.close()
    assert terminal.exitstatus == 0

    # Ctrl-C ends a long run early with the report of what it measured.
    terminal = pexpect.spawn(
        sys.executable,
        ["-m", "ogem_sdk.cli", "loadtest", "-m", "mock-chat", "-c", "2", "-d", "5m"],
        env=environ,
        encoding="utf-8",
        timeout=60,
    )
    try:
        terminal.expect(r"\r\[#*\.+\]\s+\d+% .* [1-9]\d* ok")
        terminal.sendintr()
        terminal.expect(r"requests    [1-9]\d* in \d+\.\d\ds")
        terminal.expect(pexpect.EOF)
    finally:
        terminal.close()
    assert terminal.exitstatus == 0


CHUNKED = (
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)
REFUSED = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy"


def test_answers_whose_heads_repeat_change_or_arrive_in_pieces(tmp_path: Path) -> None:
    """The generator reuses a repeated head's parse: a chunked one, an answer split across reads
    (in its head or its body) and a different answer between the same ones are read right."""
    import asyncio
    import threading

    from ogem_sdk.loadtest import Plan, loadtest_run

    served = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the generator closed the connection
                return
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            served += 1
            reply = REFUSED if served % 3 == 0 else CHUNKED
            # In two reads: the head cut (odd answers) or the body (even ones).
            cut = 20 if served % 2 else reply.index(b"\r\n\r\n") + 7
            writer.write(reply[:cut])
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(reply[cut:])
            await writer.drain()

    ready: list[tuple[asyncio.AbstractEventLoop, asyncio.Event, int]] = []
    up = threading.Event()

    async def serve() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        stop = asyncio.Event()
        ready.append((asyncio.get_running_loop(), stop, server.sockets[0].getsockname()[1]))
        up.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),))
    thread.start()
    assert up.wait(10)
    loop, stop, port = ready[0]
    try:
        report = loadtest_run(
            Plan(url=f"http://127.0.0.1:{port}/v1/x", body=b"{}", concurrency=2, duration=None,
                 requests=30, timeout=5)
        )  # fmt: skip
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
    assert report["statuses"] == {"200": 20, "503": 10}
    assert report["requests"] == 20 and report["errors_by_kind"] == {"503": 10}
    assert report["bytes_in"] == 20 * len(CHUNKED) + 10 * len(REFUSED)
