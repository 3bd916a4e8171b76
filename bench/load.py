"""Load generation: wrk for throughput and latency, an asyncio probe for stream timing."""

from __future__ import annotations

import asyncio
import re
import secrets
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from bench.procs import BenchError, pinned

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


@dataclass
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def _lua(path: Path, *, body: bytes | None, headers: dict[str, str], unique: bool = False) -> Path:
    lines = []
    if body is not None:
        lines.append('wrk.method = "POST"')
        lines.append(f"wrk.body = [==[{body.decode()}]==]")
    for name, value in headers.items():
        lines.append(f'wrk.headers["{name}"] = "{value}"')
    if unique and body is not None:
        # Every request a body never sent before (a response cache miss): the prompt's last
        # word numbered per request, after a mark of this run (the numbers start again at 1 in
        # each run, and a cache still holds the last run's bodies).
        lines += [
            "local counter = 0",
            "request = function()",
            "  counter = counter + 1",
            f'  local mark = "Say hello. #{secrets.token_hex(6)}-" .. counter',
            '  local body = string.gsub(wrk.body, "Say hello%.", mark, 1)',
            "  return wrk.format(nil, nil, nil, body)",
            "end",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def concurrencies(text: str) -> tuple[int, ...]:
    """`--concurrency 1,10,50`."""
    values = tuple(int(part) for part in text.split(","))  # ValueError: argparse says so
    if any(value < 1 for value in values):
        raise ValueError(text)
    return values


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not match:
        raise BenchError(f"cannot read wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk_run(
    *,
    wrk: str,
    url: str,
    connections: int,
    seconds: float,
    workdir: Path,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    core: int | None = None,
    unique: bool = False,
) -> WrkResult:
    """`unique`: a different body each request (the prompt numbered), e.g. all cache misses."""
    script = _lua(
        workdir / f"wrk-{connections}.lua", body=body, headers=headers or {}, unique=unique
    )
    argv = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(pinned(argv, core), capture_output=True, text=True, check=False)
    if output.returncode != 0:
        raise BenchError(f"wrk failed: {output.stderr.strip() or output.stdout.strip()}")
    return wrk_parse(output.stdout)


def wrk_parse(text: str) -> WrkResult:
    """Read `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.MULTILINE)
    total = re.search(r"(\d+) requests in", text)
    if not (rps and p50 and p99 and total):
        raise BenchError(f"cannot read wrk output:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(group) for group in socket_errors.groups())
    return WrkResult(
        requests_per_second=float(rps.group(1)),
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
        errors=errors,
        requests=int(total.group(1)),
    )


@dataclass
class StreamResult:
    completions: int
    ttfb_p50_ms: float
    ttfb_p99_ms: float
    total_p50_ms: float
    total_p99_ms: float
    max_gap_ms: float
    errors: int


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _streams(
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    concurrency: int,
    seconds: float,
    once: bool,
    unique: bool = False,
) -> StreamResult:
    ttfbs: list[float] = []
    totals: list[float] = []
    gaps: list[float] = []
    errors = 0
    sent = 0
    mark = f"Say hello. #{secrets.token_hex(6)}-".encode()
    deadline = time.perf_counter() + seconds
    timeout = aiohttp.ClientTimeout(total=120)
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one() -> None:
            nonlocal errors, sent
            data = body
            if unique:  # as wrk's script numbers it (`_lua`)
                sent += 1
                data = body.replace(b"Say hello.", mark + str(sent).encode(), 1)
            started = time.perf_counter()
            try:
                async with session.post(url, data=data, headers=headers) as response:
                    if response.status != 200:
                        errors += 1
                        await response.read()
                        return
                    previous = None
                    first = True
                    async for _chunk in response.content.iter_any():
                        now = time.perf_counter()
                        if first:
                            # Time to the first body bytes: the first SSE event.
                            ttfbs.append((now - started) * 1000)
                            first = False
                        elif previous is not None:
                            gaps.append((now - previous) * 1000)
                        previous = now
                    totals.append((time.perf_counter() - started) * 1000)
            except (aiohttp.ClientError, TimeoutError):
                errors += 1

        async def worker() -> None:
            if once:
                await one()
                return
            while time.perf_counter() < deadline:
                await one()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return StreamResult(
        completions=len(ttfbs),
        ttfb_p50_ms=statistics.median(ttfbs) if ttfbs else float("nan"),
        ttfb_p99_ms=_percentile(ttfbs, 0.99),
        total_p50_ms=statistics.median(totals) if totals else float("nan"),
        total_p99_ms=_percentile(totals, 0.99),
        max_gap_ms=max(gaps) if gaps else float("nan"),
        errors=errors,
    )


def stream_probe(
    *,
    url: str,
    body: bytes,
    headers: dict[str, str],
    concurrency: int,
    seconds: float = 5.0,
    once: bool = False,
    unique: bool = False,
) -> StreamResult:
    """Stream timing from the client's side. `once`: each of `concurrency` clients streams once.
    `unique`: a body never sent before each request (the prompt numbered, as wrk's `unique`)."""
    return asyncio.run(
        _streams(
            url=url,
            body=body,
            headers=headers,
            concurrency=concurrency,
            seconds=seconds,
            once=once,
            unique=unique,
        )
    )


@dataclass
class Stalls:
    """Gaps between reads of the streams' bodies in one phase of the run."""

    gaps: int
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, gaps: list[float]) -> Stalls:
        return cls(
            gaps=len(gaps),
            p99_ms=_percentile(gaps, 0.99),
            max_ms=max(gaps) if gaps else float("nan"),
        )


@dataclass
class SlowStreamResult:
    completed: int
    errors: dict[str, int]
    ttfb_p50_ms: float
    ttfb_p99_ms: float
    ramp: Stalls  # gaps that began while streams were still being opened
    open: Stalls  # gaps that began once every stream had its first event
    # perf_counter() when the first stream was opened and when the last one had its first event.
    ramp_started: float
    all_open: float
    # Per completed stream: perf_counter() at its first and at its last read.
    spans: list[tuple[float, float]]
    # Per completed stream, in spans' order: perf_counter() before its connection was opened.
    opened: list[float]


async def _slow_streams(
    *,
    host: str,
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    count: int,
    ramp_seconds: float,
) -> SlowStreamResult:
    """Raw asyncio sockets, far cheaper than an HTTP client library, so that the client is not
    what stalls when thousands of streams run at once. Streams open one after another, evenly
    over `ramp_seconds` (as clients arrive, not all in the same instant). Time to first event and
    the gaps are measured between reads that complete an SSE event (direct and through Ogem
    alike), and gaps are split by whether they began before or after the last stream's first
    event."""
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    ttfbs: list[float] = []
    gaps: list[tuple[float, float]] = []  # (when the gap began, its length in ms)
    firsts: list[float] = []
    spans: list[tuple[float, float]] = []
    opened: list[float] = []
    errors: dict[str, int] = {}

    def fail(reason: str) -> None:
        errors[reason] = errors.get(reason, 0) + 1

    async def one(at: float) -> None:
        await asyncio.sleep(max(at - time.perf_counter(), 0))
        started = time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            fail(type(exc).__name__)
            return
        try:
            writer.write(request)
            received = b""
            previous: float | None = None
            first = 0.0
            status_checked = False
            while True:
                data = await asyncio.wait_for(reader.read(65536), timeout=60)
                now = time.perf_counter()
                if not data:
                    break
                if not status_checked:
                    status_checked = True
                    status = data.split(b" ", 2)[1:2]
                    if status != [b"200"]:
                        fail(f"HTTP {status[0].decode() if status else '?'}")
                        return
                # Time complete SSE events, not reads: the mock upstream trickles bytes, so a
                # read may end inside an event, which a gateway (relaying whole events) holds
                # until the rest arrives; counted per read, that wait would be billed to Ogem.
                completes = b"\n\n" in received[-1:] + data
                received += data[-32:]
                if not completes:
                    continue
                if previous is None:
                    first = now
                    firsts.append(now)
                    ttfbs.append((now - started) * 1000)
                else:
                    gaps.append((previous, (now - previous) * 1000))
                previous = now
            if b"[DONE]" not in received:
                fail("incomplete stream")
            elif previous is not None:
                spans.append((first, previous))
                opened.append(started)
        except (OSError, TimeoutError) as exc:
            fail(type(exc).__name__)
        finally:
            writer.close()

    begin = time.perf_counter() + 0.05
    step = ramp_seconds / count if count else 0.0
    await asyncio.gather(*(one(begin + index * step) for index in range(count)))
    all_open = max(firsts) if firsts else begin
    return SlowStreamResult(
        completed=count - sum(errors.values()),
        errors=errors,
        ttfb_p50_ms=statistics.median(ttfbs) if ttfbs else float("nan"),
        ttfb_p99_ms=_percentile(ttfbs, 0.99),
        ramp=Stalls.of([gap for began, gap in gaps if began < all_open]),
        open=Stalls.of([gap for began, gap in gaps if began >= all_open]),
        ramp_started=begin,
        all_open=all_open,
        spans=spans,
        opened=opened,
    )


def slow_stream_probe(
    *, url: str, body: bytes, headers: dict[str, str], count: int, ramp_seconds: float
) -> SlowStreamResult:
    parsed = urlsplit(url)
    return asyncio.run(
        _slow_streams(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or 80,
            path=parsed.path,
            body=body,
            headers=headers,
            count=count,
            ramp_seconds=ramp_seconds,
        )
    )
