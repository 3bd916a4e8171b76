"""`make run`: migrate, then serve the ASGI app (and Celery when a broker is configured).

It refuses to start when HOST:PORT is already taken (granian binds with SO_REUSEPORT, so a second
server would silently share the port) unless asked to share it (--reuse-port).

This process is a small supervisor (docs/deploy.md, "Stopping"). Every child runs in its own
session, so a Ctrl-C in the terminal reaches only this process. On SIGTERM, SIGINT or SIGHUP it
marks Ogem as draining (/health/ready answers 503 in every worker) and keeps serving for
OGEM_SHUTDOWN_DELAY seconds, so that a load balancer stops sending traffic first; then it asks each
child once to stop gracefully (SIGTERM): the ASGI server closes its socket at once and lets open
requests and streams finish, Celery finishes its running tasks. Whatever still runs
OGEM_SHUTDOWN_GRACE seconds later, or at a second signal, is killed: every process below this one,
which is their subreaper, so a process whose parent died is still found below it. Children also
receive SIGKILL if this process dies (Linux parent-death signal), and so do their own workers
(ogem_site/supervision.py), so nothing is orphaned. Exit code: 0 when every child stopped on its
own after a requested stop, 1 when something had to be killed, otherwise the code of the child
that failed.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from gateway.config.report import config_report, config_report_log
from gateway.registry import registry_builtin_names
from ogem_site.env import VAR_DIR, ConfigurationError, env_bool
from ogem_site.supervision import (
    DRAIN_MARKER_ENV,
    SUPERVISOR_ENV,
    child_subreaper_set,
    descendants,
    die_with_parent,
    drain_marker_create,
    drain_marker_prepare,
)

# After the forced stop, the longest serve waits for the killed tree to be reaped (the kernel
# frees a SIGKILLed process at once, unless it is stuck in the kernel).
KILL_MARGIN_SECONDS = 5
# Connections waiting to be accepted, and (granian) requests served at once, per worker: room for
# thousands of concurrent streams.
BACKLOG = 4096
SERVERS = ("granian", "uvicorn")


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _spawn(name: str, argv: list[str], *, drain_marker: Path) -> Child:
    # Between fork and exec: the child gets SIGKILL when this process dies; its own workers
    # learn from the environment to do the same (ogem_site/supervision.py), and where the
    # file that says Ogem is draining will appear.
    linux = sys.platform.startswith("linux")
    preexec = partial(die_with_parent, parent=os.getpid()) if linux else None
    env = {**os.environ, SUPERVISOR_ENV: str(os.getpid()), DRAIN_MARKER_ENV: str(drain_marker)}
    process = subprocess.Popen(argv, start_new_session=True, preexec_fn=preexec, env=env)  # noqa: S603
    return Child(name=name, process=process)


def _signal_leader(child: Child, signum: int) -> None:
    """A graceful stop goes to the leader alone: it stops its own workers or pool."""
    if child.process.poll() is None:
        child.process.send_signal(signum)


def _kill_group(child: Child) -> None:
    # Only while the leader is unreaped: its pid (the group id) cannot have been reused.
    if child.process.poll() is not None:
        return
    try:
        os.killpg(child.process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _kill_tree(children: list[Child]) -> None:
    """SIGKILL everything below serve: the children's process groups, and any process that left
    its group. The list is read first: a killed parent's children move up to serve."""
    below = descendants(os.getpid())
    for child in children:
        _kill_group(child)
    for process in below:
        _kill(process.pid)


def _reap_tree(children: list[Child], *, deadline: float) -> list[str]:
    """Wait for the children, then kill and reap whatever is still below serve (a process its
    parent left behind, re-parented to serve) until nothing is, or until the deadline. Returns
    the command lines of the processes that had to be killed."""
    for child in children:
        try:
            child.process.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            _kill_group(child)
    ours = {child.process.pid: child for child in children}
    killed: dict[int, str] = {}
    while below := descendants(os.getpid()):
        for process in below:
            if process.state != "Z":
                killed.setdefault(process.pid, process.command)
                _kill(process.pid)
            elif process.pid in ours:
                ours[process.pid].process.poll()
            elif process.parent == os.getpid():
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(process.pid, os.WNOHANG)
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    return list(killed.values())


# granian's access log, one line per request: client, method, path, status, duration.
ACCESS_LOG_FORMAT = '%(addr)s "%(method)s %(path)s %(protocol)s" %(status)d %(dt_ms).1f ms'


def server_argv(
    *, server: str, host: str, port: int, workers: int, access_log: bool = False
) -> list[str]:
    """The ASGI server command. docs/deploy.md explains why granian is the default."""
    app = "ogem_site.asgi:application"
    if server == "uvicorn":
        return [
            sys.executable, "-m", "uvicorn", app,
            "--host", host, "--port", str(port), "--workers", str(workers),
            "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
            "--access-log" if access_log else "--no-access-log",
            "--lifespan", "off", "--backlog", str(BACKLOG),
        ]  # fmt: skip
    access = ["--access-log", "--access-log-fmt", ACCESS_LOG_FORMAT] if access_log else []
    return [
        sys.executable, "-m", "granian", "--interface", "asginl",
        "--host", host, "--port", str(port), "--workers", str(workers),
        "--loop", "uvloop", *(access or ["--no-access-log"]), "--log-level", "warning",
        "--backlog", str(BACKLOG), "--backpressure", str(BACKLOG),
        "--respawn-failed-workers", app,
    ]  # fmt: skip


def port_check(*, host: str, port: int) -> None:
    """Refuse, in one line, an address another process listens on. granian binds with
    SO_REUSEPORT, so it would start beside that process and the kernel would split the
    connections between the two: bind the address once without SO_REUSEPORT (with SO_REUSEADDR,
    as the servers do, so connections of a previous run in TIME_WAIT do not count), then let go
    of it for the server."""
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise CommandError(f"cannot serve on {shown}: {exc.strerror}") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"{shown} is already in use by another process: stop it, choose another "
                    "PORT, or share the port on purpose with --reuse-port (OGEM_REUSE_PORT=1)"
                ) from None
            raise CommandError(f"cannot serve on {shown}: {exc.strerror}") from None


def celery_argvs() -> list[tuple[str, list[str]]]:
    celery = [sys.executable, "-m", "celery", "-A", "ogem_site", "--quiet"]
    beat_schedule = VAR_DIR / "celerybeat-schedule"
    return [
        ("celery worker", [*celery, "worker", "--loglevel=WARNING"]),
        ("celery beat", [*celery, "beat", "--loglevel=WARNING", "--schedule", str(beat_schedule)]),
    ]


def prepare_metrics_dir(workers: int) -> Path | None:
    """Several processes write metrics: give them a fresh shared directory before they start."""
    if workers <= 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or VAR_DIR / "prometheus")
    path.mkdir(parents=True, exist_ok=True)
    # Values left by a previous run would be summed into this one's.
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def _database_reachable() -> None:
    """Refuse to start, in one line, when the database does not answer (rather than a
    traceback from the first migration after the pool's timeout)."""
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return  # SQLite: a file, created when missing
    params = connection.get_connection_params()
    try:
        connection.Database.connect(**params).close()
    except connection.Database.Error as exc:
        where = connection.settings_dict
        url = f"postgres://{where['USER']}@{where['HOST']}:{where['PORT']}/{where['NAME']}"
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CommandError(f"the database {url} is unavailable: {reason}") from None


def _database_release() -> None:
    """Close what migrate opened: serve does not use the database while it supervises."""
    for connection in connections.all(initialized_only=True):
        connection.close()
        if connection.vendor == "postgresql":
            connection.close_pool()


def _env_flag(name: str) -> bool:
    try:
        return env_bool(name)
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from None


class Command(BaseCommand):
    help = (
        "Migrate and serve Ogem: the ASGI server, plus Celery worker and beat with REDIS_URL "
        "(`make run`). Each option's default comes from the environment variable named in its "
        "help."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = (
            "Stopping (docs/deploy.md): on SIGTERM or Ctrl-C /health/ready answers 503 at once "
            "while Ogem keeps serving for OGEM_SHUTDOWN_DELAY seconds (default 0); then the "
            "server stops accepting connections and open requests may finish for "
            "OGEM_SHUTDOWN_GRACE seconds (default 30) before what is left is killed. A second "
            "signal stops at once."
        )
        return parser

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--host",
            default=os.environ.get("HOST", "127.0.0.1"),
            help="address to listen on (env HOST; default 127.0.0.1, 0.0.0.0 for every interface)",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=int(os.environ.get("PORT", "8000")),
            help="port to listen on (env PORT; default 8000); serve refuses to start when it "
            "is taken",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=int(os.environ.get("OGEM_WORKERS", "1")),
            help="ASGI worker processes, about one per core (env OGEM_WORKERS; default 1)",
        )
        parser.add_argument(
            "--server",
            choices=SERVERS,
            default=os.environ.get("OGEM_ASGI_SERVER", "granian"),
            help="the ASGI server (env OGEM_ASGI_SERVER; default granian)",
        )
        parser.add_argument(
            "--access-log",
            action=argparse.BooleanOptionalAction,
            default=_env_flag("OGEM_ACCESS_LOG"),
            help="print one line per request on stdout: client, method, path, status and, with "
            "granian, duration (env OGEM_ACCESS_LOG=1; default off)",
        )
        parser.add_argument(
            "--reuse-port",
            action=argparse.BooleanOptionalAction,
            default=_env_flag("OGEM_REUSE_PORT"),
            help="start even when another process listens on HOST:PORT and share the port "
            "with it (granian only), for a handover without downtime (env OGEM_REUSE_PORT=1; "
            "default off: serve refuses a taken port)",
        )
        parser.add_argument(
            "--no-migrate", action="store_true", help="do not migrate the database first"
        )
        parser.add_argument(
            "--no-celery",
            action="store_true",
            help="do not start Celery's worker and beat even with REDIS_URL set (for "
            "deployments that run `make worker` and `make beat` on their own)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port, workers = options["host"], options["port"], options["workers"]
        server = options["server"]
        if server not in SERVERS:
            raise CommandError(f"OGEM_ASGI_SERVER must be one of {', '.join(SERVERS)}")
        if workers < 1:
            raise CommandError("--workers (OGEM_WORKERS) must be at least 1")
        if not options["reuse_port"]:
            port_check(host=host, port=port)
        _database_reachable()
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        with_celery = bool(settings.REDIS_URL) and not options["no_celery"]
        if with_celery:
            # Beat keeps its schedule there; production generates nothing else under var/.
            VAR_DIR.mkdir(parents=True, exist_ok=True)
        metrics_dir = prepare_metrics_dir(workers)
        # Read once here, so the banner says where the models come from and every problem is
        # logged now, once: the workers (this process's children) then load it quietly.
        report = config_report(builtin=registry_builtin_names())
        self._print_banner(
            host=host, port=port, workers=workers, server=server, with_celery=with_celery
        )
        self.stdout.write(f"  models:     {report.line()}")
        if metrics_dir is not None:
            self.stdout.write(f"  metrics:    multi-process, files in {metrics_dir}")
        if options["access_log"]:
            self.stdout.write("  access log: one line per request, on this output")
        self.stdout.flush()
        config_report_log(report)
        self.stdout.write("Press Ctrl-C to stop.")
        self.stdout.flush()

        _database_release()
        web = server_argv(
            server=server,
            host=host,
            port=port,
            workers=workers,
            access_log=options["access_log"],
        )
        drain_marker = drain_marker_prepare()
        try:
            status = self._supervise(web=web, with_celery=with_celery, drain_marker=drain_marker)
        finally:
            drain_marker.unlink(missing_ok=True)
        # Every child is reaped and nothing is left to clean up: skip the interpreter's teardown
        # of some 2,000 modules (1-2 s on a busy machine, spent out of the orchestrator's grace).
        for stream in (self.stdout, self.stderr, sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):
                stream.flush()
        os._exit(status)

    def _print_banner(
        self, *, host: str, port: int, workers: int, server: str, with_celery: bool
    ) -> None:
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{port}"
        engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        background = "Celery worker and beat" if with_celery else "eager, in process"
        if settings.REDIS_URL and not with_celery:
            background = "none here (run `make worker` and `make beat`)"
        self.stdout.write(f"Ogem is serving on {url}  ({server}, {workers} worker process(es))")
        self.stdout.write(f"  master key: from {settings.OGEM_MASTER_KEY_SOURCE}")
        self.stdout.write(f"  database:   {engine}")
        self.stdout.write(f"  cache:      {'redis' if settings.REDIS_URL else 'local memory'}")
        self.stdout.write(f"  background: {background}")
        self.stdout.write(f"  admin:      {url}/admin/")
        self.stdout.write(
            f"  portal:     {url}/  SSO redirect URI: {url}/accounts/oidc/sso/login/callback/"
        )
        self.stdout.write(f"  API:        {url}/v1  (OpenAPI: {url}/v1/openapi.json)")
        self.stdout.write(f"  health:     {url}/health/ready   metrics: {url}/metrics")

    def _supervise(self, *, web: list[str], with_celery: bool, drain_marker: Path) -> int:
        # Neither server gets a stop timeout of its own: serve keeps the one clock
        # (OGEM_SHUTDOWN_GRACE), so that the exit code tells whether anything was cut short.
        child_subreaper_set()
        stop_requests: list[int] = []

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            stop_requests.append(signum)

        previous = {
            signum: signal.signal(signum, request_stop)
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        children: list[Child] = []
        try:
            children.append(_spawn("web", web, drain_marker=drain_marker))
            if with_celery:
                children.extend(
                    _spawn(name, argv, drain_marker=drain_marker) for name, argv in celery_argvs()
                )
            failed = self._wait_for_stop_or_exit(children, stop_requests)
            return self._shut_down(children, stop_requests, failed, drain_marker=drain_marker)
        except BaseException:
            _kill_tree(children)
            raise
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _wait_for_stop_or_exit(
        self, children: list[Child], stop_requests: list[int]
    ) -> Child | None:
        while not stop_requests:
            for child in children:
                if child.process.poll() is not None:
                    return child
            time.sleep(0.1)
        return None

    def _shut_down(
        self,
        children: list[Child],
        stop_requests: list[int],
        failed: Child | None,
        *,
        drain_marker: Path,
    ) -> int:
        grace = settings.OGEM_SHUTDOWN_GRACE
        handled = len(stop_requests)
        if failed is not None:
            self._say(f"{failed.name} exited with code {failed.process.returncode}; stopping Ogem.")
        else:
            self._drain(children, stop_requests, drain_marker=drain_marker)
        for child in children:
            _signal_leader(child, signal.SIGTERM)
        deadline = time.monotonic() + grace
        forced = False
        while running := [child.name for child in children if child.process.poll() is None]:
            if len(stop_requests) > handled or time.monotonic() >= deadline:
                why = "second signal" if len(stop_requests) > handled else f"{grace} s passed"
                self._say(f"Stopping by force ({why}): killing {', '.join(running)}.")
                _kill_tree(children)
                forced = True
                break
            time.sleep(0.05)
        left = _reap_tree(children, deadline=time.monotonic() + KILL_MARGIN_SECONDS)
        if left and not forced:
            self._say(f"Killed what the children left behind: {'; '.join(left)}")
        if failed is not None:
            return failed.process.returncode or 1
        if forced or left:
            return 1
        clean = {0, -signal.SIGTERM, -signal.SIGINT}
        for child in children:
            if child.process.returncode not in clean:
                self._say(f"{child.name} stopped with code {child.process.returncode}.")
                return 1
        return 0

    def _drain(
        self, children: list[Child], stop_requests: list[int], *, drain_marker: Path
    ) -> None:
        """Readiness answers 503 from now on, in every worker; with OGEM_SHUTDOWN_DELAY, serve on
        that long (new connections included) so that load balancers see it and stop sending
        traffic before the port closes. A second signal or a child's exit ends the wait."""
        grace, delay = settings.OGEM_SHUTDOWN_GRACE, settings.OGEM_SHUTDOWN_DELAY
        marked = drain_marker_create(drain_marker)
        if not delay:
            self._say(f"Stopping: open requests may finish for {grace} s (signal again: stop now).")
            return
        self._say(
            f"Stopping: draining for {delay} s (/health/ready answers 503, requests are still "
            f"served), then open requests may finish for {grace} s (signal again: stop now)."
        )
        if not marked:
            self._say(f"/health/ready cannot report draining: {drain_marker} cannot be created.")
        handled = len(stop_requests)
        end = time.monotonic() + delay
        while time.monotonic() < end and len(stop_requests) == handled:
            if any(child.process.poll() is not None for child in children):
                return
            time.sleep(0.05)
        if len(stop_requests) == handled:
            self._say(f"Drained: the port closes; open requests may finish for {grace} s.")

    def _say(self, line: str) -> None:
        """A line on stderr; a terminal already gone (SIGHUP) does not stop the shutdown."""
        with contextlib.suppress(OSError):
            self.stderr.write(line)
            self.stderr.flush()
