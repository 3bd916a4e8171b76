"""`python -m bench vector-stores`: a vector store's search on the built-in backend, one core.

One store of `--chunks` chunks (default 100,000) in `--files` files, in a fresh SQLite database
(or DATABASE_URL's), vectors of `--dimensions` (default 256: `local-embed`'s) drawn around
random cluster centres. Each query is one vector near a centre: the query's embedding is left
out, as the issue asks. A search is what /v1/vector_stores/{id}/search runs after embedding: the
store and its files read, the filter evaluated, the in-process index searched, the chunks' text
read; unfiltered, and with a filter that keeps a tenth of the files. Figures: docs/benchmark.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLUSTERS = 1000
SEED = 20261206


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench vector-stores", description=__doc__)
    parser.add_argument("--chunks", type=int, default=100_000, help="(default 100000)")
    parser.add_argument("--files", type=int, default=100, help="(default 100)")
    parser.add_argument("--dimensions", type=int, default=256, help="(default 256)")
    parser.add_argument("--queries", type=int, default=1000, help="(default 1000)")
    parser.add_argument("--k", type=int, default=10, help="max_num_results (default 10)")
    args = parser.parse_args(argv)
    # One core, one thread, as the target says.
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = "1"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    with tempfile.TemporaryDirectory(prefix="ogem-bench-vs-") as scratch:
        if not os.environ.get("DATABASE_URL"):
            os.environ["DATABASE_URL"] = f"sqlite:///{Path(scratch) / 'bench.sqlite3'}"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ogem_site.settings.test")
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import numpy as np

    from vector_stores.backends.builtin import BuiltinBackend
    from vector_stores.search import _search_blocking, _targets

    rng = np.random.default_rng(SEED)
    started = time.perf_counter()
    store, caller = _store_fill(args, rng)
    print(f"store of {args.chunks} chunks written in {time.perf_counter() - started:.1f} s")
    backend = BuiltinBackend.shared()
    centres = _unit(rng.standard_normal((CLUSTERS, args.dimensions), dtype=np.float32))
    picks = rng.integers(0, CLUSTERS, args.queries)
    queries = _unit(centres[picks] + 0.3 * _noise(rng, args.queries, args.dimensions))
    started = time.perf_counter()
    loaded = backend.index_synced(store=store)
    print(f"store loaded on first search: {time.perf_counter() - started:.1f} s")
    exact = []
    while loaded.exact is not None and len(exact) < 100:
        began = time.thread_time()
        backend.search(store=store, vector=queries[len(exact)], k=args.k, file_pks=None)
        exact.append((time.thread_time() - began) * 1000)
    backend.graph_wait(store=store)
    index = loaded.index
    print(
        f"graph built in the background: {time.perf_counter() - started:.1f} s "
        f"({index.kind}, {index.memory_bytes() / 2**20:.0f} MiB)"
    )
    if len(exact) > 10:
        cuts = statistics.quantiles(exact, n=100)
        print(
            f"{len(exact)} exact searches while it was built (CPU ms): p50 {cuts[49]:.2f}, "
            f"p99 {cuts[98]:.2f}"
        )
    tenth = {"type": "lt", "key": "n", "value": args.files // 10}
    rows = []
    for label, filters in (("no filter", None), ("filter: a tenth of the files", tenth)):
        # Wall time, and the CPU time of this thread (what one core spends, whatever else the
        # machine runs); the index alone, and the whole search.
        wall, cpu, index_cpu = [], [], []
        for query in queries:
            began, began_cpu = time.perf_counter(), time.thread_time()
            targets = _targets(caller=caller, vector_store_ids=[store.store_id], filters=filters)
            index_began = time.thread_time()
            backend.search(
                store=store,
                vector=query,
                k=args.k,
                file_pks=list(targets[0].files) if filters else None,
            )
            index_cpu.append((time.thread_time() - index_began) * 1000)
            found = _search_blocking(
                targets=targets, vectors=query[None, :], k=args.k, score_threshold=0.0
            )
            # The index was searched twice above: once alone, once within the search.
            cpu.append((time.thread_time() - began_cpu) * 1000 - index_cpu[-1])
            wall.append((time.perf_counter() - began) * 1000)
            assert found, "a search found nothing"
        rows += [
            (f"{label}: index, CPU", index_cpu),
            (f"{label}: search, CPU", cpu),
            (f"{label}: search, wall", wall),
        ]
    print(f"\n{args.queries} searches, k={args.k}, one core (ms):")
    print(f"{'':48} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}")
    for label, times in rows:
        cuts = statistics.quantiles(times, n=100)
        print(f"{label:48} {cuts[49]:7.2f} {cuts[89]:7.2f} {cuts[98]:7.2f} {max(times):7.2f}")
    return 0


def _noise(rng: Any, rows: int, dimensions: int) -> Any:
    import numpy as np

    return rng.standard_normal((rows, dimensions), dtype=np.float32) / np.sqrt(dimensions)


def _unit(matrix: Any) -> Any:
    import numpy as np

    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def _store_fill(args: argparse.Namespace, rng: Any) -> tuple[Any, Any]:
    """The store's rows as indexing writes them (no files storage, no embedding call)."""
    import numpy as np
    from django.db import transaction
    from django.utils import timezone

    from gateway.context import Caller
    from vector_stores.models import (
        FileStatus,
        VectorChunk,
        VectorStore,
        VectorStoreFile,
    )

    now = timezone.now()
    caller = Caller(is_master=True)
    centres = _unit(rng.standard_normal((CLUSTERS, args.dimensions), dtype=np.float32))
    with transaction.atomic():
        store = VectorStore.objects.create(
            store_id="vs_bench",
            by_master=True,
            name="bench",
            embedding_model="local-embed",
            dimensions=args.dimensions,
            index_version=1,
            created_at=now,
            last_active_at=now,
        )
        files = [
            VectorStoreFile.objects.create(
                store=store,
                file_id=f"file-bench{n}",
                filename=f"doc{n}.txt",
                status=FileStatus.COMPLETED,
                attributes={"n": n},
                created_at=now,
            )
            for n in range(args.files)
        ]
        text = "lorem ipsum dolor sit amet " * 30  # ~800 bytes, a chunk's worth of text
        batch = 5000
        for start in range(0, args.chunks, batch):
            count = min(batch, args.chunks - start)
            picks = rng.integers(0, CLUSTERS, count)
            vectors = _unit(centres[picks] + 0.3 * _noise(rng, count, args.dimensions))
            VectorChunk.objects.bulk_create(
                VectorChunk(
                    store=store,
                    store_file=files[(start + i) % args.files],
                    position=start + i,
                    text=text,
                    vector=vectors[i].astype("<f4").tobytes(),
                )
                for i in range(count)
            )
    return store, caller


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
