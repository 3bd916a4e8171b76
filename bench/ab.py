"""`python -m bench ab --variant NAME` (`VARIANTS`): a baseline Ogem (A) and a variant (B) in
the same run, measured in alternation, for the targets that are ratios between two
configurations (docs/benchmark.md, "Paired runs").

Two servers, each set up as `python -m bench` sets up one (the same config and key, a private
Redis of its own, one worker pinned to Ogem's core, the nginx mock upstream), B with the variant's
options. Then for N rounds, at each concurrency, A and B in turn (which goes first alternates
round by round): wrk after a short warm-up, and at concurrency 1 the latency probe, direct nginx
first; a gap after each server's turn, so that B's helper processes (an exporter, the callbacks'
delivery) have flushed before A is measured. The machine's drift over minutes falls on both
alike; the report is per round, with the median ratio B/A and the median added p50 of each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import statistics
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

import httpx

from bench.bodies import REQUEST_JSON
from bench.load import StreamResult, WrkResult, concurrencies, stream_probe, wrk_run
from bench.nginx import DIRECT_HEADERS, start_nginx
from bench.ogem import Ogem, is_helper, start_ogem
from bench.otlp_sink import OTLPSink
from bench.procs import Placed, cpu_idle_described, cpu_ns, dead_url
from bench.redis_server import start_redis

WANTED = {"nginx": "nginx", "wrk": "wrk", "redis-server": "redis-server"}
WARMUP_SECONDS = 1  # wrk at the measurement's concurrency, before each measurement
QUIET_SECONDS = 0.5  # after the gap, until the sink has had no post for this long
QUIET_MAX_SECONDS = 10


@dataclass(frozen=True)
class Variant:
    name: str
    issue: str
    what: str  # B's options, in the words of `python -m bench`
    tracing: bool = False
    callbacks: bool = False
    cache: str = "off"
    unique: bool = False  # every request of A and B a new body (the prompt numbered)
    min_ratio: float = 1.0  # median B/A req/s at each concurrency, at least
    added_p50_ms: float | None = None  # B's added p50 minus A's, at most (ms)
    added_p50_share: float | None = None  # ... at most this share of A's p50 through Ogem
    baseline_callbacks: bool = False  # A has B's callbacks too, to the live sink
    sink_down: bool = False  # B's callbacks go to a port nothing listens on
    # Headers B's requests carry besides the key's (a cache control: `cache-write-only`)
    b_headers: tuple[tuple[str, str], ...] = ()


VARIANTS = {
    "tracing": Variant(
        name="tracing",
        issue="issue 19",
        what="`--tracing --callbacks`: OpenTelemetry tracing exporting over OTLP/HTTP and two "
        "generic_api webhook callbacks, both to a sink in a process of its own (load core)",
        tracing=True,
        callbacks=True,
        min_ratio=0.90,
        added_p50_ms=0.15,
    ),
    "callbacks-down": Variant(
        name="callbacks-down",
        issue="issue 19",
        what="`--callbacks-down`: the two generic_api webhook callbacks with their sink down (a "
        "port nothing listens on); A has the same callbacks delivering to a live sink in a "
        "process of its own (load core)",
        callbacks=True,
        baseline_callbacks=True,
        sink_down=True,
        # "no change to /v1 latency": within the spread of two equal servers here
        min_ratio=0.95,
        added_p50_ms=0.05,
    ),
    "cache-miss": Variant(
        name="cache-miss",
        issue="issue 18",
        what="`--cache redis`: the response cache on (Redis with its in-process tier); A and B "
        "both sent a new body each request (the prompt numbered), every one a miss on B",
        cache="redis",
        unique=True,
        min_ratio=0.97,
        added_p50_share=0.03,
    ),
    "cache-write-only": Variant(
        name="cache-write-only",
        issue="issue 18, a control",
        what="`--cache redis` with `Cache-Control: no-cache` on every request: the response cache "
        "stores every answer and reads none (no lookup before the upstream call); A and B both "
        "sent a new body each request. Beside `cache-miss`, it parts a miss's write from its "
        "lookup",
        cache="redis",
        unique=True,
        min_ratio=0.97,
        added_p50_share=0.03,
        b_headers=(("Cache-Control", "no-cache"),),
    ),
    "aa": Variant(
        name="aa",
        issue="a control",
        what="the same as A (cache off, a new body each request): two equal servers, judged as "
        "`cache-miss` is. Where this misses the target, the machine cannot judge a 3 % difference",
        unique=True,
        min_ratio=0.97,
        added_p50_share=0.03,
    ),
    "cache-miss-local": Variant(
        name="cache-miss-local",
        issue="issue 18",
        what="`--cache local`: the response cache on, in process only (no Redis tier); A and B "
        "both sent a new body each request (the prompt numbered), every one a miss on B",
        cache="local",
        unique=True,
        min_ratio=0.97,
        added_p50_share=0.03,
    ),
}


@dataclass
class Pair:
    """One round at one concurrency: wrk's requests/s of A and of B."""

    round: int
    concurrency: int
    first: str  # "A" or "B"
    a_rps: float
    b_rps: float
    errors: int
    # CPU µs per request of each server's processes (worker and helpers, the scheduler's count)
    # over the same wrk run; NaN when not read
    a_cpu_us: float = math.nan
    b_cpu_us: float = math.nan
    b_helpers_us: float = math.nan  # of b_cpu_us, B's helper processes'


@dataclass
class Latency:
    """One round at concurrency 1: the probe's p50 direct to nginx, through A, through B."""

    round: int
    direct_ms: float
    a_ms: float
    b_ms: float

    @property
    def a_added(self) -> float:
        return self.a_ms - self.direct_ms

    @property
    def b_added(self) -> float:
        return self.b_ms - self.direct_ms


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench ab", description=__doc__)
    parser.add_argument("--variant", choices=sorted(VARIANTS), required=True, help="B's options")
    parser.add_argument("--rounds", type=int, default=10, help="(default 10)")
    parser.add_argument(
        "--concurrency",
        type=concurrencies,
        default=(1, 50),
        metavar="N,N",
        help="(default 1,50; the probe's p50 at 1 only)",
    )
    parser.add_argument(
        "--seconds", type=float, default=3, help="per wrk measurement and probe (default 3)"
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=1.5,
        help="seconds after each server's turn (default 1.5; then until the sink is quiet)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def header(args: argparse.Namespace) -> str:
    variant = VARIANTS[args.variant]
    postgres = os.environ.get("DATABASE_URL", "").startswith("postgres")
    return (
        f"# Ogem paired benchmark (`ab --variant {variant.name}`), "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n\n"
        f"{os.cpu_count()} CPUs. Two Ogem servers, each 1 worker, both pinned to the same core "
        f"(each idle while the other is measured): A the baseline, B {variant.what}. nginx, a "
        f"private Redis for each and the load on another core. Database "
        f"{'PostgreSQL (one, both servers)' if postgres else 'SQLite (one each)'}. "
        f"{args.rounds} rounds, A and B in turn (the first alternating), {args.seconds:g} s per "
        f"measurement after a {WARMUP_SECONDS} s warm-up, {args.gap:g} s gap after each. "
        f"Non-streaming. {cpu_idle_described()}"
    ).rstrip()


def paired(args: argparse.Namespace, place: Placed) -> str:
    variant = VARIANTS[args.variant]
    tools, workdir, load_core = place.tools, place.workdir, place.load_core
    with ExitStack() as stack:
        upstream = start_nginx(nginx=tools["nginx"], workdir=workdir / "nginx", core=load_core)
        stack.callback(upstream.stop)
        sink = None
        if variant.tracing or variant.callbacks:
            sink = OTLPSink(core=load_core)  # its own process: any POST counted, answered 200
            stack.callback(sink.stop)
        servers: dict[str, Ogem] = {}
        for name in ("A", "B"):
            print(f"starting Ogem {name} ...", flush=True)
            (workdir / name).mkdir()
            redis = start_redis(
                redis_server=tools["redis-server"], workdir=workdir / name / "redis", core=load_core
            )
            stack.callback(redis.stop)
            variant_on = name == "B"
            servers[name] = start_ogem(
                workdir=workdir / name,
                upstream=upstream,
                core=place.ogem_core,
                redis_url=redis.url,
                cache=variant.cache if variant_on else "off",
                environment=sink.environment() if sink and variant_on and variant.tracing else None,
                callbacks_url=_callbacks_url(variant, sink, variant_on=variant_on),
            )
            stack.callback(servers[name].stop)
        run = _Rounds(args, variant, servers, place, sink)
        direct = f"{upstream.base(upstream.json_port)}/chat/completions"
        pairs, latencies = run.all(direct)
        notes = _cache_seen(servers, variant) if variant.cache != "off" else ""
        if sink is not None:
            servers["B"].stop()  # its exporter flushes what it holds at exit
            notes = sink.summary()
            if not sink.exports:
                notes += " Nothing reached it: B's variant was not on, the figures are void."
    return report(variant, pairs, latencies, seconds=args.seconds, notes=notes)


def _callbacks_url(variant: Variant, sink: OTLPSink | None, *, variant_on: bool) -> str:
    """Where a server's callbacks deliver: B's to the sink, or to a dead port when the variant
    has its sink down; A's to the sink only when the variant gives A the callbacks too."""
    if sink is None or not (variant.callbacks if variant_on else variant.baseline_callbacks):
        return ""
    if variant_on and variant.sink_down:
        return dead_url()
    return sink.url


def headers_of(ogem: Ogem, variant: Variant, *, variant_on: bool) -> dict[str, str]:
    """What a server's requests carry: the key's headers, and B's own (`Variant.b_headers`)."""
    return {**ogem.headers, **dict(variant.b_headers)} if variant_on else ogem.headers


def cache_seen_expected(variant: Variant) -> list[str]:
    """B's `x-ogem-cache` answers to `_cache_seen`'s requests when its cache is on."""
    if variant.b_headers:  # write only: not looked up twice, then read without the control
        return ["bypass", "bypass", "hit"]
    return ["miss", "hit"]


_ONCE_MORE = ", and to B once more without its control"


def _cache_seen(servers: dict[str, Ogem], variant: Variant) -> str:
    """After the rounds, a body never sent before, twice to each server as its rounds sent
    theirs (and, where B's requests carry a control, once more to B without it): B's cache must
    answer as `cache_seen_expected` says, A must have none."""
    body = REQUEST_JSON.replace(b"Say hello.", f"Say hello. #{time.time_ns()}".encode())
    seen = {}
    for name, ogem in servers.items():
        url = f"{ogem.url}/v1/chat/completions"
        sent = headers_of(ogem, variant, variant_on=name == "B")
        answers = [httpx.post(url, content=body, headers=sent, timeout=30) for _ in "12"]
        if sent != ogem.headers:
            answers.append(httpx.post(url, content=body, headers=ogem.headers, timeout=30))
        seen[name] = [answer.headers.get("x-ogem-cache", "none") for answer in answers]
    said = (
        f"A new body sent twice after the rounds{_ONCE_MORE if variant.b_headers else ''}: "
        "`x-ogem-cache` "
        + "; ".join(f"{name} {', '.join(values)}" for name, values in seen.items())
        + "."
    )
    if seen["B"] != cache_seen_expected(variant) or set(seen["A"]) - {"none"}:
        said += " B's cache was not on, or A's was: the figures are void."
    return said


class _Rounds:
    def __init__(
        self,
        args: argparse.Namespace,
        variant: Variant,
        servers: dict[str, Ogem],
        place: Placed,
        sink: OTLPSink | None,
    ) -> None:
        self.args, self.variant, self.servers, self.sink = args, variant, servers, sink
        self.wrk, self.workdir, self.load_core = place.tools["wrk"], place.workdir, place.load_core

    def headers(self, name: str) -> dict[str, str]:
        return headers_of(self.servers[name], self.variant, variant_on=name == "B")

    def load(self, name: str, connections: int, seconds: float) -> WrkResult:
        ogem = self.servers[name]
        return wrk_run(
            wrk=self.wrk, url=f"{ogem.url}/v1/chat/completions", connections=connections,
            seconds=seconds, workdir=self.workdir, body=REQUEST_JSON, headers=self.headers(name),
            core=self.load_core, unique=self.variant.unique,
        )  # fmt: skip

    def server_cpu_ns(self, name: str) -> tuple[int, int]:
        """The CPU time so far of every process of the server (its helpers included: they take
        their time from the same core), and of its helpers alone, in ns. The helpers' work left
        from the warm-up falls in the window as their work of the window's end falls out of it:
        it evens out."""
        spent = {pid: cpu_ns(pid) for pid in self.servers[name].server_pids()}
        return sum(spent.values()), sum(ns for pid, ns in spent.items() if is_helper(pid))

    def probe(self, url: str, headers: dict[str, str]) -> StreamResult:
        return stream_probe(
            url=url, body=REQUEST_JSON, headers=headers, concurrency=1,
            seconds=min(self.args.seconds, 5), unique=self.variant.unique,
        )  # fmt: skip

    def settle(self) -> None:
        """The gap, then until the sink has had no post for QUIET_SECONDS (B's exporter and
        callbacks flush within about a second of their last request)."""
        time.sleep(self.args.gap)
        if self.sink is None:
            return
        deadline = time.monotonic() + QUIET_MAX_SECONDS
        while time.monotonic() < deadline:
            quiet = time.monotonic() - self.sink.last_post
            if quiet >= QUIET_SECONDS:
                return
            time.sleep(QUIET_SECONDS - quiet)

    def all(self, direct: str) -> tuple[list[Pair], list[Latency]]:
        print("warming up ...", flush=True)
        for name in ("A", "B"):
            self.load(name, 10, 2)
            self.settle()
        pairs: list[Pair] = []
        latencies: list[Latency] = []
        rounds = self.args.rounds
        for number in range(1, rounds + 1):
            order = ("A", "B") if number % 2 else ("B", "A")
            for conns in self.args.concurrency:
                rps: dict[str, float] = {}
                cpu: dict[str, float] = {}  # µs per request, all the server's processes
                helpers_us: dict[str, float] = {}  # of which its helpers'
                p50: dict[str, float] = {}
                errors = 0
                if conns == 1:
                    base = self.probe(direct, DIRECT_HEADERS)
                    errors += base.errors
                for name in order:
                    print(f"round {number}/{rounds}, concurrency {conns}: {name} ...", flush=True)
                    self.load(name, conns, WARMUP_SECONDS)
                    before = self.server_cpu_ns(name)
                    result = self.load(name, conns, self.args.seconds)
                    after = self.server_cpu_ns(name)
                    rps[name] = result.requests_per_second
                    count = result.requests or math.nan
                    cpu[name] = (after[0] - before[0]) / count / 1e3
                    helpers_us[name] = (after[1] - before[1]) / count / 1e3
                    errors += result.errors
                    if conns == 1:
                        ogem = self.servers[name]
                        timed = self.probe(f"{ogem.url}/v1/chat/completions", self.headers(name))
                        p50[name] = timed.total_p50_ms
                        errors += timed.errors
                    self.settle()
                pairs.append(
                    Pair(
                        number,
                        conns,
                        order[0],
                        rps["A"],
                        rps["B"],
                        errors,
                        cpu["A"],
                        cpu["B"],
                        helpers_us["B"],
                    )
                )
                if conns == 1:
                    latencies.append(Latency(number, base.total_p50_ms, p50["A"], p50["B"]))
        return pairs, latencies


def ratio(a: float, b: float) -> float:
    """B/A, NaN when A did nothing."""
    return b / a if a else math.nan


def _cell(value: float, spec: str) -> str:
    """A figure, or a dash when it was not read (NaN)."""
    return "-" if math.isnan(value) else format(value, spec)


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def p50_limit(variant: Variant, a_ms: float) -> float:
    """The most B's added p50 may exceed A's (ms), A's p50 through Ogem being `a_ms`."""
    if variant.added_p50_ms is not None:
        return variant.added_p50_ms
    assert variant.added_p50_share is not None
    return variant.added_p50_share * a_ms


def report(
    variant: Variant,
    pairs: list[Pair],
    latencies: list[Latency],
    *,
    seconds: float,
    notes: str = "",
) -> str:
    """The Markdown report: per concurrency, each round's requests/s and B/A and the median,
    min and max of the ratio; at concurrency 1, each round's p50s and the median added p50 of A
    and of B over direct nginx; then whether the variant's target holds."""
    lines: list[str] = []
    checks: list[tuple[str, bool]] = []
    errors = sum(pair.errors for pair in pairs)
    for conns in dict.fromkeys(pair.concurrency for pair in pairs):
        rows = [pair for pair in pairs if pair.concurrency == conns]
        ratios = [ratio(pair.a_rps, pair.b_rps) for pair in rows]
        mid, low, high = spread(ratios)
        lines += [
            f"## Concurrency {conns}: non-streaming requests/s (wrk, {seconds:g} s each)",
            "",
            "| round | first | A req/s | B req/s | B/A | A CPU µs | B CPU µs | of which helpers "
            "| A/B CPU | errors |",
            "| ---: | :---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {pair.round} | {pair.first} | {pair.a_rps:,.0f} | {pair.b_rps:,.0f} | "
                f"{value:.3f} | {_cell(pair.a_cpu_us, '.0f')} | {_cell(pair.b_cpu_us, '.0f')} | "
                f"{_cell(pair.b_helpers_us, '.0f')} | "
                f"{_cell(ratio(pair.b_cpu_us, pair.a_cpu_us), '.3f')} | {pair.errors} |"
                for pair, value in zip(rows, ratios, strict=True)
            ),
            "",
            f"B/A: median {mid:.3f} (min {low:.3f}, max {high:.3f}) over {len(rows)} rounds.",
            "",
        ]
        capacity = [ratio(pair.b_cpu_us, pair.a_cpu_us) for pair in rows]
        capacity = [value for value in capacity if not math.isnan(value)]
        if capacity:
            cap_mid, cap_low, cap_high = spread(capacity)
            lines += [
                f"CPU per request, A's over B's (the share of A's requests/s that B's cost lets "
                f"one core serve; each server's processes, helpers included, over the same wrk "
                f"run): median {cap_mid:.3f} (min {cap_low:.3f}, max {cap_high:.3f}).",
                "",
            ]
        judged = f"median B/A at concurrency {conns} {mid:.3f} ≥ {variant.min_ratio:.2f}"
        checks.append((judged, mid >= variant.min_ratio))
    if latencies:
        a_added = statistics.median(row.a_added for row in latencies)
        b_added = statistics.median(row.b_added for row in latencies)
        a_ms = statistics.median(row.a_ms for row in latencies)
        paired_delta = statistics.median(row.b_ms - row.a_ms for row in latencies)
        delta = b_added - a_added
        limit = p50_limit(variant, a_ms)
        lines += [
            "## Concurrency 1: p50 latency (probe), ms",
            "",
            "| round | direct | A | B | A added | B added | B - A |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            *(
                f"| {row.round} | {row.direct_ms:.3f} | {row.a_ms:.3f} | {row.b_ms:.3f} | "
                f"{row.a_added:.3f} | {row.b_added:.3f} | {row.b_ms - row.a_ms:+.3f} |"
                for row in latencies
            ),
            "",
            f"Median added p50 over direct nginx: A {a_added:.3f} ms, B {b_added:.3f} ms; "
            f"Δp50 (B's minus A's) {delta:+.3f} ms (the median of each round's B - A: "
            f"{paired_delta:+.3f} ms). A's median p50 through Ogem {a_ms:.3f} ms.",
            "",
        ]
        if variant.added_p50_ms is not None:
            bound = f"{variant.added_p50_ms:.2f} ms"
        else:
            bound = f"{variant.added_p50_share:.0%} of A's p50 through Ogem, {limit:.3f} ms"
        checks.append((f"Δp50 {delta:+.3f} ms ≤ +{bound}", delta <= limit))
    else:
        lines += ["No latency: concurrency 1 was not measured, Δp50 not judged.", ""]
    held = all(ok for _, ok in checks)
    lines += [
        f"## Target ({variant.issue}): {'met' if held else 'NOT met'}",
        "",
        *(f"- {'met' if ok else 'NOT met'}: {what}" for what, ok in checks),
    ]
    if errors:
        lines += ["", f"{errors} errors (wrk and probe, all rounds): the figures are suspect."]
    if notes:
        lines += ["", notes]
    return "\n".join(lines)
