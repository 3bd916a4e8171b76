"""`python -m bench semantic`: the semantic cache's lookup path (gateway/semantic.py), in process.

What a lookup does after its prompt is embedded (the embedding call is excluded: it is the
embedding model's): find the partition, search its vector index (k=4, as a lookup does), read
the nearest entry's answer and decode it. All entries sit in ONE partition of one namespace, the
largest a lookup ever searches. Clustered random unit vectors stand in for embeddings; each
query is a stored vector plus noise (cosine about 0.95), so every lookup is a hit.

Two answers' sources are measured: the worker's LRU (the steady state: a recent entry), and the
database (a cold entry: one indexed SELECT on a SQLite file of the run's own, in a worker thread).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.procs import ROOT, rss_kib

SEED = 20261206
CLUSTERS = 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench semantic", description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000, help="(default 100000)")
    parser.add_argument("--dimensions", type=int, default=256, help="(default 256: local-embed's)")
    parser.add_argument("--queries", type=int, default=2000, help="per source (default 2000)")
    parser.add_argument(
        "--lru-mib", type=float, default=32, help="the answers' LRU (default 32, as a worker's)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ogem-bench-semantic-") as workdir:
        _setup(Path(workdir))
        text = asyncio.run(_measure(args))
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"semantic-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.md"
    path.write_text(text + "\n")
    return 0


def _setup(workdir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "ogem_site.settings.base"
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["OGEM_VAR_DIR"] = str(workdir / "var")
    os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    from django.db import connection

    from gateway.models import SemanticCacheEntry

    with connection.schema_editor() as editor:
        editor.create_model(SemanticCacheEntry)


async def _measure(args: argparse.Namespace) -> str:
    import numpy as np
    import orjson
    from asgiref.sync import sync_to_async

    from gateway import semantic
    from gateway.cache import CachePlan, _Policy
    from gateway.config.types import CacheSettings, SemanticCacheSettings
    from gateway.context import Caller, RequestContext
    from gateway.models import SemanticCacheEntry
    from providers.base import Endpoint

    rng = np.random.default_rng(SEED)
    dims, count = args.dimensions, args.entries
    centers = rng.standard_normal((CLUSTERS, dims)).astype(np.float32)
    vectors = centers[rng.integers(0, CLUSTERS, count)] + 0.35 * rng.standard_normal(
        (count, dims)
    ).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    answer = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "An answer of some length. " * 20},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 120, "total_tokens": 132},
    }
    now = time.time()
    settings = SemanticCacheSettings(model="bench-embed", max_entries=count)
    semantic._state.max_entries = count
    semantic._state.max_index_bytes = settings.max_index_bytes
    key = ("o1", "-", "p" * 40)
    labels = np.arange(1, count + 1, dtype=np.int64)
    raw = [
        orjson.dumps({"t": now, "x": now + 3600, "l": 100, "r": {**answer, "id": f"c{i}"}})
        for i in range(count)
    ]

    gc.collect()
    rss_before = rss_kib(os.getpid())
    started = time.perf_counter()
    batch = 5000
    for start in range(0, count, batch):
        semantic._entries_add(
            [
                (int(labels[i]), key, vectors[i], now + 3600)
                for i in range(start, min(start + batch, count))
            ]
        )
    build_seconds = time.perf_counter() - started
    gc.collect()
    rss_index = rss_kib(os.getpid()) - rss_before
    index_bytes = sum(p.index.memory_bytes() for p in semantic._live.partitions.values())
    semantic._state.ready = True

    def rows() -> None:
        created = dt.datetime.fromtimestamp(now, tz=dt.UTC)
        expires = created + dt.timedelta(hours=1)
        SemanticCacheEntry.objects.bulk_create(
            [
                SemanticCacheEntry(
                    label=int(labels[i]),
                    organization_id=1,
                    scope=key[0],
                    namespace=key[1],
                    partition=key[2],
                    model="bench",
                    vector=vectors[i].tobytes(),
                    entry=raw[i],
                    created_at=created,
                    expires_at=expires,
                )
                for i in range(count)
            ],
            batch_size=2000,
        )

    await sync_to_async(rows, thread_sensitive=False)()

    # A worker's start: the full rebuild from the database (`_load_in_thread`, as `_load` runs it
    # in a worker thread), which fills new indexes and swaps them in. The lookups then search those.
    def rebuild() -> tuple[float, float]:
        semantic.semantic_index_reset()
        semantic._state.max_entries = count
        semantic._state.max_index_bytes = settings.max_index_bytes
        semantic._state.rebuilding = True
        gc.collect()
        started, started_cpu = time.perf_counter(), time.process_time()
        semantic._load_in_thread(semantic._state.generation, 0, True)
        return time.perf_counter() - started, time.process_time() - started_cpu

    rebuild_seconds, rebuild_cpu = await sync_to_async(rebuild, thread_sensitive=False)()
    assert semantic.semantic_index_size() == count, semantic.semantic_index_size()
    # The LRU holds the most recent answers (32 MiB of them); the rest are read from the database.
    semantic._bodies.max_bytes = int(args.lru_mib * 1024 * 1024)
    for i in range(count):
        semantic._bodies.set(int(labels[i]), raw[i], ttl=3600)
    in_lru = [i for i in range(count) if semantic._bodies.get(int(labels[i])) is not None]
    cold = sorted(set(range(count)) - set(in_lru))

    # What the cache stage keeps per caller and model group (gateway/cache.py): only its labels,
    # scope and tiers are read on the semantic path.
    policy = _Policy(
        config=CacheSettings(type="local"),
        caller=Caller(),
        deployment=None,
        endpoint=Endpoint.CHAT,
        group="bench",
        labels=("bench", "1", ""),
        bypass=False,
        active=True,
        read=True,
        write=False,
        writes=False,
        lean=False,
        ttl=3600,
        ttl_ms=3_600_000,
        max_age=None,
        scope=key[0],
        namespace=key[1],
        prefix="",
        head=b"",
        ignored=frozenset(),
        unsampled=False,
        redis=False,
        s3=None,
        charge=False,
        miss=lambda: None,
        bypassed=lambda: None,
    )

    def ctx_for() -> RequestContext:
        ctx = RequestContext(request_id="bench", endpoint=Endpoint.CHAT, caller=Caller())
        ctx.cache = CachePlan(
            key="",
            read=True,
            write=False,
            ttl=3600,
            max_age=None,
            namespace=key[1],
            include_usage=False,
            policy=policy,
            local=None,
        )
        ctx.cache.semantic = semantic.SemanticPlan(
            settings=settings,
            text="",
            space=(key[0], key[1]),
            partition=key[2],
            threshold=0.9,
            organization_id=1,
            group="bench",
        )
        return ctx

    async def run(indices: list[int]) -> tuple[list[float], list[float], int]:
        """Wall time and this thread's CPU time (which excludes being preempted: on a shared
        machine the wall time's tail is other processes') of each lookup, and how many found
        the entry queried."""
        picks = rng.choice(indices, size=min(args.queries, len(indices)), replace=False)
        timings: list[float] = []
        cpu: list[float] = []
        hits = 0
        for i in picks:
            query = vectors[i] + 0.012 * rng.standard_normal(dims).astype(np.float32)
            query /= np.linalg.norm(query)
            ctx = ctx_for()
            started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
            found = await semantic._search(ctx, ctx.cache.semantic, query)
            cpu.append((time.thread_time_ns() - started_cpu) / 1e6)
            timings.append((time.perf_counter_ns() - started) / 1e6)
            hits += found is not None and found["id"] == f"c{i}"
        return timings, cpu, hits

    await run(in_lru[:200])  # warm-up
    steady, steady_cpu, steady_hits = await run(in_lru)
    cold_times, cold_cpu, cold_hits = await run(cold) if cold else ([], [], 0)

    def quantiles(values: list[float]) -> str:
        ordered = sorted(values)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return f"{statistics.median(ordered):.3f} | {p99:.3f}"

    def line(name: str, timings: list[float], cpu: list[float], hits: int) -> str:
        if not timings:
            return f"| {name} | - | - | - | - | - | - |"
        return (
            f"| {name} | {len(timings)} | {quantiles(timings)} | {quantiles(cpu)} | "
            f"{hits / len(timings):.3f} |"
        )

    load = os.getloadavg()[0]

    return "\n".join(
        [
            f"Semantic cache lookup path, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: "
            f"{count:,} entries of {dims} dimensions in one partition, "
            f"Python {sys.version.split()[0]}, one thread (everything but the embedding call).",
            "",
            f"Load average at the end: {load:.2f} on {os.cpu_count()} CPUs.",
            "",
            "| answer from | lookups | wall p50 ms | wall p99 ms | CPU p50 ms | CPU p99 ms "
            "| found the entry queried |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            line("LRU (steady state)", steady, steady_cpu, steady_hits),
            line(
                "database (cold, SQLite; CPU: the event loop's share)",
                cold_times,
                cold_cpu,
                cold_hits,
            ),
            "",
            f"Index: built in {build_seconds:.1f} s ({count / build_seconds:,.0f} entries/s, "
            f"batches of 5,000); usearch says {index_bytes / 2**20:.1f} MiB; the process grew "
            f"{rss_index / 1024:.1f} MiB for the index and its bookkeeping "
            f"({rss_index * 1024 / count:,.0f} bytes an entry). LRU: {len(in_lru):,} answers of "
            f"{len(raw[0]):,} bytes.",
            "",
            f"Rebuild from the database (a worker's start: `_load_in_thread`, SQLite): "
            f"{rebuild_seconds:.1f} s ({count / rebuild_seconds:,.0f} entries/s), "
            f"{rebuild_cpu:.1f} s of CPU ({count / rebuild_cpu:,.0f} entries a CPU second), "
            f"usearch inserting with {semantic._REBUILD_THREADS} thread(s).",
        ]
    )
