"""The worker's end of tracing's export (gateway/tracing_export.py's process).

A finished request's spans (tuples) are appended to a bounded queue: an append, nothing more,
on the request path. A thread of the worker takes the queue every 0.2 s, or sooner when a
batch is waiting, marshals it (C code; cheaper than pickle, which tracks every object) and
writes it down a pipe to the exporter process, which encodes and sends. When the collector is
down or slow the exporter stops reading, the pipe fills, the thread waits on it (outside the
GIL) and the queue fills: new spans are then dropped and counted, never waited for.
"""

from __future__ import annotations

import json
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
from typing import Any

logger = logging.getLogger(__name__)

MAX_TRACES = 1024  # the queue's bound, in requests (a request has 3 to 8 spans)
# The thread is woken at BATCH_TRACES queued requests, else every DELAY seconds: small batches
# often, so that no marshal holds the GIL long enough to show in a request's p99.
BATCH_TRACES = 16
DELAY = 0.2
RESPAWN_AFTER = 10.0  # seconds between restarts of an exporter process that died


class SpanPipe:
    """The queue, the thread that empties it and the exporter process it feeds."""

    def __init__(self, *, protocol: str, target: str, service_name: str) -> None:
        self.config = {"protocol": protocol, "target": target, "service_name": service_name}
        self.queue: deque[list[tuple[Any, ...]]] = deque()
        self.dropped = 0  # spans not exported: queue full, exporter gone, or export failed
        self._failed = 0  # of which the exporter process reported failing to send
        self._reported = 0
        self._reported_at = 0.0
        self._answers = b""
        self._wake = threading.Event()
        self._write = threading.Lock()  # one writer at a time: the thread, or a flush
        self._closing = False
        self._flushes = 0
        self._died_at = 0.0
        self._process: subprocess.Popen[bytes] | None = self._spawn()
        self._thread = threading.Thread(target=self._run, name="ogem-tracing", daemon=True)
        self._thread.start()

    def put(self, spans: list[tuple[Any, ...]]) -> None:
        """The request path's part: a request's spans queued, or dropped when full."""
        queue = self.queue
        if len(queue) >= MAX_TRACES:
            self.dropped += len(spans)
            return
        queue.append(spans)
        if len(queue) >= BATCH_TRACES and not self._wake.is_set():
            self._wake.set()

    def _spawn(self) -> subprocess.Popen[bytes] | None:
        # The worker's own import path, so that the process runs this tree's code.
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        try:
            return subprocess.Popen(  # noqa: S603 - this interpreter, this module
                [sys.executable, "-m", "gateway.tracing_export", json.dumps(self.config)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                env=env,
                close_fds=True,
            )
        except OSError:
            logger.exception("could not start the tracing exporter process")
            self._died_at = time.monotonic()
            return None

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(DELAY)
            self._wake.clear()
            with self._write:
                self._send_queued()
            self._drops_report()

    def _send_queued(self) -> None:
        queue = self.queue
        if not queue:
            return
        spans: list[tuple[Any, ...]] = []
        for _ in range(len(queue)):
            spans += queue.popleft()
        try:
            sent = self._send(("spans", spans))
        except Exception:  # what it held is lost, and counted
            logger.exception("tracing: could not hand %d spans to the exporter", len(spans))
            sent = False
        if not sent:
            self.dropped += len(spans)

    def _send(self, message: tuple[str, Any]) -> bool:
        process = self._process
        if process is None or process.poll() is not None:
            if process is not None:
                logger.warning("the tracing exporter process exited (%s)", process.returncode)
                self._process = process = None
                self._died_at = time.monotonic()
            if self._closing or time.monotonic() - self._died_at < RESPAWN_AFTER:
                return False
            process = self._process = self._spawn()
            if process is None:
                return False
        try:
            data = marshal.dumps(message)
        except ValueError:  # an attribute of a type marshal does not know: sent as its text
            data = marshal.dumps(_plain(message))
        try:
            process.stdin.write(struct.pack("<I", len(data)) + data)  # type: ignore[union-attr]
            process.stdin.flush()  # type: ignore[union-attr]
        except (OSError, ValueError):
            return False
        return True

    def _drops_report(self) -> None:
        dropped = self.lost
        now = time.monotonic()
        if dropped > self._reported and now - self._reported_at >= 1.0:  # a line a second
            logger.warning("tracing dropped %d spans so far", dropped)
            self._reported, self._reported_at = dropped, now

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is queued and wait until the exporter has exported it (tests, shutdown)."""
        with self._write:
            self._send_queued()
            self._flushes += 1
            number = self._flushes
            if not self._send(("flush", number)):
                return False
            return self._flushed(number, time.monotonic() + timeout)

    def _flushed(self, number: int, deadline: float) -> bool:
        process = self._process
        if process is None or process.stdout is None:
            return False
        fd = process.stdout.fileno()  # read raw: a buffered reader hides lines from select
        while (left := deadline - time.monotonic()) > 0:
            while b"\n" in self._answers:
                line, self._answers = self._answers.split(b"\n", 1)
                _, answered, failed = line.split()
                self._failed = int(failed)
                if int(answered) >= number:
                    return True
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            data = os.read(fd, 4096)
            if not data:
                return False
            self._answers += data
        return False

    @property
    def lost(self) -> int:
        """Spans not exported: the queue full, the exporter gone or its sends failed."""
        return self.dropped + self._failed

    def close(self, *, wait: float = 0.0) -> None:
        """Send what is queued and close the pipe: the exporter process sends what it has and
        exits. `wait`: seconds to wait for that (at exit); 0 leaves it to a thread."""
        self._closing = True
        self._wake.set()
        if wait > 0:
            self._close(wait)
        else:
            threading.Thread(target=self._close, args=(30.0,), daemon=True).start()

    def _close(self, timeout: float) -> None:
        process = self._process
        # The thread may wait on a full pipe (an exporter retrying a collector that is down):
        # past the deadline the exporter is stopped, which ends that wait.
        killer = threading.Timer(timeout, process.kill) if process is not None else None
        if killer is not None:
            killer.daemon = True
            killer.start()
        try:
            self._thread.join(timeout=timeout)
            with self._write:
                self._send_queued()
                process, self._process = self._process, None
                if process is not None and process.stdin is not None:
                    try:
                        process.stdin.close()
                    except OSError:
                        pass
            if process is not None:
                process.wait()
                if process.stdout is not None:
                    process.stdout.close()
        finally:
            if killer is not None:
                killer.cancel()


_PLAIN = frozenset((str, int, float, bool, bytes, type(None)))


def _plain(message: tuple[str, Any]) -> tuple[str, Any]:
    """A message whose attribute values are all of marshal's types (others as their text)."""
    kind, spans = message
    if kind != "spans":
        return message
    return kind, [
        (*span[:8], {k: _value(v) for k, v in span[8].items()}, [
            (name, at, {k: _value(v) for k, v in values.items()}) for name, at, values in span[9]
        ], span[10])
        for span in spans
    ]  # fmt: skip


def _value(value: Any) -> Any:
    if type(value) in _PLAIN:  # exactly: marshal refuses subclasses (a StrEnum)
        return value
    if isinstance(value, list | tuple):
        return tuple(_value(item) for item in value)
    return str(value)
