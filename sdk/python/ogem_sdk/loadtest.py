"""`ogem loadtest`: an HTTP/1.1 load generator on raw asyncio protocols (docs/cli.md).

Each connection is an `asyncio.Protocol` that writes one prebuilt request and parses the answer
in `data_received` with callbacks, no coroutine per request: that is what lets one Python core
keep up with wrk against a static server (figures in docs/cli.md). uvloop is used when installed.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import ssl
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO
from urllib.parse import urlsplit

_HEAD_END = b"\r\n\r\n"
_now = time.perf_counter


@dataclass(frozen=True, slots=True)
class Plan:
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    concurrency: int = 10  # closed loop: connections; open loop: the most in flight
    rate: float | None = None  # open loop: requests started per second
    duration: float | None = 10.0
    requests: int | None = None
    timeout: float = 60.0


@dataclass(slots=True)
class Tally:
    started: float = 0.0
    finished: float = 0.0
    # Out of the repr: asyncio writes the run's result into a task's repr at the end, and a
    # million floats took seconds.
    latencies: list[float] = field(default_factory=list, repr=False)
    ttfts: list[float] = field(default_factory=list, repr=False)
    statuses: list[int] = field(default_factory=lambda: [0] * 1000, repr=False)  # per status
    errors: Counter[str] = field(default_factory=Counter)
    dropped: int = 0  # open loop: starts skipped because `concurrency` were in flight
    bytes_in: int = 0

    @property
    def done(self) -> int:
        return len(self.latencies) + sum(self.errors.values())


def request_bytes(plan: Plan) -> tuple[bytes, str, int, bool]:
    """The whole request, written once and resent as is; and host, port, TLS."""
    parts = urlsplit(plan.url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {plan.url}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = {
        "Host": parts.netloc,
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if plan.stream else "application/json",
        **plan.headers,
        "Content-Length": str(len(plan.body)),
    }
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return head.encode("latin-1") + b"\r\n" + plan.body, parts.hostname, port, tls


class _Connection(asyncio.Protocol):
    """One keep-alive connection; `on_free(connection, now)` is called when it can take the next
    request. The per-request path is kept short on purpose: it bounds the rate one core reaches."""

    def __init__(
        self,
        request: bytes,
        tally: Tally,
        on_free: Callable[[_Connection, float], None],
        *,
        stream: bool,
    ) -> None:
        self.request = request
        self.tally = tally
        self.on_free = on_free
        self.stream = stream
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self.busy = False
        self.at = 0.0
        self.buffer = b""
        self.status = 0
        self.remaining = -1  # body bytes left (Content-Length); -1: reading the head
        self.chunked = False
        self.close_after = False
        self.first_event = 0.0
        self.bytes_in = 0
        # The last head parsed, whole, and its Content-Length (-1: chunked): a server answers
        # the same request with the same head (until its Date changes), which is then
        # recognised by one comparison instead of parsed again.
        self.head = b"\x00"
        self.head_length = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.tally.bytes_in += self.bytes_in
        self.bytes_in = 0
        if self.busy:
            self.busy = False
            self.tally.errors[type(exc).__name__ if exc else "connection closed"] += 1
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, at: float) -> None:
        """`at`: when the request was due (open loop: its schedule, so queueing counts)."""
        self.busy = True
        self.at = at
        self.remaining = -1
        self.chunked = False
        self.first_event = 0.0
        self.transport.write(self.request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        start = 0  # where the body starts in `data`
        if self.remaining < 0 and not self.chunked:
            if self.buffer:
                data = self.buffer + data
                self.buffer = b""
            if data.startswith(self.head):  # status and close_after are the last head's too
                start = len(self.head)
                if self.head_length < 0:
                    self.chunked = True
                else:
                    self.remaining = self.head_length
            else:
                start = self._head(data)
                if start <= 0:
                    return
        if self.stream and not self.first_event and data.find(b"data:", start) >= 0:
            self.first_event = time.perf_counter()
        if self.chunked:
            if self._chunks(data[start:] if start else data):
                self._complete()
            return
        self.remaining -= len(data) - start
        if self.remaining <= 0:
            self._complete()

    def _head(self, data: bytes) -> int:
        """Parse the answer's head; where its body starts in `data`, or 0 (incomplete, or the
        connection failed)."""
        end = data.find(_HEAD_END)
        if end < 0:
            self.buffer = data
            return 0
        try:
            self.status = int(data[9:12])
        except ValueError:
            self._fail("not an HTTP answer")
            return 0
        # Servers' usual spelling first: lowering every head would cost a copy.
        at = data.find(b"\r\nContent-Length:", 0, end)
        head = data if at >= 0 else data[:end].lower()
        if at < 0:
            at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            line_end = head.find(b"\r\n", at + 17, end)
            self.remaining = int(head[at + 17 : line_end if line_end > 0 else end])
        elif b"\r\ntransfer-encoding: chunked" in head:
            self.chunked = True
        else:
            self._fail("no Content-Length")
            return 0
        self.close_after = head.find(b"onnection: close", 0, end) >= 0
        self.head = data[: end + 4]
        self.head_length = -1 if self.chunked else self.remaining
        return end + 4

    def _chunks(self, data: bytes) -> bool:
        """Skip chunked-encoding body bytes; True at the last (empty) chunk."""
        buffer = self.buffer + data
        position = 0
        while True:
            line_end = buffer.find(b"\r\n", position)
            if line_end < 0:
                break
            size = int(buffer[position:line_end].split(b";", 1)[0], 16)
            if size == 0:
                if buffer.find(_HEAD_END, line_end - 2 if line_end >= 2 else 0) >= 0:
                    self.buffer = b""  # not the next answer's start
                    return True
                break
            next_position = line_end + 2 + size + 2
            if next_position > len(buffer):
                break
            position = next_position
        self.buffer = buffer[position:]
        return False

    def _complete(self) -> None:
        now = _now()
        tally = self.tally
        self.busy = False
        status = self.status
        if status < 400:
            tally.latencies.append(now - self.at)
            if self.first_event:
                tally.ttfts.append(self.first_event - self.at)
        else:
            tally.errors[str(status)] += 1
        tally.statuses[status] += 1
        if self.close_after:
            self.transport.close()  # type: ignore[union-attr]
            return
        self.on_free(self, now)

    def _fail(self, reason: str) -> None:
        self.busy = False
        self.tally.errors[reason] += 1
        if self.transport is not None:
            self.transport.close()


class Runner:
    def __init__(self, plan: Plan, *, progress: Callable[[Tally, float], None] | None) -> None:
        self.plan = plan
        self.progress = progress
        self.request, self.host, self.port, tls = request_bytes(plan)
        self.ssl = ssl.create_default_context() if tls else None
        self.tally = Tally()
        self.connections: list[_Connection] = []
        self.idle: list[_Connection] = []
        self.stopping = False
        self.finished: asyncio.Future[None] | None = None
        self.began = asyncio.Event()
        self.issued = 0
        self.opening = 0  # open loop: connections being opened
        self.pending: set[asyncio.Future[None]] = set()

    def _may_issue(self) -> bool:
        if self.stopping or (self.plan.requests is not None and self.issued >= self.plan.requests):
            return False
        self.issued += 1
        return True

    def _check_end(self) -> None:
        done = self.tally.done + self.tally.dropped
        if self.plan.requests is not None and done >= self.plan.requests:
            self._stop()

    def _stop(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.tally.finished = time.perf_counter()
        if self.finished is not None and not self.finished.done():
            self.finished.set_result(None)

    def _closed_free(self, connection: _Connection, now: float) -> None:
        if self.plan.requests is not None:
            self._check_end()
            if not self._may_issue():
                return
        elif self.stopping:
            return
        connection.send(now)

    def _open_free(self, connection: _Connection, now: float) -> None:
        self._check_end()
        self.idle.append(connection)

    async def _connect(self, on_free: Callable[[_Connection, float], None]) -> _Connection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(
            lambda: _Connection(self.request, self.tally, on_free, stream=self.plan.stream),
            self.host,
            self.port,
            ssl=self.ssl,
        )
        self.connections.append(protocol)
        return protocol

    async def _closed_loop(self) -> None:
        connections = await asyncio.gather(
            *(self._connect(self._closed_free) for _ in range(self.plan.concurrency))
        )
        self.tally.started = time.perf_counter()
        self.began.set()
        for connection in connections:
            if self._may_issue():
                connection.send(self.tally.started)
        # A connection the server closed is reopened so the concurrency holds.
        while not self.stopping:
            await asyncio.sleep(0.05)
            for connection in [c for c in self.connections if c.closed.done()]:
                self.connections.remove(connection)
                try:
                    fresh = await self._connect(self._closed_free)
                except OSError as exc:
                    self.tally.errors[type(exc).__name__] += 1
                    continue
                self._closed_free(fresh, time.perf_counter())

    async def _open_loop(self) -> None:
        assert self.plan.rate
        interval = 1.0 / self.plan.rate
        self.tally.started = start = time.perf_counter()
        self.began.set()
        number = 0
        while self._may_issue():
            due = start + number * interval
            number += 1
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            while self.idle and self.idle[-1].closed.done():
                self.idle.pop()
            if not self.idle and len(self.connections) + self.opening >= self.plan.concurrency:
                self.connections = [c for c in self.connections if not c.closed.done()]
            if self.idle:
                self.idle.pop().send(due)
            elif len(self.connections) + self.opening < self.plan.concurrency:
                self.opening += 1
                opening = asyncio.ensure_future(self._open_then_send(due))
                self.pending.add(opening)
                opening.add_done_callback(self.pending.discard)
            else:
                # Never queued behind the busy ones: that would hide the overload.
                self.tally.dropped += 1
                self._check_end()
        if self.finished is not None:
            await self.finished

    async def _open_then_send(self, due: float) -> None:
        try:
            connection = await self._connect(self._open_free)
        except OSError as exc:
            self.tally.errors[type(exc).__name__] += 1
            self._check_end()
            return
        finally:
            self.opening -= 1
        connection.send(due)

    async def _ticker(self) -> None:
        while not self.stopping:
            await asyncio.sleep(0.25)
            now = time.perf_counter()
            for connection in self.connections:
                if connection.busy and now - connection.at > self.plan.timeout:
                    connection.busy = False
                    self.tally.errors["timeout"] += 1
                    if connection.transport is not None:
                        connection.transport.close()
            self._check_end()
            if self.tally.started and self.progress is not None:
                self.progress(self.tally, now - self.tally.started)

    async def run(self) -> Tally:
        loop = asyncio.get_running_loop()
        self.finished = loop.create_future()
        driver = asyncio.ensure_future(self._open_loop() if self.plan.rate else self._closed_loop())
        ticker = asyncio.ensure_future(self._ticker())
        began = asyncio.ensure_future(self.began.wait())
        try:
            await asyncio.wait({driver, began}, return_when=asyncio.FIRST_COMPLETED)
            if not began.done():
                driver.result()  # the first connections failed: raise that
            limit = None
            if self.plan.duration is not None:
                limit = max(0.0, self.tally.started + self.plan.duration - time.perf_counter())
            await asyncio.wait({driver, self.finished}, timeout=limit)
            if driver.done():
                driver.result()
        finally:
            self._stop()
            for task in (driver, ticker, began):
                task.cancel()
            for connection in self.connections:
                connection.busy = False  # in flight at the end: neither done nor failed
                self.tally.bytes_in += connection.bytes_in
                connection.bytes_in = 0
                if connection.transport is not None:
                    connection.transport.close()
            await asyncio.gather(driver, ticker, began, return_exceptions=True)
        if self.progress is not None:
            self.progress(self.tally, self.tally.finished - self.tally.started)
        return self.tally


def loadtest_run(
    plan: Plan, *, progress: Callable[[Tally, float], None] | None = None
) -> dict[str, Any]:
    """Run the plan and return its report (see `report_from`)."""
    runner = Runner(plan, progress=progress)
    try:
        import uvloop  # optional: cheaper per request than asyncio's loop

        runs: Callable[[Any], Tally] = uvloop.run
    except ImportError:
        runs = asyncio.run
    try:
        tally = runs(runner.run())
    except KeyboardInterrupt:
        # Ctrl-C ends the run early; what was measured so far is still reported.
        tally = runner.tally
        tally.finished = tally.finished or time.perf_counter()
    return report_from(plan, tally)


def _percentile(ordered: list[float], fraction: float) -> float | None:
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return ordered[index]


def _latency_ms(values: list[float]) -> dict[str, float | None]:
    ordered = sorted(values)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 3)

    return {
        "p50": ms(_percentile(ordered, 0.50)),
        "p90": ms(_percentile(ordered, 0.90)),
        "p99": ms(_percentile(ordered, 0.99)),
        "max": ms(ordered[-1] if ordered else None),
        "mean": ms(sum(ordered) / len(ordered) if ordered else None),
    }


def report_from(plan: Plan, tally: Tally) -> dict[str, Any]:
    elapsed = max(tally.finished - tally.started, 1e-9)
    report: dict[str, Any] = {
        "url": plan.url,
        "mode": "open" if plan.rate else "closed",
        "concurrency": plan.concurrency,
        "rate": plan.rate,
        "stream": plan.stream,
        "seconds": round(elapsed, 3),
        "requests": len(tally.latencies),
        "errors": sum(tally.errors.values()),
        "errors_by_kind": dict(sorted(tally.errors.items())),
        "statuses": {str(status): count for status, count in enumerate(tally.statuses) if count},
        "throughput": round(len(tally.latencies) / elapsed, 2),
        "latency_ms": _latency_ms(tally.latencies),
        "bytes_in": tally.bytes_in,
    }
    if plan.stream:
        report["ttft_ms"] = _latency_ms(tally.ttfts)
    if plan.rate:
        report["dropped"] = tally.dropped
    return report


def _ms_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}ms"


def report_text(report: dict[str, Any]) -> str:
    mode = (
        f"open loop at {report['rate']:g} req/s (at most {report['concurrency']} in flight)"
        if report["mode"] == "open"
        else f"closed loop, {report['concurrency']} connections"
    )
    lines = [
        f"{report['url']}: {mode}{', streaming' if report['stream'] else ''}",
        f"  requests    {report['requests']} in {report['seconds']:.2f}s",
        f"  throughput  {report['throughput']:.2f} req/s",
    ]
    for title, key in (("latency", "latency_ms"), ("TTFT", "ttft_ms")):
        if key in report:
            figures = report[key]
            lines.append(
                f"  {title:<11} "
                + "  ".join(f"{name} {_ms_text(figures[name])}" for name in ("p50", "p90", "p99"))
                + f"  max {_ms_text(figures['max'])}"
            )
    errors = report["errors_by_kind"]
    detail = ", ".join(f"{kind}: {count}" for kind, count in errors.items())
    lines.append(f"  errors      {report['errors']}" + (f" ({detail})" if detail else ""))
    if report.get("dropped"):
        lines.append(f"  dropped     {report['dropped']} (concurrency limit reached)")
    return "\n".join(lines)


def progress_printer(plan: Plan, stream: TextIO = sys.stderr) -> Callable[[Tally, float], None]:
    """A progress line redrawn in place: a bar for the duration (or count), rate and errors."""
    width = 24

    def show(tally: Tally, elapsed: float) -> None:
        if plan.requests is not None:
            fraction = tally.done / max(plan.requests, 1)
        else:
            fraction = elapsed / (plan.duration or 1)
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * width)
        rate = len(tally.latencies) / elapsed if elapsed > 0 else 0.0
        stream.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {fraction * 100:3.0f}% "
            f"{elapsed:5.1f}s  {len(tally.latencies)} ok  {rate:,.0f} req/s  "
            f"{sum(tally.errors.values())} errors\x1b[K"
        )
        stream.flush()

    return show


_COMPARED = [
    ("throughput", ("throughput",), True),
    ("requests", ("requests",), True),
    ("errors", ("errors",), False),
    *[(f"latency {n}", ("latency_ms", n), False) for n in ("p50", "p90", "p99", "max")],
    *[(f"TTFT {n}", ("ttft_ms", n), False) for n in ("p50", "p90", "p99", "max")],
]


def _dig(report: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = report
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return None
        value = value[name]
    return value if isinstance(value, int | float) else None


def compare_rows(first: dict[str, Any], second: dict[str, Any]) -> list[dict[str, str]]:
    """One row per figure both runs have: A, B, B - A and the change in percent."""
    rows = []
    for title, path, higher_is_better in _COMPARED:
        a, b = _dig(first, path), _dig(second, path)
        if a is None or b is None:
            continue
        delta = b - a
        percent = f"{delta / a * 100:+.1f}%" if a else ""
        better = delta > 0 if higher_is_better else delta < 0
        rows.append(
            {
                "metric": title,
                "a": f"{a:g}",
                "b": f"{b:g}",
                "delta": f"{delta:+.3f}".rstrip("0").rstrip("."),
                "change": percent,
                "verdict": "" if delta == 0 else "better" if better else "worse",
            }
        )
    return rows


def report_load(path: str) -> dict[str, Any]:
    with open(os.fspath(path)) as handle:
        data = json.load(handle)
    if not isinstance(data, dict) or "throughput" not in data:
        raise ValueError(f"{path} is not an `ogem loadtest --json` report")
    return data
