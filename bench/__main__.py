"""`make bench`: Ogem against a direct-to-mock baseline, in one run. See docs/benchmark.md."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from bench.batches import batch_during_run, batch_run
from bench.bodies import (
    CHUNKS,
    REQUEST_HOSTED_CHAT,
    REQUEST_HOSTED_RESPONSE,
    REQUEST_HOSTED_RESPONSE_STORED,
    REQUEST_JSON,
    REQUEST_STREAM,
)
from bench.load import (
    SlowStreamResult,
    StreamResult,
    WrkResult,
    concurrencies,
    slow_stream_probe,
    stream_probe,
    wrk_run,
)
from bench.nginx import DIRECT_HEADERS, MockUpstream, start_nginx
from bench.ogem import Ogem, cpu_run, start_ogem, write_config
from bench.procs import (
    ROOT,
    BenchError,
    Placed,
    cores,
    cpu_idle_described,
    cpu_seconds,
    dead_url,
    ensure_tools,
    rss_kib,
    stop,
)
from bench.redis_server import RedisServer, start_redis
from bench.servers import floor_start

CONCURRENCY = (1, 10, 50)
# Slow streams: events per second of each (2,000 of them at 2/s take about 30% of a core at
# ~70 µs an event), and the seconds over which they open (about 400 new streams a second).
SLOW_RATE = 2.0
SLOW_RAMP_SECONDS = 5.0
RESULTS = ROOT / "bench" / "results"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["vectors"]:
        from bench.vectors import main as vectors_main

        return vectors_main(argv[1:])
    if argv[:1] == ["vector-stores"]:
        from bench.vector_stores import main as vector_stores_main

        return vector_stores_main(argv[1:])
    if argv[:1] == ["realtime-frames"]:
        from bench.realtime_frames import main as realtime_frames_main

        return realtime_frames_main(argv[1:])
    if argv[:1] == ["guardrails"]:
        from bench.guardrails import main as guardrails_main

        return guardrails_main(argv[1:])
    if argv[:1] == ["semantic"]:
        from bench.semantic import main as semantic_main

        return semantic_main(argv[1:])
    if argv[:1] == ["ab"]:
        from bench.ab import WANTED, header, paired, parse

        ab_args = parse(argv[1:])
        return _placed(
            WANTED, partial(paired, ab_args), partial(header, ab_args), f"ab-{ab_args.variant}-"
        )
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        epilog="`python -m bench vectors --help`: the vector index (semantic cache, vector "
        "stores); `python -m bench semantic --help`: the semantic cache's lookup path; "
        "`python -m bench vector-stores --help`: a vector store's search; "
        "`python -m bench guardrails --help`: the guardrail detectors' cost; "
        "`python -m bench ab --help`: a baseline and a variant Ogem measured in alternation",
    )
    parser.add_argument("--seconds", type=float, default=5, help="per measurement (default 5)")
    parser.add_argument("--soak", type=int, metavar="N", help="RSS before/after N requests")
    parser.add_argument(
        "--batch", type=int, metavar="N", help="an N-line batch on one Celery worker (lines/s, RSS)"
    )
    parser.add_argument(
        "--batch-during",
        type=int,
        metavar="N",
        help="/v1 at concurrency 1 and 50 alone, then while an N-line batch runs",
    )
    parser.add_argument(
        "--batch-core",
        choices=["ogem", "load", "load-idle"],
        default="ogem",
        help="with --batch-during: the batch's worker on Ogem's core at the idle CPU priority "
        "(OGEM_CELERY_CPU_PRIORITY=idle; the default), on "
        "the load's core at normal priority (a core of its own, as production runs it), or "
        "on the load's core at the idle priority (load-idle: it takes only what wrk, nginx and "
        "Redis leave there, none of Ogem's core)",
    )
    parser.add_argument(
        "--batch-upstream",
        choices=["own", "shared"],
        default="own",
        help="with --batch-during: the batch's lines go to an nginx mock of their own at the idle "
        "CPU priority on the load's core (the default: a provider's CPU is not Ogem's), or to "
        "the nginx that /v1 calls (its time then counts against /v1)",
    )
    parser.add_argument(
        "--batch-db-core",
        choices=["load", "any"],
        default="load",
        help="with --batch-during and PostgreSQL on this machine: the batch worker's backends "
        "kept on the load's core (the default: a database host's CPU is not Ogem's), or left "
        "where the kernel puts them (Ogem's core too)",
    )
    parser.add_argument(
        "--batch-yield",
        choices=["on", "off"],
        default="on",
        help="with --batch-during: the batch's lines yield the CPU while other processes keep "
        "its worker's CPUs busy (OGEM_BATCH_YIELD_CPU at its default; the default), or never "
        "(off: OGEM_BATCH_YIELD_CPU=off, SCHED_IDLE alone)",
    )
    parser.add_argument("--slow-streams", type=int, metavar="N", help="N concurrent slow streams")
    parser.add_argument(
        "--slow-rate",
        type=float,
        default=SLOW_RATE,
        metavar="EPS",
        help=f"events per second of each slow stream (default {SLOW_RATE:g})",
    )
    parser.add_argument(
        "--slow-ramp",
        type=float,
        default=SLOW_RAMP_SECONDS,
        metavar="S",
        help=f"open the slow streams evenly over S seconds (default {SLOW_RAMP_SECONDS:g})",
    )
    parser.add_argument(
        "--realtime",
        type=int,
        metavar="N",
        help="N idle Realtime sessions (their memory), then the relay's cost per frame",
    )
    parser.add_argument(
        "--realtime-audio",
        action="store_true",
        help="with --realtime: the events are 100 ms audio appends, echoed as audio deltas",
    )
    parser.add_argument(
        "--realtime-active",
        type=int,
        default=100,
        metavar="N",
        help="with --realtime: sessions sending events at once (default 100)",
    )
    parser.add_argument(
        "--asgi-servers", action="store_true", help="compare uvicorn and granian instead"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="--asgi-servers rounds; --batch-during: pairs of paused/running windows (default 3)",
    )
    parser.add_argument(
        "--cpu", type=int, metavar="N", help="CPU time per request, in process, over N requests"
    )
    parser.add_argument("--profile", action="store_true", help="with --cpu: a cProfile listing")
    parser.add_argument(
        "--callgrind",
        type=Path,
        metavar="FILE",
        help="with --cpu: count instructions per request under valgrind (deterministic)",
    )
    parser.add_argument(
        "--cache",
        choices=["off", "local", "redis", "redis-l2"],
        default="off",
        help="the response cache (docs/caching.md): the matrix and --cpu add all-hit (one body) "
        "and all-miss (a new body each request) runs (default off); redis-l2: Redis with the "
        "in-process tier off (local_max_bytes 0), so that every hit is read from Redis",
    )
    parser.add_argument(
        "--cache-targets",
        action="store_true",
        help="the response cache's hit targets (issue 18): a hit's added p50 over direct nginx "
        "at concurrency 1, and hits/s on Ogem's one core from L1 (`local`) and from Redis "
        "(`redis-l2`), each against its target",
    )
    parser.add_argument(
        "--deployment-limits",
        action="store_true",
        help="give each bench deployment its own rpm/tpm (the router's capacity count runs)",
    )
    parser.add_argument(
        "--concurrency",
        type=concurrencies,
        default=CONCURRENCY,
        metavar="N,N",
        help="the matrix's concurrencies (default 1,10,50)",
    )
    parser.add_argument(
        "--responses",
        action="store_true",
        help="the Responses API on a non-OpenAI model (served over chat) against the "
        "equivalent chat completion, at concurrency 1 (docs/responses.md)",
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="OpenTelemetry tracing on, exporting over OTLP/HTTP to a local sink on the load "
        "core (docs/tracing.md); compare with a run without it",
    )
    parser.add_argument(
        "--callbacks",
        action="store_true",
        help="two callbacks on (LiteLLM's generic_api webhooks) delivering to a local sink on the "
        "load core (docs/callbacks.md); compare with a run without it",
    )
    parser.add_argument(
        "--callbacks-down",
        action="store_true",
        help="as --callbacks, but their sink is down (a port nothing listens on): /v1 must not "
        "notice (the events are retried, then dropped and counted)",
    )
    parser.add_argument(
        "--redis-url",
        metavar="URL",
        help="use this Redis (e.g. a remote one) instead of a private one started on the load "
        "core; an empty URL runs Ogem on local memory",
    )
    args = parser.parse_args(argv)
    wanted = {"nginx": "nginx", "wrk": "wrk"}
    if args.redis_url is None and not args.asgi_servers:
        wanted["redis-server"] = "redis-server"

    def run(place: Placed) -> str:
        if args.asgi_servers:
            from bench.servers import compare

            return compare(
                wrk=place.tools["wrk"],
                workdir=place.workdir,
                seconds=args.seconds,
                server_core=place.ogem_core,
                load_core=place.load_core,
                rounds=args.rounds,
            )
        return _run(args, place.tools, place.workdir, place.ogem_core, place.load_core)

    return _placed(wanted, run, partial(_header, args))


def _placed(
    wanted: dict[str, str],
    run: Callable[[Placed], str],
    header: Callable[[], str],
    name: str = "",
) -> int:
    """`run` with the `wanted` tools, this process on the load core, in a temporary directory;
    its report under `header()`, printed and written to bench/results/<name><timestamp>.md."""
    _raise_file_limit()
    try:
        tools = ensure_tools(wanted)
        available = cores()
        ogem_core = available[0]
        load_core = available[1] if len(available) > 1 else None
        if load_core is None:
            print("only one core: Ogem and the load share it; figures are not comparable")
        # This process runs the stream probes: keep it off Ogem's core too.
        if load_core is not None:
            os.sched_setaffinity(0, {load_core})
        with tempfile.TemporaryDirectory(prefix="ogem-bench-") as tmp:
            report = run(Placed(tools, Path(tmp), ogem_core, load_core))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    text = f"{header()}\n\n{report}\n"
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.md"
    path.write_text(text)
    print(f"written to {path.relative_to(ROOT)}")
    return 0


def _raise_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _header(args: argparse.Namespace) -> str:
    postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    database = "PostgreSQL" if postgres else "SQLite"
    if args.redis_url is None:
        cache, place = "Redis (private)", "nginx, Redis and the load"
    else:
        cache = "Redis" if args.redis_url else "local memory"
        place = "nginx and the load"
    return (
        f"# Ogem benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"{os.cpu_count()} CPUs; Ogem: 1 worker pinned to its own core; {place} on "
        f"another. Database {database}, cache {cache}, response cache "
        f"{'local and redis-l2 (hit targets)' if args.cache_targets else args.cache}. "
        f"{'Tracing on (OTLP/HTTP to a local sink). ' if args.tracing else ''}"
        f"{'Two callbacks on (webhooks to a local sink). ' if args.callbacks else ''}"
        f"{'Two callbacks on, their sink down. ' if args.callbacks_down else ''}"
        f"{args.seconds:.0f} s per measurement. {cpu_idle_described()}"
    ).rstrip()


def _run(
    args: argparse.Namespace,
    tools: dict[str, str],
    workdir: Path,
    ogem_core: int,
    load_core: int | None,
) -> str:
    upstream = start_nginx(
        nginx=tools["nginx"],
        workdir=workdir / "nginx",
        core=load_core,
        slow_events_per_second=args.slow_rate,
    )
    ogem: Ogem | None = None
    redis: RedisServer | None = None
    batch_upstream: MockUpstream | None = None
    echo = None
    sink = None
    if args.tracing or args.callbacks:
        from bench.otlp_sink import OTLPSink

        # Any POST is counted and answered 200 (OTLP exports, webhooks), in a process of its own.
        sink = OTLPSink(core=load_core)
    if args.realtime:
        from bench.realtime import EchoUpstream

        echo = EchoUpstream(audio=args.realtime_audio)
    try:
        redis_url = args.redis_url
        if redis_url is None:
            redis = start_redis(
                redis_server=tools["redis-server"], workdir=workdir / "redis", core=load_core
            )
            redis_url = redis.url
        if args.cache_targets:
            return _cache_targets(
                upstream, tools, workdir, args.seconds, ogem_core, load_core, redis_url
            )
        ogem = start_ogem(
            workdir=workdir,
            upstream=upstream,
            core=ogem_core,
            redis_url=redis_url,
            deployment_limits=args.deployment_limits,
            cache=args.cache,
            realtime_api_base=echo.api_base if echo is not None else "",
            environment=sink.environment() if sink is not None and args.tracing else None,
            callbacks_url=(
                dead_url()
                if args.callbacks_down
                else sink.url
                if sink is not None and args.callbacks
                else ""
            ),
        )
        if args.batch:
            return batch_run(ogem, lines=args.batch, workdir=workdir, core=ogem_core)
        if args.batch_during:
            running = ogem

            def measure(concurrency: int) -> WrkResult:
                return wrk_run(
                    wrk=tools["wrk"], url=f"{running.url}/v1/chat/completions",
                    connections=concurrency, seconds=args.seconds, workdir=workdir,
                    body=REQUEST_JSON,
                    headers=running.headers, core=load_core,
                )  # fmt: skip

            own_core = args.batch_core in ("load", "load-idle")
            worker_config = None
            if args.batch_upstream == "own":
                batch_upstream = start_nginx(
                    nginx=tools["nginx"], workdir=workdir / "nginx-batch", core=load_core, idle=True
                )
                worker_config = write_config(
                    workdir / "config-batch.yaml",
                    batch_upstream,
                    deployment_limits=args.deployment_limits,
                    cache=args.cache,
                )
            return batch_during_run(
                ogem,
                lines=args.batch_during,
                workdir=workdir,
                core=load_core if own_core else ogem_core,
                measure=measure,
                rounds=args.rounds,
                own_core=own_core,
                idle=args.batch_core != "load",
                worker_config=worker_config,
                database_core=load_core if args.batch_db_core == "load" else None,
                cpu_yield=args.batch_yield == "on",
            )
        if echo is not None:
            from bench.realtime import realtime_run

            return realtime_run(
                ogem_url=ogem.url,
                key=ogem.key,
                upstream=echo,
                pids=ogem.server_pids(),
                sessions=args.realtime,
                active=args.realtime_active,
                frames=200,
            )
        if args.soak:
            return _soak(ogem, tools["wrk"], workdir, args.soak, load_core)
        if args.responses and not args.cpu:
            return _responses_rows(ogem, tools["wrk"], workdir, args.seconds, load_core)
        if args.slow_streams:
            return _slow_streams(ogem, upstream, args.slow_streams, args.slow_rate, args.slow_ramp)
        if args.cpu:
            return cpu_run(
                ogem,
                requests=args.cpu,
                profile=args.profile,
                core=ogem_core,
                callgrind=args.callgrind.resolve() if args.callgrind else None,
                cache=args.cache,
                responses=args.responses,
            )
        report = _matrix(
            ogem, upstream, tools["wrk"], workdir, args.seconds, load_core, args.concurrency
        )
        if sink is not None:
            ogem.stop()  # its exporter flushes what it holds at exit
            ogem = None
            report += "\n\n" + sink.summary()
        if args.cache != "off":
            report += "\n\n" + _cache_rows(
                ogem, tools["wrk"], workdir, args.seconds, load_core, args.concurrency, args.cache
            )
        return report
    finally:
        if ogem is not None:
            ogem.stop()
        if redis is not None:
            redis.stop()
        if echo is not None:
            echo.stop()
        if sink is not None:
            sink.stop()
        if batch_upstream is not None:
            batch_upstream.stop()
        upstream.stop()


def _matrix(
    ogem: Ogem,
    upstream: MockUpstream,
    wrk: str,
    workdir: Path,
    seconds: float,
    load_core: int | None,
    concurrency: tuple[int, ...],
) -> str:
    through = f"{ogem.url}/v1/chat/completions"
    json_direct = f"{upstream.base(upstream.json_port)}/chat/completions"
    sse_direct = f"{upstream.base(upstream.sse_port)}/chat/completions"
    print("warming up ...", flush=True)
    for body in (REQUEST_JSON, REQUEST_STREAM):
        wrk_run(
            wrk=wrk,
            url=through,
            connections=10,
            seconds=2,
            workdir=workdir,
            body=body,
            headers=ogem.headers,
            core=load_core,
        )

    rows = [
        "| mode | conc. | direct req/s | Ogem req/s | direct p50 / p99 ms | "
        "Ogem p50 / p99 ms | added p50 / p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ttfb = [
        "| conc. | direct TTFB p50 / p99 ms | Ogem TTFB p50 / p99 ms | added p50 ms | errors |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    cases = [
        ("non-streaming", json_direct, REQUEST_JSON),
        (f"streaming ({CHUNKS} chunks)", sse_direct, REQUEST_STREAM),
    ]
    probe_seconds = min(seconds, 5)
    for mode, direct_url, body in cases:
        for conns in concurrency:
            print(f"{mode}, concurrency {conns} ...", flush=True)
            # wrk for throughput; the probe for latency (wrk's percentiles proved unreliable
            # when it shares a core with nginx, see docs/benchmark.md).
            base = wrk_run(
                wrk=wrk, url=direct_url, connections=conns, seconds=seconds,
                workdir=workdir, body=body, headers=DIRECT_HEADERS, core=load_core,
            )  # fmt: skip
            gate = wrk_run(
                wrk=wrk, url=through, connections=conns, seconds=seconds,
                workdir=workdir, body=body, headers=ogem.headers, core=load_core,
            )  # fmt: skip
            base_t = stream_probe(
                url=direct_url, body=body, headers=DIRECT_HEADERS,
                concurrency=conns, seconds=probe_seconds,
            )  # fmt: skip
            gate_t = stream_probe(
                url=through, body=body, headers=ogem.headers,
                concurrency=conns, seconds=probe_seconds,
            )  # fmt: skip
            errors = base.errors + gate.errors + base_t.errors + gate_t.errors
            rows.append(
                f"| {mode} | {conns} | {base.requests_per_second:,.0f} | "
                f"{gate.requests_per_second:,.0f} | "
                f"{base_t.total_p50_ms:.2f} / {base_t.total_p99_ms:.2f} | "
                f"{gate_t.total_p50_ms:.2f} / {gate_t.total_p99_ms:.2f} | "
                f"{gate_t.total_p50_ms - base_t.total_p50_ms:.2f} / "
                f"{gate_t.total_p99_ms - base_t.total_p99_ms:.2f} | {errors} |"
            )
            if body is REQUEST_STREAM:
                ttfb.append(
                    f"| {conns} | {base_t.ttfb_p50_ms:.2f} / {base_t.ttfb_p99_ms:.2f} | "
                    f"{gate_t.ttfb_p50_ms:.2f} / {gate_t.ttfb_p99_ms:.2f} | "
                    f"{gate_t.ttfb_p50_ms - base_t.ttfb_p50_ms:.2f} | "
                    f"{base_t.errors + gate_t.errors} |"
                )
    return "\n".join(
        [
            "## Requests: throughput (wrk) and latency (probe)",
            "",
            *rows,
            "",
            "## Streaming: time to first SSE event (probe)",
            "",
            *ttfb,
        ]
    )


def _responses_rows(
    ogem: Ogem, wrk: str, workdir: Path, seconds: float, load_core: int | None
) -> str:
    """A Responses request on a model Ogem serves over chat (`bench-hosted`, a hosted_vllm
    deployment on the same nginx) against the equivalent chat completion, one at a time:
    `store: false` (the same work plus the translation) and the default `store: true` (plus
    the response's database write before the answer)."""
    cases = [
        ("chat completion", f"{ogem.url}/v1/chat/completions", REQUEST_HOSTED_CHAT),
        ("response, store: false", f"{ogem.url}/v1/responses", REQUEST_HOSTED_RESPONSE),
        ("response, stored", f"{ogem.url}/v1/responses", REQUEST_HOSTED_RESPONSE_STORED),
    ]
    print("warming up ...", flush=True)
    for _, url, body in cases:
        wrk_run(
            wrk=wrk, url=url, connections=1, seconds=2, workdir=workdir,
            body=body, headers=ogem.headers, core=load_core,
        )  # fmt: skip
    rows = [
        "| request (concurrency 1) | p50 / p99 ms | added p50 ms | errors |",
        "| --- | ---: | ---: | ---: |",
    ]
    base_p50 = 0.0
    for name, url, body in cases:
        print(f"{name} ...", flush=True)
        probe = stream_probe(
            url=url, body=body, headers=ogem.headers, concurrency=1, seconds=min(seconds, 5)
        )
        if not base_p50:
            base_p50 = probe.total_p50_ms
        rows.append(
            f"| {name} | {probe.total_p50_ms:.2f} / {probe.total_p99_ms:.2f} | "
            f"{probe.total_p50_ms - base_p50:.2f} | {probe.errors} |"
        )
    return "\n".join(["## The Responses API over chat (probe)", "", *rows])


def _cache_rows(
    ogem: Ogem,
    wrk: str,
    workdir: Path,
    seconds: float,
    load_core: int | None,
    concurrency: tuple[int, ...],
    cache: str,
) -> str:
    """With the response cache on: non-streaming requests that all hit (one body, answered from
    the cache after the first) and that all miss (a new body each, wrk's Lua numbering the
    prompt). The matrix above is the same requests hitting; compare with a `--cache off` run."""
    through = f"{ogem.url}/v1/chat/completions"
    rows = [
        "| requests | conc. | Ogem req/s | Ogem p50 / p99 ms (wrk) | errors |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, unique in (("every one a hit", False), ("every one a miss", True)):
        for conns in concurrency:
            print(f"cache {cache}, {name}, concurrency {conns} ...", flush=True)
            result = wrk_run(
                wrk=wrk, url=through, connections=conns, seconds=seconds, workdir=workdir,
                body=REQUEST_JSON, headers=ogem.headers, core=load_core, unique=unique,
            )  # fmt: skip
            rows.append(
                f"| {name} | {conns} | {result.requests_per_second:,.0f} | "
                f"{result.p50_ms:.2f} / {result.p99_ms:.2f} | {result.errors} |"
            )
    return "\n".join([f"## The response cache ({cache}): non-streaming, wrk", "", *rows])


# The targets for a hit (docs/benchmark.md): added p50 over direct nginx at concurrency
# 1, and hits/s on Ogem's one core, from L1 and from Redis.
HIT_ADDED_P50_MS = 0.3
HIT_RPS = {"local": 3000, "redis-l2": 2000}


def _cache_targets(
    upstream: MockUpstream,
    tools: dict[str, str],
    workdir: Path,
    seconds: float,
    ogem_core: int,
    load_core: int | None,
    redis_url: str,
) -> str:
    """Every request a hit (one body), from L1 (`local`) and then from Redis alone (`redis-l2`),
    each Ogem started afresh: the p50 at concurrency 1 against direct nginx's, and wrk's
    requests/s at concurrency 1, 10 and 50 (the best of them is the core's capacity). First the
    floor: granian serving a tiny ASGI app on the same core, what the server alone adds before
    any of Ogem's Python, against which the 0.3 ms p50 target is to be read.

    Direct nginx twice: the upstream, on the load core with the clients, and the same nginx
    served from Ogem's core. A hit goes client, Ogem's core, client: the second crosses the
    cores as it does, so that what is added over it is the server's own work, not the wake-ups
    of an idle core (tens of microseconds on these virtual machines, each way). The target is
    judged against it, by the probe and by wrk alike."""
    wrk = tools["wrk"]
    across = start_nginx(nginx=tools["nginx"], workdir=workdir / "nginx-ogem-core", core=ogem_core)
    rows = [
        "| tier | added p50 ms, conc. 1: probe / wrk, over nginx on Ogem's core (target p50) "
        "| the same over nginx on the load core | added p99 ms, probe, Ogem's core "
        "| hits/s conc. 1 / 10 / 50 (target, best) | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    probe_seconds = min(seconds, 5)

    def probe(url: str, headers: dict[str, str]) -> StreamResult:
        return stream_probe(
            url=url, body=REQUEST_JSON, headers=headers, concurrency=1, seconds=probe_seconds
        )

    def wrk_at(url: str, headers: dict[str, str], conns: int, span: float) -> WrkResult:
        return wrk_run(
            wrk=wrk, url=url, connections=conns, seconds=span, workdir=workdir,
            body=REQUEST_JSON, headers=headers, core=load_core,
        )  # fmt: skip

    directs = {
        where: f"{server.base(server.json_port)}/chat/completions"
        for where, server in (("load", upstream), ("ogem", across))
    }
    try:
        # wrk's own p50 at concurrency 1 too: a C client, where the probe is Python sharing the
        # load core with nginx.
        direct_wrk = {
            where: wrk_at(url, DIRECT_HEADERS, 1, seconds) for where, url in directs.items()
        }
        for tier in ("floor", "local", "redis-l2"):
            rows.append(
                _cache_target_row(tier, tools, workdir, seconds, ogem_core, redis_url, upstream,
                                  directs, direct_wrk, probe, wrk_at)
            )  # fmt: skip
    finally:
        across.stop()
    return "\n".join(
        ["## The response cache's hit targets (every request a hit, non-streaming)", "", *rows]
    )


def _cache_target_row(
    tier: str,
    tools: dict[str, str],
    workdir: Path,
    seconds: float,
    ogem_core: int,
    redis_url: str,
    upstream: MockUpstream,
    directs: dict[str, str],
    direct_wrk: dict[str, WrkResult],
    probe: Callable[[str, dict[str, str]], StreamResult],
    wrk_at: Callable[[str, dict[str, str], int, float], WrkResult],
) -> str:
    (workdir / tier).mkdir(parents=True, exist_ok=True)
    if tier == "floor":
        server, through = floor_start(core=ogem_core, workdir=workdir / tier)
        headers, stop_server = DIRECT_HEADERS, partial(stop, server)
    else:
        ogem = start_ogem(
            workdir=workdir / tier, upstream=upstream, core=ogem_core, redis_url=redis_url,
            cache=tier,
        )  # fmt: skip
        through, headers = f"{ogem.url}/v1/chat/completions", ogem.headers
        stop_server = ogem.stop
    try:
        print(f"cache {tier}: warming up ...", flush=True)
        wrk_at(through, headers, 10, 2)
        print(f"cache {tier}: latency at concurrency 1 ...", flush=True)
        base = {where: probe(url, DIRECT_HEADERS) for where, url in directs.items()}
        gate = probe(through, headers)
        errors = gate.errors + sum(result.errors for result in base.values())
        rates = []
        c1_p50 = math.nan
        for conns in (1, 10, 50):
            print(f"cache {tier}: hits/s at concurrency {conns} ...", flush=True)
            result = wrk_at(through, headers, conns, seconds)
            rates.append(result.requests_per_second)
            if conns == 1:
                c1_p50 = result.p50_ms
            errors += result.errors
    finally:
        stop_server()
    added = {where: gate.total_p50_ms - base[where].total_p50_ms for where in directs}
    wrk_added = {where: c1_p50 - direct_wrk[where].p50_ms for where in directs}
    p99 = gate.total_p99_ms - base["ogem"].total_p99_ms
    rate_cells = " / ".join(f"{rate:,.0f}" for rate in rates)
    across = f"{added['ogem']:.3f} / {wrk_added['ogem']:.3f}"
    beside = f"{added['load']:.2f} / {wrk_added['load']:.2f}"
    if tier == "floor":
        return (
            f"| floor: granian alone, a tiny ASGI app (no target) | {across} | {beside} | "
            f"{p99:.2f} | {rate_cells} | {errors} |"
        )
    held = max(added["ogem"], wrk_added["ogem"]) <= HIT_ADDED_P50_MS
    best = max(rates)
    target = HIT_RPS[tier]
    return (
        f"| {'L1 (local)' if tier == 'local' else 'L2 Redis (redis-l2)'} | {across} "
        f"(≤ {HIT_ADDED_P50_MS}: {'met' if held else 'NOT met'}) | {beside} | {p99:.2f} | "
        f"{rate_cells} (≥ {target:,}: {'met' if best >= target else 'NOT met'}) | {errors} |"
    )


def _soak(ogem: Ogem, wrk: str, workdir: Path, total: int, load_core: int | None) -> str:
    pids = ogem.server_pids()

    def rss() -> int:
        return sum(rss_kib(pid) for pid in pids)

    through = f"{ogem.url}/v1/chat/completions"
    # Warm caches and pools first, so that growth is growth and not start-up.
    wrk_run(
        wrk=wrk,
        url=through,
        connections=10,
        seconds=3,
        workdir=workdir,
        body=REQUEST_JSON,
        headers=ogem.headers,
        core=load_core,
    )
    before = rss()
    done = errors = 0
    started = time.monotonic()
    while done < total:
        result = wrk_run(
            wrk=wrk,
            url=through,
            connections=10,
            seconds=5,
            workdir=workdir,
            body=REQUEST_JSON,
            headers=ogem.headers,
            core=load_core,
        )
        done += result.requests
        errors += result.errors
        print(f"  {done:,} requests, RSS {rss() / 1024:.1f} MiB", flush=True)
    after = rss()
    return "\n".join(
        [
            "## Soak: memory",
            "",
            "| requests | seconds | RSS before MiB | RSS after MiB | growth MiB | errors |",
            "| ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {done:,} | {time.monotonic() - started:.0f} | {before / 1024:.1f} | "
            f"{after / 1024:.1f} | {(after - before) / 1024:.1f} | {errors} |",
        ]
    )


def _slow_streams(ogem: Ogem, upstream: MockUpstream, count: int, rate: float, ramp: float) -> str:
    slow = REQUEST_STREAM.replace(b'"bench-stream"', b'"bench-slow"')
    direct_url = f"{upstream.base(upstream.slow_port)}/chat/completions"
    print(f"{count} slow streams, direct ...", flush=True)
    base = slow_stream_probe(
        url=direct_url, body=slow, headers=DIRECT_HEADERS, count=count, ramp_seconds=ramp
    )
    print(f"{count} slow streams, through Ogem ...", flush=True)
    pids = ogem.server_pids()
    samples: list[tuple[float, float]] = []
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.1):
            samples.append((time.perf_counter(), sum(cpu_seconds(pid) for pid in pids)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        gate = slow_stream_probe(
            url=f"{ogem.url}/v1/chat/completions",
            body=slow,
            headers=ogem.headers,
            count=count,
            ramp_seconds=ramp,
        )
    finally:
        sampling.set()
        sampler.join()
    steady = _steady_cost(samples, gate.spans, rate)
    opening = _opening_cost(samples, gate, rate)

    def row(path: str, result: SlowStreamResult) -> str:
        errors = ", ".join(f"{reason}: {n}" for reason, n in sorted(result.errors.items()))
        return (
            f"| {path} | {result.completed} | {errors or 0} | {result.ttfb_p50_ms:.1f} / "
            f"{result.ttfb_p99_ms:.1f} | {result.ramp.p99_ms:.1f} / {result.ramp.max_ms:.1f} | "
            f"{result.open.p99_ms:.1f} / {result.open.max_ms:.1f} |"
        )

    return "\n".join(
        [
            f"## {count} concurrent slow streams ({rate:g} events/s each, "
            f"{(CHUNKS + 2) / rate:.1f} s per stream, opened over {ramp:g} s)",
            "",
            "| path | completed | errors | TTFB p50 / p99 ms | gap during ramp p99 / max ms | "
            "gap once all open p99 / max ms |",
            "| --- | ---: | --- | ---: | ---: | ---: |",
            row("direct", base),
            row("Ogem", gate),
            "",
            f"Added stall (longest gap, Ogem minus direct): during the ramp "
            f"{gate.ramp.max_ms - base.ramp.max_ms:.1f} ms, once all streams are open "
            f"{gate.open.max_ms - base.open.max_ms:.1f} ms (target: under 100 ms).",
            "",
            steady,
            "",
            opening,
        ]
    )


def _opening_cost(samples: list[tuple[float, float]], result: SlowStreamResult, rate: float) -> str:
    """Ogem's CPU per stream opened: the ramp's CPU minus the events relayed meanwhile."""
    window = [(at, cpu) for at, cpu in samples if result.ramp_started <= at <= result.all_open]
    if len(window) < 2 or not result.spans:
        return "Ogem's CPU per stream opened: not measured (ramp too short to sample)."
    start, end = window[0][0], window[-1][0]
    cpu = window[-1][1] - window[0][1]
    opened = sum(1 for first, _ in result.spans if start <= first <= end)
    events = sum(max(min(last, end) - max(first, start), 0) * rate for first, last in result.spans)
    steady = _steady_per_event(samples, result.spans, rate)
    if not opened or steady is None:
        return "Ogem's CPU per stream opened: not measured."
    per_open = (cpu - events * steady) / opened * 1e6
    return (
        f"Ramp ({end - start:.1f} s, {opened:,} streams opened, {opened / (end - start):,.0f}/s): "
        f"Ogem used {cpu / (end - start):.0%} of a core, about {per_open:,.0f} µs of CPU per "
        f"stream opened (the ramp's CPU less the events relayed meanwhile)."
    )


def _steady_per_event(
    samples: list[tuple[float, float]], spans: list[tuple[float, float]], rate: float
) -> float | None:
    if not spans:
        return None
    start, end = max(s[0] for s in spans), min(s[1] for s in spans)
    window = [(at, cpu) for at, cpu in samples if start <= at <= end]
    if len(window) < 2 or window[-1][0] - window[0][0] < 0.5:
        return None
    seconds = window[-1][0] - window[0][0]
    return (window[-1][1] - window[0][1]) / (len(spans) * rate * seconds)


def _steady_cost(
    samples: list[tuple[float, float]], spans: list[tuple[float, float]], rate: float
) -> str:
    """Ogem's CPU per relayed event while every stream is open (no request set-up in it)."""
    if not spans or len(samples) < 2:
        return "Ogem's CPU per event: not measured (no completed stream)."
    start, end = max(s[0] for s in spans), min(s[1] for s in spans)
    window = [(at, cpu) for at, cpu in samples if start <= at <= end]
    if len(window) < 2 or window[-1][0] - window[0][0] < 0.5:
        what = "no steady window: every stream was not open at once for 0.5 s"
        return f"Ogem's CPU per event: not measured ({what}; try a lower --slow-rate)."
    seconds = window[-1][0] - window[0][0]
    cpu = window[-1][1] - window[0][1]
    events = len(spans) * rate * seconds
    per_event = cpu / events * 1e6
    return (
        f"Steady state ({seconds:.1f} s with all {len(spans):,} streams open): Ogem used "
        f"{cpu / seconds:.0%} of a core for ~{events / seconds:,.0f} events/s, "
        f"{per_event:.0f} µs of CPU per relayed event; one core relays at most "
        f"~{1e6 / per_event:,.0f} events/s (~{1e6 / per_event / rate:,.0f} streams at "
        f"{rate:g} events/s)."
    )


if __name__ == "__main__":
    sys.exit(main())
