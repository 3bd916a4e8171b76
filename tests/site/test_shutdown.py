"""Stopping `manage.py serve`: open streams finish, new connections are refused, and the whole
process tree is gone within OGEM_SHUTDOWN_GRACE (+ 5 s), even when Redis and the broker hang.

These tests bound a hang; they do not measure speed.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionChunk

from tests.live import free_port
from tests.site.serve_processes import (
    BlackHole,
    alive,
    cmdline,
    descendants,
    listening,
    manage,
    processes_with_var_dir,
    wait_ready,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

MASTER = "sk-master-" + "s" * 32
PROMPT = "one two three"
# What the mock model answers to PROMPT, in as many chunks as asked.
REPLY = f"Mock reply to: {PROMPT}"
# Slack for a busy machine on top of each bound the tests assert (not part of the promise).
SLACK = 2.0


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    server = BlackHole()
    yield server
    server.close()


def _serve(
    env: dict[str, str],
    started: list[subprocess.Popen[str]],
    tmp_path: Path,
    *,
    grace: int,
    chunks: int = 0,
    chunk_delay_ms: int = 0,
    **extra: str,
) -> tuple[subprocess.Popen[str], str]:
    """Start serve (granian with two workers) with a `slow` mock model streaming `chunks`
    chunks `chunk_delay_ms` apart; return it once it answers."""
    config = tmp_path / "ogem.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: slow\n"
        f"    litellm_params: {{model: mock/mock-chat, chunks: {chunks},"
        f" chunk_delay_ms: {chunk_delay_ms}}}\n"
    )
    env = {
        **env,
        "OGEM_CONFIG": str(config),
        "OGEM_MASTER_KEY": MASTER,
        "OGEM_SHUTDOWN_GRACE": str(grace),
        **extra,
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage("serve", "--no-migrate", "--port", str(port), "--workers", "2", env=env)
    started.append(process)
    wait_ready(url, process, timeout=60)
    return process, url


def _stream(url: str) -> openai.Stream[ChatCompletionChunk]:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=MASTER, max_retries=0, timeout=120)
    return client.chat.completions.create(
        model="slow", messages=[{"role": "user", "content": PROMPT}], stream=True
    )


def _long_stream_in_flight(
    env: dict[str, str], started: list[subprocess.Popen[str]], tmp_path: Path, grace: int
) -> tuple[subprocess.Popen[str], int, set[int], Iterator[ChatCompletionChunk]]:
    """serve, its process tree, and a 30 s stream through it whose first chunk has come."""
    process, url = _serve(env, started, tmp_path, grace=grace, chunks=60, chunk_delay_ms=500)
    tree = _tree(process, celery=False)
    chunks = iter(_stream(url))
    next(chunks)
    return process, int(url.rsplit(":", 1)[1]), tree, chunks


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # accepted into a backlog nobody serves, or reset: not refused
    return False


def _wait_refused(port: int, *, within: float) -> float:
    """Seconds until a new connection to the port is refused; fails after `within`."""
    started_at = time.monotonic()
    while not _refused(port):
        assert time.monotonic() - started_at < within, "new connections are still accepted"
        time.sleep(0.05)
    return time.monotonic() - started_at


def _wait_gone(pids: set[int], *, port: int, within: float, since: float) -> None:
    """Every process in pids dead and nothing listening on the port, `within` s of `since`."""
    while (left := [pid for pid in pids if alive(pid)]) or listening(port):
        assert time.monotonic() - since < within, (
            f"still there {time.monotonic() - since:.1f} s later: "
            f"{[cmdline(pid) for pid in left]}, listening={listening(port)}"
        )
        time.sleep(0.05)


def _tree(process: subprocess.Popen[str], *, celery: bool) -> set[int]:
    """serve's descendants once all have started: granian and its two workers, and with
    Celery its worker (with at least one pool process) and beat."""
    deadline = time.monotonic() + 60
    while True:
        below = {pid: cmdline(pid) for pid in descendants(process.pid) if alive(pid)}
        granian = [c for c in below.values() if " -m granian " in c]
        worker = [c for c in below.values() if "celery -A ogem_site --quiet worker" in c]
        beat = [c for c in below.values() if "celery -A ogem_site --quiet beat" in c]
        if len(granian) == 3 and (not celery or (len(worker) >= 2 and len(beat) == 1)):
            return set(below)
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"the tree did not start: {sorted(below.values())}"
        time.sleep(0.2)


def test_sigterm_lets_an_open_stream_finish_and_refuses_new_connections(
    tmp_path, migrated_env, started
):
    grace = 20
    process, url = _serve(
        migrated_env, started, tmp_path, grace=grace, chunks=8, chunk_delay_ms=500
    )
    port = int(url.rsplit(":", 1)[1])
    tree = _tree(process, celery=False)

    stream = _stream(url)
    chunks = iter(stream)
    first = next(chunks)  # the stream is open: the role chunk came, 3.5 s of content to go
    assert first.choices[0].delta.role == "assistant"
    process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    # Refused at once: the listening socket is closed, not left to fill a backlog.
    _wait_refused(port, within=2 + SLACK)
    refused_at = time.monotonic()

    rest = list(chunks)
    finished_at = time.monotonic()
    text = "".join(chunk.choices[0].delta.content or "" for chunk in rest if chunk.choices)
    assert text == REPLY
    assert [c.choices[0].finish_reason for c in rest if c.choices][-1] == "stop"
    # The stream was still running when new connections were already refused.
    assert finished_at > refused_at

    output, _ = process.communicate(timeout=grace + SLACK)
    assert process.returncode == 0, output
    assert time.monotonic() - signalled_at < grace
    assert f"Stopping: open requests may finish for {grace} s" in output
    assert "by force" not in output
    assert not [pid for pid in tree if alive(pid)]
    assert not listening(port)
    assert processes_with_var_dir(migrated_env["OGEM_VAR_DIR"]) == []


def test_sigterm_while_the_workers_start_stops_them_cleanly(migrated_env, started):
    # A granian worker takes seconds to import the app, and only then installs its own handling
    # of SIGTERM: a stop right after start reached it in between.
    grace = 20
    env = {**migrated_env, "OGEM_SHUTDOWN_GRACE": str(grace)}
    port = free_port()
    process = manage("serve", "--no-migrate", "--port", str(port), "--workers", "2", env=env)
    started.append(process)
    deadline = time.monotonic() + 60
    while len(workers := [p for p in descendants(process.pid) if " -m granian " in cmdline(p)]) < 3:
        assert process.poll() is None and time.monotonic() < deadline, "granian did not start"
        time.sleep(0.02)
    time.sleep(0.3)  # the workers are importing the app

    process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    output, _ = process.communicate(timeout=grace + SLACK)

    assert process.returncode == 0, output
    assert time.monotonic() - signalled_at < grace
    assert "by force" not in output
    _wait_gone(set(workers), port=port, within=grace, since=signalled_at)
    assert processes_with_var_dir(migrated_env["OGEM_VAR_DIR"]) == []


def test_a_stream_longer_than_the_grace_is_cut_and_serve_says_so(tmp_path, migrated_env, started):
    grace = 2
    process, port, tree, chunks = _long_stream_in_flight(migrated_env, started, tmp_path, grace)

    process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    with pytest.raises((httpx.TransportError, openai.APIError)):
        for _ in chunks:
            pass  # cut when its worker is killed, at the end of the grace
    output, _ = process.communicate(timeout=grace + 5 + SLACK)
    stopped_after = time.monotonic() - signalled_at

    assert process.returncode == 1, output
    assert grace <= stopped_after < grace + 5 + SLACK
    assert f"Stopping by force ({grace} s passed): killing web." in output
    _wait_gone(tree, port=port, within=grace + 5 + SLACK, since=signalled_at)
    assert processes_with_var_dir(migrated_env["OGEM_VAR_DIR"]) == []


def test_a_second_signal_stops_at_once(tmp_path, migrated_env, started):
    process, port, tree, _ = _long_stream_in_flight(migrated_env, started, tmp_path, grace=60)

    process.send_signal(signal.SIGTERM)
    _wait_refused(port, within=2 + SLACK)  # the first signal is being handled
    process.send_signal(signal.SIGINT)
    signalled_at = time.monotonic()
    output, _ = process.communicate(timeout=5 + SLACK)

    assert process.returncode == 1, output
    assert "Stopping by force (second signal): killing web." in output
    _wait_gone(tree, port=port, within=5 + SLACK, since=signalled_at)
    assert processes_with_var_dir(migrated_env["OGEM_VAR_DIR"]) == []


def test_hanging_redis_and_broker_do_not_hold_the_stop_past_the_grace(
    tmp_path, migrated_env, started, black_hole
):
    grace = 3
    hanging = f"redis://127.0.0.1:{black_hole.port}/0"
    process, url = _serve(
        migrated_env,
        started,
        tmp_path,
        grace=grace,
        REDIS_URL=hanging,
        CELERY_BROKER_URL=hanging,
    )
    port = int(url.rsplit(":", 1)[1])
    tree = _tree(process, celery=True)
    # A /v1 request in flight, waiting on Redis (or answering an error, if it does not wait).
    body = {"model": "slow", "messages": [{"role": "user", "content": PROMPT}]}
    in_flight = threading.Thread(
        target=_post_ignoring_errors,
        args=(f"{url}/v1/chat/completions", body),
        daemon=True,
    )
    in_flight.start()
    time.sleep(0.5)

    process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    _wait_gone(tree | {process.pid}, port=port, within=grace + 5, since=signalled_at)
    output, _ = process.communicate(timeout=1)
    # Celery's worker cannot finish its warm shutdown against a broker that never answers.
    assert process.returncode == 1, output
    assert f"Stopping by force ({grace} s passed): killing " in output
    assert "celery worker" in output.split("Stopping by force", 1)[1]
    assert processes_with_var_dir(migrated_env["OGEM_VAR_DIR"]) == []


def test_sigkill_of_serve_takes_every_process_down(tmp_path, migrated_env, started, black_hole):
    # Celery needs a broker to start its pool; one that never answers is enough, and keeps
    # this test off the shared Redis.
    hanging = f"redis://127.0.0.1:{black_hole.port}/0"
    process, url = _serve(migrated_env, started, tmp_path, grace=30, REDIS_URL=hanging)
    port = int(url.rsplit(":", 1)[1])
    # granian and its two workers; Celery's worker, its pool processes and beat: the workers
    # and the pool processes are serve's grandchildren.
    tree = _tree(process, celery=True)

    process.kill()
    killed_at = time.monotonic()
    process.wait(5)
    _wait_gone(tree, port=port, within=5, since=killed_at)
    assert processes_with_var_dir(migrated_env["OGEM_VAR_DIR"]) == []


def _post_ignoring_errors(url: str, body: dict) -> None:
    try:
        httpx.post(url, json=body, headers={"Authorization": f"Bearer {MASTER}"}, timeout=60)
    except httpx.TransportError:
        pass  # cut by the stop


def test_sigterm_with_a_delay_reports_draining_and_serves_on_before_the_port_closes(
    tmp_path, migrated_env, started
):
    # A rolling deploy: the load balancer sees /health/ready fail and stops routing here while
    # Ogem still answers what it is sent; only then does the port close.
    delay, grace = 4, 10
    process, url = _serve(
        migrated_env, started, tmp_path, grace=grace, OGEM_SHUTDOWN_DELAY=str(delay)
    )
    port = int(url.rsplit(":", 1)[1])
    tree = _tree(process, celery=False)
    headers = {"Authorization": f"Bearer {MASTER}"}
    assert httpx.get(f"{url}/health/ready").status_code == 200

    process.send_signal(signal.SIGTERM)
    signalled_at = time.monotonic()
    _wait_draining(url, within=0.5 + SLACK)
    ready_codes, models_codes = set(), set()
    # Every worker says so (new connections land on either), and every request is still served.
    while time.monotonic() - signalled_at < delay - 1.5:
        ready = httpx.get(f"{url}/health/ready", timeout=2)
        ready_codes.add(ready.status_code)
        assert ready.json() == {
            "status": "draining",
            "checks": {"server": "draining: stopping, still serving open and new requests"},
            "failed": ["server"],
        }
        models = httpx.get(f"{url}/v1/models", headers=headers, timeout=2)
        models_codes.add(models.status_code)
        assert "slow" in {model["id"] for model in models.json()["data"]}
        assert httpx.get(f"{url}/health/live", timeout=2).status_code == 200
        time.sleep(0.1)
    assert (ready_codes, models_codes) == ({503}, {200})
    assert not _refused(port)

    # Then the port closes, and serve exits once the open requests (none) have finished.
    closed_after = delay - 1.5 + _wait_refused(port, within=1.5 + 2 + SLACK)
    assert closed_after >= delay - 0.5
    output, _ = process.communicate(timeout=grace + SLACK)
    stopped_after = time.monotonic() - signalled_at
    assert process.returncode == 0, output
    assert delay <= stopped_after < delay + grace
    assert (
        f"Stopping: draining for {delay} s (/health/ready answers 503, requests are still "
        f"served), then open requests may finish for {grace} s (signal again: stop now)."
    ) in output
    assert f"Drained: the port closes; open requests may finish for {grace} s." in output
    assert not [pid for pid in tree if alive(pid)]
    assert processes_with_var_dir(migrated_env["OGEM_VAR_DIR"]) == []


def test_a_second_signal_during_the_delay_stops_at_once(tmp_path, migrated_env, started):
    process, url = _serve(migrated_env, started, tmp_path, grace=30, OGEM_SHUTDOWN_DELAY="60")
    port = int(url.rsplit(":", 1)[1])
    tree = _tree(process, celery=False)
    process.send_signal(signal.SIGTERM)
    _wait_draining(url, within=0.5 + SLACK)

    process.send_signal(signal.SIGINT)
    signalled_at = time.monotonic()
    output, _ = process.communicate(timeout=5 + SLACK)
    assert process.returncode == 1, output
    assert "Stopping by force (second signal): killing web." in output
    _wait_gone(tree, port=port, within=5 + SLACK, since=signalled_at)


def _wait_draining(url: str, *, within: float) -> None:
    started_at = time.monotonic()
    while httpx.get(f"{url}/health/ready", timeout=2).status_code != 503:
        assert time.monotonic() - started_at < within, "/health/ready does not report draining"
        time.sleep(0.05)
