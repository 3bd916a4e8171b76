"""CPU cost per /v1 request, measured in process: `python -m bench --cpu`.

Wall-clock throughput on a shared machine says as much about the neighbours as about Ogem. This
mode drives Ogem's own ASGI application (`ogem_site.asgi.application`, every wrapper included)
with an in-memory ASGI receive/send, one request at a time on a uvloop event loop, against the
same nginx mock upstream, PostgreSQL and Redis as the rest of the benchmark, and reports the
process CPU time (`time.process_time`, user + system) per request: what Ogem itself spends,
HTTP client and Redis client included, ASGI server excluded. CPU time is not taken from other
processes, so it stays comparable while the machine is busy. `--profile` adds a cProfile listing.

Run as a child process (`python -m bench.cpu ...`) by `bench/__main__.py`, which provides the
configured environment, the upstream and the key.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.procs import cpu_ns

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


@dataclass
class CpuResult:
    requests: int
    cpu_us: float  # CPU microseconds per request (process_time)
    wall_us: float  # wall microseconds per request (includes the upstream's time)
    # CPU microseconds per request of the worker's helper processes (`_helpers_replay`), and of
    # each by its module
    children_us: float | None  # None: not measured (no helper, or under callgrind)
    children: dict[str, float]
    body_bytes: int


def _scope(path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def asgi_request(
    app: ASGIApp, *, path: str, body: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[int, bytes]:
    """One request through `app`: (status, body). The client stays connected until the end."""
    finished = asyncio.get_running_loop().create_future()
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished
        return {"type": "http.disconnect"}

    status = 0
    parts: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            parts.append(message.get("body", b""))

    scope = _scope(path, headers)
    await app(scope, receive, send)
    if not finished.done():  # the handler cancels its disconnect listener, and the future
        finished.set_result(None)
    return status, b"".join(parts)


async def _measure(
    app: ASGIApp,
    *,
    body: bytes,
    key: str,
    requests: int,
    warmup: int,
    profile: bool,
    concurrency: int = 1,
    unique: bool = False,
    path: str = "/v1/chat/completions",
) -> tuple[CpuResult, str]:
    from bench.bodies import request_unique

    def headers_for(body: bytes) -> list[tuple[bytes, bytes]]:
        return [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]

    # `unique`: every request a body never sent before (all response cache misses), built
    # before the counted window.
    numbered = [request_unique(n) for n in range(warmup + requests)] if unique else []
    fixed = headers_for(body)

    def next_request() -> tuple[bytes, list[tuple[bytes, bytes]]]:
        if not numbered:
            return body, fixed
        chosen = numbered.pop()
        return chosen, headers_for(chosen)

    for _ in range(warmup):
        sent, headers = next_request()
        status, answer = await asgi_request(app, path=path, body=sent, headers=headers)
        if status != 200:
            raise SystemExit(f"warm-up request answered {status}: {answer[:300]!r}")
    if numbered:  # the counted requests' headers too, before the window
        prepared = [(chosen, headers_for(chosen)) for chosen in reversed(numbered)]
        numbered.clear()

        def next_request() -> tuple[bytes, list[tuple[bytes, bytes]]]:
            return prepared.pop()

    # What the request path hands to the helper processes, kept to be handed again at a fixed
    # rate (`_helpers_replay`); not under callgrind, whose count it would add to.
    handed = None if os.environ.get("OGEM_BENCH_CALLGRIND") else _handed_capture()
    gc.collect()
    if os.environ.get("OGEM_BENCH_CALLGRIND"):
        _timers_still()
    _callgrind_instrument(on=True)
    profiler = cProfile.Profile() if profile else None
    size = 0
    cpu = time.process_time()
    wall = time.perf_counter()
    if profiler is not None:
        profiler.enable()

    async def worker(count: int) -> None:
        nonlocal size
        for _ in range(count):
            sent, headers = next_request()
            status, answer = await asgi_request(app, path=path, body=sent, headers=headers)
            if status != 200:
                raise SystemExit(f"request answered {status}: {answer[:300]!r}")
            size = len(answer)

    share, extra = divmod(requests, concurrency)
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(concurrency)))
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu
    wall = time.perf_counter() - wall
    _callgrind_instrument(on=False)
    children = _helpers_replay(handed) if handed is not None else {}
    listing = ""
    if profiler is not None:
        dump = os.environ.get("OGEM_BENCH_PSTATS")
        if dump:  # the whole profile, for pstats (the listing below shows its top only)
            profiler.dump_stats(f"{dump}.{'miss' if unique else 'same'}.{len(body)}.{os.getpid()}")
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(35)
        listing = out.getvalue()
    result = CpuResult(
        requests=requests,
        cpu_us=cpu / requests * 1e6,
        wall_us=wall / requests * 1e6,
        children_us=sum(children.values()) if children else None,
        children=children,
        body_bytes=size,
    )
    return result, listing


REPLAY_RATE = 1000  # requests a second: between one worker's rate at concurrency 1 and at 50


def _handed_capture() -> dict[str, list[Any]] | None:
    """Keep what the request path hands to tracing's and the callbacks' pipes (their `put`),
    besides handing it. None when neither is on."""
    from gateway.callbacks import dispatcher
    from gateway.tracing import tracing_active

    tracing = tracing_active()
    pipes = {
        "tracing": tracing.pipe if tracing is not None else None,
        "callbacks": dispatcher._dispatcher._pipe,
    }
    handed: dict[str, list[Any]] = {}
    for name, pipe in pipes.items():
        if pipe is None:
            continue
        kept = handed[name] = []
        put = pipe.put

        def capturing(*args: Any, kept: list[Any] = kept, put: Any = put) -> None:
            kept.append(args)
            put(*args)

        pipe.put = capturing  # type: ignore[method-assign]
    return handed or None


def _helpers_replay(handed: dict[str, list[Any]]) -> dict[str, float]:
    """CPU µs per request of the helper processes (tracing's exporter, the callbacks' delivery),
    by module: what the measured requests handed over, handed again to fresh pipes at
    REPLAY_RATE requests a second, in BATCH-sized turns. Their batching follows the time, so
    the requests' own pace (a loaded machine's) would make the figure vary; the scheduler's CPU
    time (ns, no tick rounding) of each process is read before and after, once each has done
    everything handed to it."""
    from gateway.callbacks import dispatcher
    from gateway.tracing import tracing_active
    from gateway.tracing_pipe import SpanPipe

    tracing = tracing_active()
    fresh: dict[str, Any] = {}
    if "tracing" in handed and tracing is not None:
        del tracing.pipe.put  # the measured pipe as it was
        fresh["tracing"] = SpanPipe(**tracing.pipe.config)
    if "callbacks" in handed and dispatcher._dispatcher._pipe is not None:
        del dispatcher._dispatcher._pipe.put
        replaying = dispatcher.Dispatcher()
        replaying.configure(dispatcher._dispatcher.settings)
        fresh["callbacks"] = replaying
    step = 32  # the pipes' batch (tracing_pipe.BATCH_TRACES, dispatcher.BATCH_EVENTS)

    def hand(first: int) -> None:
        for name, kept in handed.items():
            target = fresh[name]
            put = target.put if name == "tracing" else target.submit
            for args in kept[first : first + step]:
                put(*args)

    hand(0)  # a first batch: the processes start, load what they send with and connect
    for target in fresh.values():
        target.flush(60.0)
    processes = {
        name: (target if name == "tracing" else target._pipe)._process
        for name, target in fresh.items()
    }
    before = {name: cpu_ns(process.pid) for name, process in processes.items()}
    count = max(len(kept) for kept in handed.values()) - step
    started = time.monotonic()
    for first in range(step, count + step, step):
        hand(first)
        time.sleep(max(started + first / REPLAY_RATE - time.monotonic(), 0.0))
    for target in fresh.values():
        target.flush(60.0)
    spent = {
        str(process.args[2]): (cpu_ns(process.pid) - before[name]) / count / 1e3
        for name, process in processes.items()
    }
    if "tracing" in fresh:
        fresh["tracing"].close(wait=30.0)
    if "callbacks" in fresh:
        fresh["callbacks"].close(30.0)
    return spent


def _timers_still() -> None:
    """Under valgrind a request takes some fifty times its native time, more on a loaded
    machine, so the in-process caches' TTLs (prices, circuits, keys: `ogem_site.caching`) would
    expire inside the counted window as often as the host is slow, and the configuration
    watcher would poll: instruction counts then followed the machine's load (up to +25 % on the
    same tree). Their clock stands still for the window instead, as it nearly does for 200
    requests at native speed, and the watcher stops (the worker lease's refresh is taken out by
    OGEM_WORKER_LEASE_TTL, bench/ogem.py)."""
    import itertools

    from gateway import child_pipe
    from gateway.config.watch import config_watch_stop
    from ogem_site import caching

    config_watch_stop()
    caching._clock = itertools.repeat(time.monotonic()).__next__  # a C call, like monotonic
    # The hand-over thread of tracing's and the callbacks' pipes (gateway/child_pipe.py) takes
    # its queues every DELAY seconds or at a batch: at native speed a batch comes first, under
    # valgrind the timer did, every 3 to 6 requests as the host was loaded, and the thread's
    # per-turn work (and marshal's, its references shared over fewer requests) followed it.
    # Batches alone, as at native speed (a turn at the batch's wake).
    child_pipe.DELAY = 3600.0


def _callgrind_instrument(*, on: bool) -> None:
    """Under `valgrind --tool=callgrind --instr-atstart=no`, count only the measured requests."""
    if os.environ.get("OGEM_BENCH_CALLGRIND"):
        flag = "on" if on else "off"
        subprocess.run(["callgrind_control", "-i", flag, str(os.getpid())], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu")
    parser.add_argument("--key", required=True)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight")
    parser.add_argument(
        "--mode",
        choices=["all", "json", "stream", "responses"],
        default="all",
        help="responses: the Responses API on a model Ogem serves over chat, and the same chat",
    )
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument(
        "--row", type=int, help="with --mode responses: only this row (0 chat, 1, 2)"
    )
    parser.add_argument(
        "--prompt-size",
        type=int,
        default=0,
        help="the user message: bench/guardrails.py's prose prompt of this many bytes, with "
        "personal details in it (default: a short one)",
    )
    parser.add_argument(
        "--cache",
        choices=["miss", "hit"],
        help="with the response cache on: every request a new body (miss) or one body (hit)",
    )
    args = parser.parse_args(argv)

    import uvloop

    from bench.bodies import (
        CHUNKS,
        REQUEST_HOSTED_CHAT,
        REQUEST_HOSTED_RESPONSE,
        REQUEST_HOSTED_RESPONSE_STORED,
        REQUEST_JSON,
        REQUEST_STREAM,
    )
    from ogem_site.asgi import application

    async def run() -> list[str]:
        lines = [
            "| mode | in flight | requests | CPU µs / request | helpers' CPU µs / request "
            "| wall µs / request | body bytes |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        listings = []
        chat = "/v1/chat/completions"
        modes = [
            ("json", "non-streaming", REQUEST_JSON, chat),
            ("stream", f"streaming ({CHUNKS} chunks)", REQUEST_STREAM, chat),
            ("responses", "chat completion (hosted_vllm)", REQUEST_HOSTED_CHAT, chat),
            ("responses", "response, store: false", REQUEST_HOSTED_RESPONSE, "/v1/responses"),
            ("responses", "response, stored", REQUEST_HOSTED_RESPONSE_STORED, "/v1/responses"),
        ]
        for index, (name, mode, body, path) in enumerate(modes):
            if args.prompt_size:
                body = _with_prompt(body, args.prompt_size)
            if args.mode != name and not (args.mode == "all" and name != "responses"):
                continue
            if args.row is not None and index - 2 != args.row:  # callgrind counts one row a run
                continue
            result, listing = await _measure(
                application,
                body=body,
                key=args.key,
                requests=args.requests,
                warmup=args.warmup,
                profile=args.profile,
                concurrency=args.concurrency,
                unique=args.cache == "miss",
                path=path,
            )
            lines.append(
                f"| {mode} | {args.concurrency} | {result.requests:,} | {result.cpu_us:,.0f} | "
                f"{'-' if result.children_us is None else f'{result.children_us:,.1f}'} | "
                f"{result.wall_us:,.0f} | {result.body_bytes:,} |"
            )
            if result.children:
                helpers = ", ".join(f"{n} {us:,.1f}" for n, us in sorted(result.children.items()))
                replayed = f"what the requests handed over, again at {REPLAY_RATE:,} requests/s"
                listings += ["", f"helpers' CPU µs / request ({replayed}), {mode}: {helpers}"]
            if listing:
                listings += ["", f"### cProfile, {mode} (by own time)", "", "```", listing, "```"]
        return [*lines, *listings]

    lines = uvloop.run(run())
    print("\n".join(lines))
    return 0


def _with_prompt(body: bytes, size: int) -> bytes:
    import orjson

    from bench.guardrails import prompt

    data = orjson.loads(body)
    if "messages" in data:
        data["messages"] = [{"role": "user", "content": prompt(size)}]
    else:
        data["input"] = prompt(size)
    return orjson.dumps(data)


if __name__ == "__main__":
    sys.exit(main())
