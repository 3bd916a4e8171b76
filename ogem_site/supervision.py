"""Every process `manage.py serve` starts dies with it, however deep in the tree.

Linux's parent-death signal reaches only a process's own children: serve sets it on the servers
it spawns, and each process further down (a granian or uvicorn worker, a Celery pool process)
sets it again on itself when it starts (`supervised_process_init`), so a SIGKILL of serve takes
the whole tree down link by link and no orphan keeps answering on the port.

granian builds a new worker's event loop, imports the app, and only then installs the worker's
own SIGTERM handling: a stop signal in between reached the handler inherited from granian's main
process and was lost, and the worker served on until serve killed it at the end of the grace.
`granian_worker_stop_signals_hold` holds the stop signals from the first import of the app until
the loop runs, when granian's handlers are in place.

When serve stops on its own, it is also the tree's subreaper: a process whose parent died is
re-parented to serve (not to init), so serve can find it below itself (`descendants`), kill it
and reap it, and exits only once nothing it started is left.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import secrets
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ogem_site.asgi_types import ASGIApp

# Set by serve in its children's environment: its pid.
SUPERVISOR_ENV = "OGEM_SUPERVISOR_PID"
# Set by serve in its children's environment: a file that exists once Ogem is draining.
DRAIN_MARKER_ENV = "OGEM_DRAIN_MARKER"
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PROC = Path("/proc")


def _prctl(option: int, value: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(option, value)
    except OSError:
        pass


def parent_death_signal_set() -> None:
    """SIGKILL this process when the thread that started it dies (Linux; elsewhere nothing)."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def child_subreaper_set() -> None:
    """Orphans anywhere below this process are re-parented to it (Linux; elsewhere nothing)."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def die_with_parent(*, parent: int) -> None:
    """Die with `parent` from now on, and at once if it already died (before the signal was
    armed, when this process was re-parented). Serve runs it between fork and exec."""
    parent_death_signal_set()
    if os.getppid() != parent:
        os._exit(1)


def supervised_process_init() -> None:
    """In a process started under serve: die with its parent from now on, and at once when the
    parent or the supervisor is already gone (it died before the signal was armed)."""
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    if not supervisor.isdigit() or int(supervisor) == os.getpid():
        return
    die_with_parent(parent=os.getppid())
    try:
        os.kill(int(supervisor), 0)
    except ProcessLookupError:
        os._exit(1)
    except PermissionError:
        pass  # a process of another user holds the pid: not ours to judge


def drain_marker_prepare() -> Path:
    """Where serve will say that Ogem is draining: a file in the temporary directory, under a
    name no one can guess, created only when serve stops and removed when it exits (a serve
    SIGKILLed while it serves leaves nothing behind). A file rather than a signal, so that every
    worker sees it, one granian respawns meanwhile included."""
    return Path(tempfile.gettempdir()) / f"ogem-draining-{secrets.token_hex(16)}"


def drain_marker_create(path: Path) -> bool:
    """False where it cannot be written (a read-only filesystem: readiness then cannot report
    draining)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        return False
    return True


_drain_marker = os.environ.get(DRAIN_MARKER_ENV)


def draining() -> bool:
    """True in a process started under serve once serve has been asked to stop: a stat, on
    /health/ready only."""
    return _drain_marker is not None and os.path.exists(_drain_marker)


# How often a request may look for the drain marker (a stat): the answer is kept that long.
_DRAIN_CHECK_SECONDS = 0.25
_drain_seen = False
_drain_checked_at = 0.0


def _draining_recently() -> bool:
    """draining(), read at most every _DRAIN_CHECK_SECONDS; once draining, always."""
    global _drain_seen, _drain_checked_at
    if _drain_seen:
        return True
    now = time.monotonic()
    if now - _drain_checked_at >= _DRAIN_CHECK_SECONDS:
        _drain_checked_at = now
        _drain_seen = draining()
    return _drain_seen


def connection_close_wrap(app: ASGIApp) -> ASGIApp:
    """While serve drains (OGEM_SHUTDOWN_DELAY), every HTTP response says `Connection: close`,
    so that clients and proxies end their keep-alive connections after the response they get and
    open new ones, which reach the instances that stay (or the new one sharing the port). Without
    it, a keep-alive connection lives until the port closes and is cut then, idle or about to be
    used. Not under serve (no marker to watch): `app` itself, nothing added to a request."""
    if _drain_marker is None:
        return app

    async def closing(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _draining_recently():
            await app(scope, receive, send)
            return

        async def send_closing(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await app(scope, receive, send_closing)

    return closing


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def granian_worker_stop_signals_hold() -> None:
    """In a granian worker under serve, before it imports the app: block SIGINT and SIGTERM until
    its event loop runs (granian built and set the loop already). A signal that arrives meanwhile
    waits, pending, and is delivered to granian's handler then. Threads started meanwhile keep
    them blocked, so the main thread takes them, as CPython wants anyway. Elsewhere (uvicorn
    imports the app inside its running loop, its handlers in place) this does nothing."""
    if SUPERVISOR_ENV not in os.environ or "granian" not in sys.modules:
        return
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is None or multiprocessing.current_process().name != "granian-worker":
        return
    try:
        loop = asyncio.get_event_loop()
    except RuntimeError:
        return
    if loop.is_running():
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    loop.call_soon(signal.pthread_sigmask, signal.SIG_UNBLOCK, STOP_SIGNALS)


@dataclass(frozen=True)
class Process:
    pid: int
    parent: int
    state: str  # as in /proc/PID/stat: "Z" for a zombie

    @property
    def command(self) -> str:
        try:
            return (_PROC / str(self.pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return "?"


def descendants(root: int) -> list[Process]:
    """Every process below `root` (children of children included), read from /proc; nothing
    where there is no /proc."""
    table: list[Process] = []
    if not _PROC.is_dir():
        return table
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # The command name, in parentheses, may hold spaces: the fields follow the last ")".
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        table.append(Process(pid=int(entry.name), parent=int(parent), state=state))
    below: dict[int, Process] = {}
    frontier = {root}
    while frontier:
        level = [p for p in table if p.parent in frontier and p.pid not in below]
        below.update((process.pid, process) for process in level)
        frontier = {process.pid for process in level}
    return list(below.values())
