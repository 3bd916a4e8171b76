"""A worker's pipe to a helper process of its own: tracing's exporter (gateway/tracing_pipe.py) and
the callbacks' delivery (gateway/callbacks/dispatcher.py).

The request path appends to a bounded queue, nothing more. One thread of the worker, shared by its
pipes (`_HandOver`: one wake-up a turn for tracing and callbacks together), takes the queues
every DELAY seconds, or sooner when a batch is waiting (`_wake`), marshals them (C code; cheaper
than pickle, which tracks every object) and writes them down the children's standard input, framed:
a 4-byte little-endian length, then a marshalled tuple whose first item names the message. The
child does the costly part (encoding, HTTP, retries) on its own CPU time and GIL, and answers on
its standard output, a line at a time; a flush (`("flush", n)`) is answered `flushed n ...` once
everything before it is done. A child that dies is started again, at most once every
RESPAWN_AFTER seconds; closing the pipe (at exit, on reconfiguration) lets it finish and exit.
"""

from __future__ import annotations

import gc
import logging
import marshal
import os
import select
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from typing import Any, ClassVar

logger = logging.getLogger(__name__)

# Seconds between the thread's turns when no batch wakes it: a turn's fixed cost (a wake-up, a
# poll of each child, a write each) is shared by the requests of a turn (docs/benchmark.md).
DELAY = 1.0
RESPAWN_AFTER = 10.0  # seconds between restarts of a child that died


class ChildPipe:
    """The queue, the thread that empties it and the child process it feeds. Subclasses name the
    child's module and say what a queued item becomes (`_send_queued`) and what an answer line
    means (`_answer`)."""

    module: ClassVar[str]  # run as `python -m module *args`

    def __init__(self, *args: str) -> None:
        self.args = args
        self.queue: deque[Any] = deque()
        self._answers = b""
        self._write = threading.Lock()  # one writer at a time: the thread, or a flush
        self._read = threading.Lock()  # one reader of the answers at a time
        self._closing = False
        self._flushes = 0
        self._flushed = 0  # the last flush the child answered
        self._died_at = 0.0
        self._process: subprocess.Popen[bytes] | None = self._spawn()
        self._hand_over = _hand_over
        self._wake = _hand_over.wake
        _hand_over.add(self)

    # -- what subclasses say ------------------------------------------------------------------

    def _send_queued(self) -> None:
        """Take the queue and write it to the child (`_child`, `_send`); under `_write`."""
        raise NotImplementedError

    def _answer(self, words: list[bytes]) -> None:
        """One line of the child's answers, split; `flushed n ...` sets `_flushed` here."""
        raise NotImplementedError

    def _idle(self) -> None:
        """The thread's turn after writing."""

    def _exited(self, reason: str) -> None:
        """The child is gone with what it held: `exited` (it died) or `shutdown` (closed)."""

    # -- the child --------------------------------------------------------------------------

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        # The worker's own import path, so that the process runs this tree's code.
        from django.conf import settings

        env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
            OGEM_TELEMETRY_CPU_PRIORITY=settings.OGEM_TELEMETRY_CPU_PRIORITY,
        )
        try:
            return subprocess.Popen(  # noqa: S603 - this interpreter, this module
                [sys.executable, "-m", self.module, *self.args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                close_fds=True,
            )
        except OSError:
            logger.exception("could not start %s", self.module)
            self._died_at = time.monotonic()
            return None

    def _child(self) -> subprocess.Popen[bytes] | None:
        """The running child, started again if it died (not more often than RESPAWN_AFTER)."""
        process = self._process
        if process is not None and process.poll() is None:
            return process
        if process is not None:
            logger.warning("%s exited (%s)", self.module, process.returncode)
            self._process = None
            self._died_at = time.monotonic()
            with self._read:
                for stream in (process.stdin, process.stdout):
                    try:
                        if stream is not None:
                            stream.close()
                    except OSError:  # a write it never read
                        pass
                self._answers = b""  # a line it left unfinished
            self._exited("exited")
        if self._closing or time.monotonic() - self._died_at < RESPAWN_AFTER:
            return None
        self._process = self._spawn()
        return self._process

    def _send(self, process: subprocess.Popen[bytes], data: bytes) -> bool:
        """Write frames (`frame`'s) to the child: False when it is gone."""
        try:
            process.stdin.write(data)  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
        except (OSError, ValueError):
            return False
        return True

    def _turn(self) -> None:
        """The hand-over thread's turn at this pipe."""
        with self._write:
            self._send_queued()
        self._idle()

    # -- answers ----------------------------------------------------------------------------

    def _answers_read(self, timeout: float) -> bool:
        """Handle what the child writes within `timeout` seconds; False once its output closed."""
        process = self._process
        if process is None or process.stdout is None:
            return False
        with self._read:
            fd = process.stdout.fileno()  # read raw: a buffered reader hides lines from select
            try:
                ready, _, _ = select.select([fd], [], [], timeout)
                data = os.read(fd, 65536) if ready else None
            except (OSError, ValueError):  # closed meanwhile
                return False
            if data is None:
                return True
            if not data:
                return False
            self._answers += data
            while b"\n" in self._answers:
                line, self._answers = self._answers.split(b"\n", 1)
                self._answer(line.split(b" ", 2))
            return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is queued and wait until the child has done it (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._write:
            self._send_queued()
            process = self._child()
            self._flushes += 1
            number = self._flushes
            if process is None or not self._send(process, frame(("flush", number))):
                return False
            # In short waits: the thread may read the answer (`_idle`) while this one waits.
            while self._flushed < number:
                left = deadline - time.monotonic()
                if left <= 0 or not self._answers_read(min(left, 0.05)):
                    return False
            return True

    # -- closing ----------------------------------------------------------------------------

    def close(self, *, wait: float = 0.0) -> None:
        """Send what is queued and close the pipe: the child finishes what it has and exits.
        `wait`: seconds to wait for that (at exit); 0 leaves it to a thread."""
        self._closing = True
        self._wake.set()
        if wait > 0:
            self._close(wait)
        else:
            threading.Thread(target=self._close, args=(30.0,), daemon=True).start()

    def _close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        process = self._process
        self._hand_over.remove(self)
        # The thread may wait on a full pipe (a child that no longer reads): past the deadline
        # the child is stopped, which ends that wait.
        killer = threading.Timer(timeout, process.kill) if process is not None else None
        if killer is not None:
            killer.daemon = True
            killer.start()
        try:
            with self._write:  # after a turn the thread may be taking
                self._send_queued()
                process = self._process
                if process is not None and process.stdin is not None:
                    try:
                        process.stdin.close()
                    except OSError:
                        pass
            if process is None:
                return
            # Its last answers (counts) until its output closes: it has finished.
            while (left := deadline - time.monotonic()) > 0 and self._answers_read(left):
                pass
            if process.poll() is None and deadline - time.monotonic() <= 0:
                process.kill()
            process.wait()
            self._process = None
            if process.stdout is not None:
                process.stdout.close()
            self._exited("shutdown")
        finally:
            if killer is not None:
                killer.cancel()


class _HandOver:
    """The thread that empties every pipe of the process, in turns."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.pipes: tuple[ChildPipe, ...] = ()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, pipe: ChildPipe) -> None:
        with self._lock:
            self.pipes = (*self.pipes, pipe)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ogem-handover", daemon=True)
                self._thread.start()

    def remove(self, pipe: ChildPipe) -> None:
        with self._lock:
            self.pipes = tuple(p for p in self.pipes if p is not pipe)

    def _run(self) -> None:
        while True:
            self.wake.wait(DELAY)
            self.wake.clear()
            for pipe in self.pipes:
                if not pipe._closing:
                    try:
                        pipe._turn()
                    except Exception:  # one pipe's bug, not the others' hand-over
                        logger.exception("%s: a turn failed", pipe.module)


_hand_over = _HandOver()


def _forget_after_fork() -> None:
    """A forked process has no thread: its pipes (its own, started afresh) get a new one."""
    global _hand_over
    _hand_over = _HandOver()


os.register_at_fork(after_in_child=_forget_after_fork)


def frame(message: tuple[Any, ...]) -> bytes:
    """A message as the pipe carries it: its length, then its marshalled form."""
    data = marshal.dumps(message)
    return struct.pack("<I", len(data)) + data


def frame_read(stream: Any) -> tuple[Any, ...] | None:
    """The child's side: the next message from `stream` (a binary file), None at its end."""
    header = stream.read(4)
    if header is None or len(header) < 4:
        return None
    size = struct.unpack("<I", header)[0]
    payload = stream.read(size)
    if payload is None or len(payload) < size:
        return None
    return marshal.loads(payload)  # type: ignore[no-any-return]  # noqa: S302 - our worker's


def child_scheduled() -> None:
    """The child's side, first: leave the worker's CPU pinning behind (a child inherits it) for
    the other CPUs (`child_cpus`), and take the priority the worker passed
    (OGEM_TELEMETRY_CPU_PRIORITY; `idle`: SCHED_IDLE, so that the child runs only on CPU time the
    web workers leave unused). The work is moved out of the worker so that it need not take the
    worker's core, nor its time when the core is busy."""
    if hasattr(os, "sched_setaffinity"):
        every = set(range(os.cpu_count() or 1))
        for cpus in (child_cpus(worker=os.sched_getaffinity(0), every=every), every):
            try:
                os.sched_setaffinity(0, cpus)
                break
            except OSError:  # a cgroup or a sandbox that refuses: the next, else stay
                continue
    if os.environ.get("OGEM_TELEMETRY_CPU_PRIORITY") == "idle":
        _idle_priority_take()


def child_cpus(*, worker: set[int], every: set[int]) -> set[int]:
    """Where a worker's helper runs: a worker pinned to some of the CPUs keeps them to itself,
    the helper taking the others; an unpinned worker's helper runs anywhere. On the pinned
    worker's own core, even at SCHED_IDLE, the helper filled the worker's short waits and left
    its caches cold: with tracing and two callbacks on, the worker took 13 % more CPU a request
    than without, against 4 % with its helpers elsewhere and 8 % more instructions (medians of
    ten rounds, docs/benchmark.md, 7 December 2026)."""
    return (every - worker) or every


def _idle_priority_take() -> None:
    # Before any thread starts, so that the child's threads inherit it. Not through
    # ogem_site.cpu_priority (Celery's, the same policy for every thread of a running worker):
    # importing ogem_site loads Celery and Django, a quarter of a second and 300 modules here.
    # Linux's SCHED_IDLE: stronger than nice 19, which still takes ~1.5 % of a busy core.
    sched_idle = getattr(os, "SCHED_IDLE", None)
    try:
        if sched_idle is not None:
            os.sched_setscheduler(0, sched_idle, os.sched_param(0))
            return
    except OSError:
        logger.warning("could not set the idle CPU priority; this process runs at nice 19")
    os.nice(19)


# The child's cyclic collector runs after this many container allocations (Python: 700). A
# message unmarshals thousands of tuples and dicts that live until its batch is sent, and that
# form no cycles: at 700 the collector walked each several times over (a fifth of the exporter's
# reading thread's instructions).
CHILD_GC_THRESHOLD = 50_000


def child_collector() -> None:
    """The child's side, once started: what it has loaded (modules, the exporter, the HTTP
    client) is set aside from the collector's walks (`gc.freeze`), and the collector runs less
    often (CHILD_GC_THRESHOLD)."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(CHILD_GC_THRESHOLD, older, oldest)
