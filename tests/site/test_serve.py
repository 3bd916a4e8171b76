"""`manage.py serve` as `make run` starts it: a real process tree on a real port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.live import free_port, wait_for
from tests.site.serve_processes import (
    TcpProxy,
    alive,
    cmdline,
    descendants,
    manage,
    parent,
    processes_with_var_dir,
    serve_env,
    wait_ready,
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_serves_health_and_stops_cleanly_on_sigterm(migrated_env, started):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage("serve", "--no-migrate", "--port", str(port), env=migrated_env)
    started.append(process)
    wait_ready(url, process)

    live = httpx.get(f"{url}/health/live")
    ready = httpx.get(f"{url}/health/ready")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok"},
        "failed": [],
    }
    children = descendants(process.pid)
    # The ASGI server (granian and its worker) alone: no broker, so background work runs eagerly.
    assert children
    assert all(" -m granian " in cmdline(pid) for pid in children)

    assert {process.pid, *children} <= set(processes_with_var_dir(migrated_env["OGEM_VAR_DIR"]))

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=10)
    assert process.returncode == 0, output
    assert f"Ogem is serving on {url}" in output
    assert f"master key: from {migrated_env['OGEM_VAR_DIR']}/master_key" in output
    assert "background: eager, in process" in output
    assert not [pid for pid in children if alive(pid)]
    assert processes_with_var_dir(migrated_env["OGEM_VAR_DIR"]) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_server_failure_stops_serve_with_its_exit_code(migrated_env, started):
    port = free_port()
    # Hold the port without SO_REUSEPORT, and let serve skip its own check: granian cannot bind.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        process = manage(
            "serve", "--no-migrate", "--reuse-port", "--port", str(port), env=migrated_env
        )
        started.append(process)
        output, _ = process.communicate(timeout=30)
    assert process.returncode != 0
    assert "web exited with code" in output


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_second_serve_on_a_taken_port_refuses_to_start_in_one_line(
    tmp_path, migrated_env, started
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = manage("serve", "--no-migrate", "--port", str(port), env=migrated_env)
    started.append(first)
    wait_ready(url, first)

    # A second Ogem of its own (fresh database), as a second `PORT=... make run` would start.
    second_env = serve_env(tmp_path / "second")
    second = manage("serve", "--port", str(port), env=second_env)
    started.append(second)
    output, _ = second.communicate(timeout=30)

    assert second.returncode == 1, output
    assert "Traceback" not in output
    assert "Ogem is serving" not in output
    assert output.strip().splitlines()[-1] == (
        f"CommandError: 127.0.0.1:{port} is already in use by another process: stop it, choose "
        "another PORT, or share the port on purpose with --reuse-port (OGEM_REUSE_PORT=1)"
    )
    # Refused before anything: no migration, no server.
    assert not (tmp_path / "second" / "ogem.sqlite3").exists()
    assert processes_with_var_dir(second_env["OGEM_VAR_DIR"]) == []
    # The first one serves on, alone.
    assert first.poll() is None
    assert httpx.get(f"{url}/health/ready").status_code == 200
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=10)
    assert first.returncode == 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_reuse_port_lets_a_second_serve_share_the_port(tmp_path, migrated_env, started):
    # For a handover without downtime: the new Ogem starts beside the old one, which then stops.
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    old = manage("serve", "--no-migrate", "--port", str(port), env=migrated_env)
    started.append(old)
    wait_ready(url, old)
    new = manage(
        "serve", "--no-migrate", "--port", str(port), env={**migrated_env, "OGEM_REUSE_PORT": "1"}
    )
    started.append(new)
    # serve prints its banner before it starts the server: wait until the new one's worker runs.

    def new_worker() -> list[int]:
        assert new.poll() is None, new.communicate()[0]
        return [pid for pid in descendants(new.pid) if "granian" in cmdline(pid)][1:]

    wait_for(new_worker, what="the second server's start", timeout=60, every=0.1)

    old.send_signal(signal.SIGTERM)
    old.communicate(timeout=10)
    wait_ready(url, new)  # the port is the new one's alone now
    assert httpx.get(f"{url}/health/ready").status_code == 200
    new.send_signal(signal.SIGTERM)
    output, _ = new.communicate(timeout=10)
    assert new.returncode == 0, output
    assert f"Ogem is serving on {url}" in output


def test_port_check_refuses_an_address_taken_with_so_reuseport():
    from django.core.management.base import CommandError

    from gateway.management.commands.serve import port_check

    # What a running granian holds: a listening socket with SO_REUSEPORT, which a second one
    # with SO_REUSEPORT would silently share.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with pytest.raises(CommandError, match=f"127.0.0.1:{port} is already in use"):
            port_check(host="127.0.0.1", port=port)
        with pytest.raises(CommandError, match=f"0.0.0.0:{port} is already in use"):
            port_check(host="0.0.0.0", port=port)
    port_check(host="127.0.0.1", port=port)  # free again: no error


def _redis_url() -> str | None:
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/4"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        return None
    return url


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_with_redis_runs_celery_and_stops_every_process(tmp_path, migrated_env, started):
    redis_url = _redis_url()
    if redis_url is None:
        pytest.skip("no Redis reachable")
    env = {**migrated_env, "REDIS_URL": redis_url, "OGEM_CACHE_PREFIX": f"serve-test-{os.getpid()}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage("serve", "--no-migrate", "--port", str(port), "--workers", "2", env=env)
    started.append(process)
    wait_ready(url, process)
    ready = httpx.get(f"{url}/health/ready")
    assert ready.json()["checks"] == {"database": "ok", "cache": "ok"}

    # The web server, a Celery worker and beat, each with its own processes under it.

    def all_running() -> list[str]:
        commands = [cmdline(pid) for pid in descendants(process.pid) if alive(pid)]
        worker = any(" worker " in c for c in commands)
        return commands if worker and any(" beat " in c for c in commands) else []

    commands = wait_for(all_running, what="the worker's and beat's start", timeout=20, every=0.2)
    assert any("granian --interface asginl" in c for c in commands)
    assert any("celery -A ogem_site --quiet worker" in c for c in commands)
    assert any("celery -A ogem_site --quiet beat" in c for c in commands)
    everything = descendants(process.pid)
    assert {process.pid, *everything} <= set(processes_with_var_dir(env["OGEM_VAR_DIR"]))

    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=40)
    assert process.returncode == 0, output
    assert "background: Celery worker and beat" in output
    assert "metrics:    multi-process" in output
    assert not [pid for pid in everything if alive(pid)]
    assert processes_with_var_dir(env["OGEM_VAR_DIR"]) == []


def test_metrics_dir_is_emptied_of_old_values_only(tmp_path, monkeypatch):
    from gateway.management.commands.serve import prepare_metrics_dir

    shared = tmp_path / "prom"
    shared.mkdir()
    (shared / "counter_123.db").write_bytes(b"old")
    (shared / "notes.txt").write_text("not ours")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    assert prepare_metrics_dir(1) == shared
    assert sorted(p.name for p in shared.iterdir()) == ["notes.txt"]


def test_one_worker_without_a_configured_dir_keeps_metrics_in_process(monkeypatch):
    from gateway.management.commands.serve import prepare_metrics_dir

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert prepare_metrics_dir(1) is None
    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_workers_parallel_slots_come_back_within_seconds(tmp_path, migrated_env, started):
    redis_url = _redis_url()
    if redis_url is None:
        pytest.skip("no Redis reachable")
    config = tmp_path / "ogem.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: slow-chat\n"
        "    litellm_params: {model: mock/mock-chat, latency_ms: 60000}\n"
        "  - model_name: fast-chat\n"
        "    litellm_params: {model: mock/mock-chat}\n"
    )
    master = "sk-master-" + "m" * 32
    prefix = f"serve-slots-{os.getpid()}-{time.time_ns()}"
    env = {
        **migrated_env,
        "REDIS_URL": redis_url,
        "OGEM_CACHE_PREFIX": prefix,
        "OGEM_CONFIG": str(config),
        "OGEM_MASTER_KEY": master,
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage("serve", "--no-migrate", "--no-celery", "--port", str(port), env=env)
    started.append(process)
    client = redis.Redis.from_url(redis_url)
    try:
        wait_ready(url, process)
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {master}"})
        org = admin.post("/api/v1/organizations", json={"name": "Slots", "slug": "slots"}).json()
        team = admin.post("/api/v1/teams", json={"organization": org["id"], "name": "T"}).json()
        created = admin.post(
            "/api/v1/keys", json={"name": "one", "team": team["id"], "max_parallel_requests": 1}
        )
        assert created.status_code == 201, created.text
        headers = {"Authorization": f"Bearer {created.json()['key']}"}

        def chat(model: str) -> httpx.Response:
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
            return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=90)

        def slot_taken() -> bool:
            # The key's parallel slots: a sorted set of the requests in flight (gateway/limits.py).
            slots = client.scan_iter(match=f"{prefix}:*:rl:*", _type="zset")
            return any(client.zcard(key) for key in slots)

        # The slow request alone, until Redis holds its slot: then the one slot is taken.
        held = threading.Thread(target=lambda: _ignore_transport_errors(chat, "slow-chat"))
        held.start()
        wait_for(slot_taken, what="the slow request's slot", every=0.05)
        refused = chat("fast-chat")
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"

        granian = [p for p in descendants(process.pid) if parent(p) == process.pid]
        (worker,) = [p for p in descendants(process.pid) if parent(p) in granian]
        os.kill(worker, signal.SIGKILL)
        killed_at = time.monotonic()
        held.join(10)
        # granian starts a new worker; the dead one's slot is free once its lease has expired
        # (OGEM_WORKER_LEASE_TTL, 5 s), not after OGEM_PARALLEL_SLOT_TTL (900 s).
        wait_ready(url, process)

        def answered() -> httpx.Response | None:
            answer = chat("fast-chat")
            assert answer.status_code in (200, 429), answer.text
            return answer if answer.status_code == 200 else None

        # Within a minute of the kill, the new worker's slow start on a loaded machine included:
        # a slot not reclaimed by its lease would be held for the 900 s, far beyond.
        answer = wait_for(
            answered,
            what="the dead worker's slot's release",
            timeout=killed_at + 60 - time.monotonic(),
            every=0.2,
        )
        assert answer.json()["object"] == "chat.completion"
    finally:
        stale = list(client.scan_iter(match=f"{prefix}:*"))
        if stale:
            client.delete(*stale)


def _ignore_transport_errors(call, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        call(*args)
    except httpx.TransportError:
        pass  # its worker was killed


def test_serve_refuses_to_start_without_its_database_in_one_line(tmp_path, started):
    db_port = free_port()  # nothing listens there
    env = serve_env(tmp_path, DATABASE_URL=f"postgres://ogem:secretpw@127.0.0.1:{db_port}/ogem")
    process = manage("serve", "--port", str(free_port()), env=env)
    started.append(process)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1, output
    assert "Traceback" not in output
    assert "secretpw" not in output
    assert output.strip().splitlines()[-1] == (
        f"CommandError: the database postgres://ogem@127.0.0.1:{db_port}/ogem is unavailable: "
        f'connection failed: connection to server at "127.0.0.1", port {db_port} failed: '
        "Connection refused"
    )


def _postgres_url(*, port: int | None = None) -> str:
    from django.db import connection

    db = connection.settings_dict
    return f"postgres://{db['USER']}@127.0.0.1:{port or db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_production_start_without_var_dir_runs_celery_beat(tmp_path, started):
    from django.db import connection

    redis_url = _redis_url()
    if connection.vendor != "postgresql" or redis_url is None:
        pytest.skip("needs PostgreSQL and Redis")
    var_dir = tmp_path / "fresh-clone" / "var"
    env = {
        **serve_env(tmp_path),
        "DJANGO_SETTINGS_MODULE": "ogem_site.settings.production",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "s" * 50,
        "OGEM_MASTER_KEY": "sk-master-" + "p" * 30,
        "OGEM_ENCRYPTION_KEYS": "e" * 40,
        "DATABASE_URL": _postgres_url(),
        "REDIS_URL": redis_url,
        "OGEM_CACHE_PREFIX": f"serve-prod-{os.getpid()}-{time.time_ns()}",
        "OGEM_VAR_DIR": str(var_dir),
    }
    port = free_port()
    process = manage("serve", "--no-migrate", "--port", str(port), env=env)
    started.append(process)
    wait_ready(f"http://127.0.0.1:{port}", process)

    def schedule() -> list[Path]:
        assert process.poll() is None, process.communicate()[0]
        return list(var_dir.glob("celerybeat-schedule*"))

    wait_for(schedule, what="celery beat's schedule", every=0.2)
    beat = [p for p in descendants(process.pid) if " beat " in cmdline(p) and alive(p)]
    assert len(beat) == 1
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=40)
    assert process.returncode == 0, output


@pytest.mark.django_db(transaction=True)
def test_v1_answers_503_database_unavailable_once_the_database_is_gone(tmp_path, started):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL")
    proxy = TcpProxy(int(connection.settings_dict["PORT"] or 5432))
    master = "sk-master-" + "d" * 30
    env = serve_env(tmp_path, DATABASE_URL=_postgres_url(port=proxy.port), OGEM_MASTER_KEY=master)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage("serve", "--no-migrate", "--port", str(port), env=env)
    started.append(process)
    try:
        wait_ready(url, process)
        # Well-formed keys no worker has cached: authenticating one needs the database.
        first, second = ("sk-" + letter * 48 for letter in "ab")
        seen = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {first}"})
        assert seen.status_code == 401
        proxy.stop()
        started_at = time.monotonic()
        response = httpx.get(
            f"{url}/v1/models", headers={"Authorization": f"Bearer {second}"}, timeout=30
        )
        waited = time.monotonic() - started_at
    finally:
        proxy.stop()
    assert response.status_code == 503, response.text
    assert response.json() == {
        "error": {
            "message": "The database is unavailable; retry shortly.",
            "type": "api_error",
            "param": None,
            "code": "database_unavailable",
        }
    }
    assert response.headers["retry-after"] == "1"
    # OGEM_DB_POOL_TIMEOUT (5 s) bounds the wait for a connection.
    assert waited < 10


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_banner_counts_the_models_and_warnings_are_logged_once_at_start(
    migrated_env, started, tmp_path
):
    config = tmp_path / "config.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: chat\n"
        "    litellm_params: {model: mock/chat}\n"
        "  - model_name: chat\n"
        "    litellm_params: {model: mock/chat-b}\n"
        "litellm_settings:\n"
        "  set_verbose: true\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**migrated_env, "OGEM_CONFIG": str(config), "OGEM_MASTER_KEY": "sk-master-banner"}
    process = manage("serve", "--no-migrate", "--port", str(port), env=env)
    started.append(process)
    wait_ready(url, process)
    # The first request loads the configuration in the worker: its warning is not logged again.
    answer = httpx.post(
        f"{url}/v1/chat/completions",
        headers={"Authorization": "Bearer sk-master-banner"},
        json={"model": "chat", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=10)
    banner = (
        f"  models:     1 model group(s), deployments: 2 from {config} (LiteLLM config.yaml; "
        "read-only in admin and the API) + 0 from the database"
    )
    assert banner in output
    warnings = [line for line in output.splitlines() if "set_verbose" in line]
    assert len(warnings) == 1, output
    assert "WARNING ogem.config configuration: " in warnings[0]
    assert output.index(warnings[0]) < output.index("Press Ctrl-C to stop.")


def test_help_names_each_option_and_its_environment_variable(tmp_path):
    process = manage("serve", "--help", env=serve_env(tmp_path))
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    text = " ".join(output.split())  # argparse wraps lines
    for option, variable in [
        ("--host", "env HOST;"),
        ("--port", "env PORT;"),
        ("--workers", "env OGEM_WORKERS;"),
        ("--server", "env OGEM_ASGI_SERVER;"),
        ("--access-log", "env OGEM_ACCESS_LOG=1;"),
        ("--reuse-port", "env OGEM_REUSE_PORT=1;"),
    ]:
        assert option in text
        assert variable in text, variable
    assert "--no-migrate do not migrate the database first" in text
    assert "--no-celery do not start Celery's worker and beat" in text
    assert "OGEM_SHUTDOWN_DELAY seconds (default 0)" in text
    assert "OGEM_SHUTDOWN_GRACE seconds (default 30)" in text


@pytest.mark.parametrize(
    ("server", "line"),
    [
        # client, method, path, protocol, status, duration
        ("granian", r'127\.0\.0\.1 "GET /v1/models HTTP/1\.1" 200 \d+\.\d ms'),
        # uvicorn's access log has no duration
        ("uvicorn", r'127\.0\.0\.1:\d+ - "GET /v1/models HTTP/1\.1" 200 OK'),
    ],
)
def test_access_log_prints_one_line_per_request_when_asked(
    migrated_env, started, tmp_path, server, line
):
    master = "sk-master-" + "a" * 32
    env = {**migrated_env, "OGEM_MASTER_KEY": master, "OGEM_ASGI_SERVER": server}
    for access_log in ("1", ""):
        output = _models_listed_once(
            env={**env, "OGEM_ACCESS_LOG": access_log},
            master=master,
            started=started,
            logged=bool(access_log),
        )
        logged = [text for text in output.splitlines() if "GET /v1/models" in text]
        if access_log:
            assert len(logged) == 1, output
            assert re.search(line, logged[0]), logged
            assert "access log: one line per request" in output
        else:
            assert logged == [], output


def _models_listed_once(
    *, env: dict[str, str], master: str, started: list[subprocess.Popen[str]], logged: bool
) -> str:
    """Serve, list the models once, stop: serve's whole output."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = manage("serve", "--no-migrate", "--port", str(port), env=env)
    started.append(process)
    wait_ready(url, process)
    lines: list[str] = []
    reader = threading.Thread(target=_lines_read, args=(process, lines), daemon=True)
    reader.start()
    models = httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {master}"})
    assert models.status_code == 200
    if logged:
        wait_for(lambda: any("GET /v1/models" in text for text in lines), what="the log line")
    # Not logged: a worker's output comes out before SIGTERM's graceful stop lets it exit.
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)
    reader.join(timeout=20)
    output = "".join(lines)
    assert process.returncode == 0, output
    return output


def _lines_read(process: subprocess.Popen[str], lines: list[str]) -> None:
    """The process's output, line by line as it comes, until it closes."""
    for line in process.stdout:  # type: ignore[union-attr]
        lines.append(line)
