"""`python -m bench vectors`: the in-process vector index (gateway/vectors.py), single thread.

Clustered random unit vectors stand in for text embeddings; the truth is exact search with numpy.
`--library all` reruns the comparison that chose the library (docs/benchmark.md, "Vector index"):
each library and storage type in its own process, so that one's memory and crashes stay its own.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.procs import ROOT, rss_kib

# HNSW settings shared by every library, so that the graphs compare: usearch's defaults
# (M 16, efConstruction 128, ef 64).
CONNECTIVITY = 16
EXPANSION_ADD = 128
EXPANSION_SEARCH = 64
CLUSTERS = 1000
SEED = 20261206
# (library, storage) pairs that `--library all` measures; "ogem" is gateway.vectors.VectorIndex.
VARIANTS = (
    ("ogem", "f32"),
    ("usearch", "f32"),
    ("usearch", "f16"),
    ("usearch", "bf16"),
    ("usearch", "i8"),
    ("faiss", "f32"),
    ("faiss", "f16"),
    ("faiss", "i8"),
    ("hnswlib", "f32"),
    ("numpy", "f32"),
)
MODULES = {"ogem": "usearch", "usearch": "usearch", "faiss": "faiss", "hnswlib": "hnswlib"}
MODULES["numpy"] = "numpy"
# Single thread for every library, whatever it would pick by itself.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench vectors", description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000, help="(default 100000)")
    parser.add_argument("--dimensions", type=int, default=384, help="(default 384)")
    parser.add_argument("--queries", type=int, default=1000, help="per round (default 1000)")
    parser.add_argument(
        "--rounds", type=int, default=5, help="query rounds; best and median shown (default 5)"
    )
    parser.add_argument(
        "--library",
        choices=["ogem", "usearch", "faiss", "hnswlib", "numpy", "all"],
        default="ogem",
        help="ogem: gateway.vectors.VectorIndex (default); all: the comparison table",
    )
    parser.add_argument("--dtype", choices=["f32", "f16", "bf16", "i8"], default="f32")
    parser.add_argument(
        "--data",
        type=Path,
        metavar="FILE.npy",
        help="vectors from a file (rows: the entries, then the queries, then 1000 to add; "
        "--dimensions is the file's) instead of clustered random ones, e.g. embeddings of texts",
    )
    parser.add_argument(
        "--crossover",
        action="store_true",
        help="VectorIndex's exact store against its graph at small sizes (sets EXACT_LIMIT)",
    )
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.data is not None and not args.json:  # the subprocess is told the dimensions
        import numpy as np

        shape = np.load(args.data, mmap_mode="r").shape
        if len(shape) != 2 or shape[0] < args.entries + args.queries + 1000:
            parser.error(f"{args.data}: {shape}, wanted ({args.entries + args.queries + 1000}, d)")
        args.dimensions = shape[1]
    if args.json:
        return _measure_and_print(args)
    if args.crossover:
        text = _crossover(args)
        print(text)
        return 0
    variants = VARIANTS if args.library == "all" else ((args.library, args.dtype),)
    results = [_in_subprocess(args, library, dtype) for library, dtype in variants]
    text = _report(args, results)
    print(text)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"vectors-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.md"
    path.write_text(text + "\n")
    print(f"written to {path.relative_to(ROOT)}")
    return 0


def _in_subprocess(args: argparse.Namespace, library: str, dtype: str) -> dict[str, Any]:
    print(f"{library} {dtype} ...", file=sys.stderr, flush=True)
    argv = [
        sys.executable, "-m", "bench", "vectors", "--json",
        "--library", library, "--dtype", dtype,
        "--entries", str(args.entries), "--dimensions", str(args.dimensions),
        "--queries", str(args.queries), "--rounds", str(args.rounds),
        *(["--data", str(args.data)] if args.data else []),
    ]  # fmt: skip
    env = {**os.environ, **SINGLE_THREAD_ENV}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    result: dict[str, Any] = {"library": library, "dtype": dtype}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            result.update(json.loads(line))
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        result.setdefault("error", f"exit {done.returncode}: {tail}")
    return result


# --- one library in this process ----------------------------------------------------------


class _Adapter:
    """What the measurement needs of a library: batch build, single add/remove/search."""

    remove_supported = True

    def build(self, labels: Any, vectors: Any) -> None:
        raise NotImplementedError

    def add(self, label: int, vector: Any) -> None:
        raise NotImplementedError

    def remove(self, label: int) -> None:
        raise NotImplementedError

    def search(self, vector: Any, k: int) -> list[int]:
        raise NotImplementedError

    def library_bytes(self) -> int | None:
        return None

    def save_load(self, path: Path) -> tuple[float, float, int] | None:
        return None

    def isa(self) -> str:
        return ""


class _Ogem(_Adapter):
    def __init__(self, dimensions: int, dtype: str, entries: int) -> None:
        from gateway.vectors import VectorIndex

        self.index = VectorIndex(dimensions=dimensions, capacity=entries)

    def build(self, labels: Any, vectors: Any) -> None:
        self.index.add_many(labels, vectors)

    def add(self, label: int, vector: Any) -> None:
        self.index.add(label, vector)

    def remove(self, label: int) -> None:
        self.index.remove(label)

    def search(self, vector: Any, k: int) -> list[int]:
        return [label for label, _ in self.index.search(vector, k=k)]

    def library_bytes(self) -> int | None:
        return self.index.memory_bytes()

    def isa(self) -> str:
        graph = self.index._graph
        return f"{self.index.kind}, {graph.hardware_acceleration if graph else 'numpy'}"


class _Usearch(_Adapter):
    def __init__(self, dimensions: int, dtype: str, entries: int) -> None:
        from usearch.index import Index

        self.make = lambda: Index(
            ndim=dimensions,
            metric="ip",
            dtype=dtype,
            connectivity=CONNECTIVITY,
            expansion_add=EXPANSION_ADD,
            expansion_search=EXPANSION_SEARCH,
        )
        self.index = self.make()

    def build(self, labels: Any, vectors: Any) -> None:
        self.index.add(labels, vectors, threads=1)

    def add(self, label: int, vector: Any) -> None:
        self.index.add(label, vector, threads=1)

    def remove(self, label: int) -> None:
        self.index.remove(label)

    def search(self, vector: Any, k: int) -> list[int]:
        return self.index.search(vector, k, threads=1).keys.tolist()

    def library_bytes(self) -> int | None:
        return int(self.index.memory_usage)

    def save_load(self, path: Path) -> tuple[float, float, int] | None:
        started = time.perf_counter()
        self.index.save(str(path))
        saved = time.perf_counter()
        fresh = self.make()
        fresh.load(str(path))
        loaded = time.perf_counter()
        assert len(fresh) == len(self.index)
        return saved - started, loaded - saved, path.stat().st_size

    def isa(self) -> str:
        return self.index.hardware_acceleration


class _Faiss(_Adapter):
    def __init__(self, dimensions: int, dtype: str, entries: int) -> None:
        import faiss

        faiss.omp_set_num_threads(1)
        self.faiss = faiss
        if dtype == "f32":
            inner = faiss.IndexHNSWFlat(dimensions, CONNECTIVITY, faiss.METRIC_INNER_PRODUCT)
        else:
            kind = {"f16": faiss.ScalarQuantizer.QT_fp16, "i8": faiss.ScalarQuantizer.QT_8bit}
            inner = faiss.IndexHNSWSQ(
                dimensions, kind[dtype], CONNECTIVITY, faiss.METRIC_INNER_PRODUCT
            )
        inner.hnsw.efConstruction = EXPANSION_ADD
        inner.hnsw.efSearch = EXPANSION_SEARCH
        self.inner = inner
        self.index = faiss.IndexIDMap2(inner)

    def build(self, labels: Any, vectors: Any) -> None:
        if not self.inner.is_trained:
            self.inner.train(vectors)
        self.index.add_with_ids(vectors, labels.astype("int64"))

    def add(self, label: int, vector: Any) -> None:
        import numpy as np

        self.index.add_with_ids(vector.reshape(1, -1), np.array([label], dtype="int64"))

    def remove(self, label: int) -> None:
        import numpy as np

        self.index.remove_ids(np.array([label], dtype="int64"))

    def search(self, vector: Any, k: int) -> list[int]:
        _, labels = self.index.search(vector.reshape(1, -1), k)
        return [int(label) for label in labels[0] if label >= 0]

    def library_bytes(self) -> int | None:
        return int(self.faiss.serialize_index(self.index).nbytes)

    def save_load(self, path: Path) -> tuple[float, float, int] | None:
        started = time.perf_counter()
        self.faiss.write_index(self.index, str(path))
        saved = time.perf_counter()
        fresh = self.faiss.read_index(str(path))
        loaded = time.perf_counter()
        assert fresh.ntotal == self.index.ntotal
        return saved - started, loaded - saved, path.stat().st_size

    def isa(self) -> str:
        return self.faiss.get_compile_options()


class _Hnswlib(_Adapter):
    def __init__(self, dimensions: int, dtype: str, entries: int) -> None:
        import hnswlib

        self.hnswlib = hnswlib
        self.dimensions = dimensions
        self.index = self._new(entries + 4096)

    def _new(self, capacity: int) -> Any:
        index = self.hnswlib.Index(space="ip", dim=self.dimensions)
        index.init_index(
            max_elements=capacity,
            ef_construction=EXPANSION_ADD,
            M=CONNECTIVITY,
            allow_replace_deleted=True,
        )
        index.set_ef(EXPANSION_SEARCH)
        index.set_num_threads(1)
        return index

    def build(self, labels: Any, vectors: Any) -> None:
        self.index.add_items(vectors, labels, num_threads=1)

    def add(self, label: int, vector: Any) -> None:
        self.index.add_items(vector.reshape(1, -1), [label], replace_deleted=True)

    def remove(self, label: int) -> None:
        self.index.mark_deleted(label)

    def search(self, vector: Any, k: int) -> list[int]:
        labels, _ = self.index.knn_query(vector, k=k, num_threads=1)
        return labels[0].tolist()

    def save_load(self, path: Path) -> tuple[float, float, int] | None:
        started = time.perf_counter()
        self.index.save_index(str(path))
        saved = time.perf_counter()
        fresh = self.hnswlib.Index(space="ip", dim=self.dimensions)
        fresh.load_index(str(path), allow_replace_deleted=True)
        loaded = time.perf_counter()
        assert fresh.get_current_count() == self.index.get_current_count()
        return saved - started, loaded - saved, path.stat().st_size

    def isa(self) -> str:
        return "portable build (HNSWLIB_NO_NATIVE=1)"


class _Numpy(_Adapter):
    """Exact search: one matrix product per query, rows kept dense by moving the last one."""

    def __init__(self, dimensions: int, dtype: str, entries: int) -> None:
        import numpy as np

        self.np = np
        self.matrix = np.empty((max(entries, 16), dimensions), dtype=np.float32)
        self.labels = np.empty(len(self.matrix), dtype=np.int64)
        self.row_of: dict[int, int] = {}

    def build(self, labels: Any, vectors: Any) -> None:
        for label, vector in zip(labels.tolist(), vectors, strict=True):
            self.add(label, vector)

    def add(self, label: int, vector: Any) -> None:
        row = self.row_of.get(label)
        if row is None:
            row = len(self.row_of)
            if row == len(self.matrix):
                self.matrix = self.np.resize(self.matrix, (2 * row, self.matrix.shape[1]))
                self.labels = self.np.resize(self.labels, 2 * row)
            self.row_of[label] = row
        self.matrix[row] = vector
        self.labels[row] = label

    def remove(self, label: int) -> None:
        row = self.row_of.pop(label, None)
        if row is None:
            return
        last = len(self.row_of)
        if row != last:
            self.matrix[row] = self.matrix[last]
            moved = int(self.labels[last])
            self.labels[row] = moved
            self.row_of[moved] = row

    def search(self, vector: Any, k: int) -> list[int]:
        count = len(self.row_of)
        scores = self.matrix[:count] @ vector
        k = min(k, count)
        top = self.np.argpartition(-scores, k - 1)[:k]
        top = top[self.np.argsort(-scores[top])]
        return self.labels[top].tolist()

    def library_bytes(self) -> int | None:
        return int(self.matrix.nbytes + self.labels.nbytes)


ADAPTERS: dict[str, Callable[[int, str, int], _Adapter]] = {
    "ogem": _Ogem,
    "usearch": _Usearch,
    "faiss": _Faiss,
    "hnswlib": _Hnswlib,
    "numpy": _Numpy,
}


def _measure_and_print(args: argparse.Namespace) -> int:
    result: dict[str, Any] = {}
    if args.library != "numpy":
        # numpy is a dependency whichever library wins: time the library's own import.
        importlib.import_module("numpy")
    started = time.perf_counter()
    try:
        importlib.import_module(MODULES[args.library])
        if args.library == "ogem":
            importlib.import_module("gateway.vectors")
    except ImportError as exc:
        print(json.dumps({"error": f"not installed: {exc}"}))
        return 0
    result["import_ms"] = (time.perf_counter() - started) * 1000
    result["version"] = _version(args.library)
    result["installed_mb"] = _installed_mb(args.library)
    import numpy as np

    data, queries, extra = _dataset(args.entries, args.queries, args.dimensions, args.data)
    truth = _exact(data, queries, 10)
    labels = np.arange(args.entries, dtype=np.uint64)
    gc.collect()
    rss_before = rss_kib(os.getpid())
    adapter = ADAPTERS[args.library](args.dimensions, args.dtype, args.entries)
    started = time.perf_counter()
    adapter.build(labels, data)
    result["build_s"] = time.perf_counter() - started
    gc.collect()
    result["rss_delta_mb"] = (rss_kib(os.getpid()) - rss_before) / 1024
    result["library_mb"] = (adapter.library_bytes() or 0) / 2**20 or None
    result["isa"] = adapter.isa()
    if isinstance(adapter, _Ogem):
        from gateway import vectors

        exact = adapter.index.kind == "exact"
        result["dtype"] = "f32 exact" if exact else f"{vectors._GRAPH_DTYPE} graph"

    for k in (1, 10):
        rounds = []
        for _ in range(args.rounds):
            latencies, found = _query_round(adapter, queries, k)
            rounds.append(_percentiles(latencies))
        rounds.sort(key=lambda p: p[1])
        result[f"k{k}_best"] = rounds[0]
        result[f"k{k}_median"] = rounds[len(rounds) // 2]
        hits = sum(len(set(f[:k]) & set(t[:k].tolist())) for f, t in zip(found, truth, strict=True))
        result[f"recall{k}"] = hits / (k * len(queries))

    adds = []
    for offset, vector in enumerate(extra):
        started = time.perf_counter_ns()
        adapter.add(args.entries + offset, vector)
        adds.append(time.perf_counter_ns() - started)
    result["add"] = _percentiles(adds)
    try:
        removes = []
        for offset in range(len(extra)):
            started = time.perf_counter_ns()
            adapter.remove(args.entries + offset)
            removes.append(time.perf_counter_ns() - started)
        result["remove"] = _percentiles(removes)
        after = adapter.search(extra[0], 1)
        result["remove_ok"] = not after or after[0] != args.entries
    except RuntimeError as exc:
        result["remove"] = None
        result["remove_error"] = str(exc).splitlines()[0][:80]
    with tempfile.TemporaryDirectory() as tmp:
        timings = adapter.save_load(Path(tmp) / "index")
    if timings:
        result["save_s"], result["load_s"], size = timings
        result["file_mb"] = size / 2**20
    result["rss_mb"] = rss_kib(os.getpid()) / 1024
    # The figures first: a library that crashes below has still reported them.
    print(json.dumps(result), flush=True)
    # Negated extras: new points, each its own nearest neighbour (the extras above may still
    # be in an index that cannot remove them).
    print(json.dumps({"concurrent": _concurrent(adapter, -extra, queries)}), flush=True)
    return 0


def _dataset(
    entries: int, queries: int, dimensions: int, path: Path | None = None
) -> tuple[Any, Any, Any]:
    """Unit vectors around CLUSTERS centres (cosine to their centre about 0.6, like related
    texts'), queries from the same centres but not in the index, and extra entries to add; or
    the rows of the file at `path`, in that order."""
    import numpy as np

    if path is not None:
        rows = np.load(path).astype(np.float32)[: entries + queries + 1000]
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        return rows[:entries], rows[entries : entries + queries], rows[entries + queries :]

    centres = np.random.default_rng(SEED).standard_normal((CLUSTERS, dimensions))

    def draw(count: int, stream: int) -> Any:
        rng = np.random.default_rng([SEED, stream])
        points = centres[rng.integers(0, CLUSTERS, count)]
        points = points + 1.3 * rng.standard_normal((count, dimensions))
        points = points.astype(np.float32)
        return points / np.linalg.norm(points, axis=1, keepdims=True)

    return draw(entries, 1), draw(queries, 2), draw(1000, 3)


def _exact(data: Any, queries: Any, k: int) -> Any:
    import numpy as np

    parts = []
    for start in range(0, len(queries), 100):  # 100 queries at a time: 40 MB of scores, not 400
        scores = queries[start : start + 100] @ data.T
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        parts.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(parts)


def _query_round(adapter: _Adapter, queries: Any, k: int) -> tuple[list[int], list[list[int]]]:
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter_ns()
        labels = adapter.search(query, k)
        latencies.append(time.perf_counter_ns() - started)
        found.append(labels)
    return latencies, found


def _percentiles(nanoseconds: list[int]) -> tuple[float, float]:
    ordered = sorted(nanoseconds)
    at = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6  # noqa: E731
    return at(0.50), at(0.99)


def _concurrent(adapter: _Adapter, extra: Any, queries: Any) -> str:
    """One thread adds while another searches the same index, without any lock of ours."""
    errors: list[str] = []
    base = 10_000_000

    def writer() -> None:
        try:
            for offset, vector in enumerate(extra):
                adapter.add(base + offset, vector)
        except Exception as exc:
            errors.append(f"add: {exc}")

    def reader() -> None:
        try:
            for _ in range(3):
                for query in queries[:300]:
                    adapter.search(query, 10)
        except Exception as exc:
            errors.append(f"search: {exc}")

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        return errors[0][:80]
    missing = sum(adapter.search(vector, 1)[:1] != [base + i] for i, vector in enumerate(extra))
    return "ok" if missing == 0 else f"{missing} of {len(extra)} added not found first"


def _installed_mb(library: str) -> float | None:
    """The installed size of the library's distribution and of what it brings."""
    from importlib.metadata import PackageNotFoundError, distribution

    packages = {
        "ogem": ["usearch", "numkong"],
        "usearch": ["usearch", "numkong"],
        "faiss": ["faiss-cpu"],
        "hnswlib": ["hnswlib"],
        "numpy": ["numpy"],
    }[library]
    total = 0
    for package in packages:
        try:
            files = distribution(package).files or []
        except PackageNotFoundError:
            return None
        total += sum(file.size or 0 for file in files)
    return total / 2**20


def _version(library: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    package = {"ogem": "usearch", "faiss": "faiss-cpu"}.get(library, library)
    with contextlib.suppress(PackageNotFoundError):
        return version(package)
    return "?"


def _crossover(args: argparse.Namespace) -> str:
    """Search and add times of both of VectorIndex's stores at the sizes around EXACT_LIMIT."""
    from gateway import vectors

    load = os.getloadavg()
    lines = [
        f"# Vector index: exact store or graph, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{args.dimensions} dimensions, k=10, {args.queries} queries a round, best of "
        f"{args.rounds} rounds by p99; load average {load[0]:.2f}. Times in µs.",
        "",
        "| vectors | exact search p50 / p99 | graph search p50 / p99 | graph recall@10 | "
        "exact add p50 | graph add p50 |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    saved = vectors.EXACT_LIMIT
    try:
        for size in (256, 512, 1024, 2048, 4096, 8192, 16384):
            data, queries, extra = _dataset(size, args.queries, args.dimensions)
            truth = _exact(data, queries, 10)
            row = [f"{size:,}"]
            adds = []
            for limit in (2**62, 0):  # exact store only, then graph only
                vectors.EXACT_LIMIT = limit
                index = vectors.VectorIndex(dimensions=args.dimensions)
                index.add_many(range(size), data)
                adapter = _Ogem.__new__(_Ogem)
                adapter.index = index
                best: tuple[float, float] | None = None
                for _ in range(args.rounds):
                    latencies, found = _query_round(adapter, queries, 10)
                    result = _percentiles(latencies)
                    best = result if best is None or result[1] < best[1] else best
                assert best is not None
                row.append(f"{best[0] * 1000:.0f} / {best[1] * 1000:.0f}")
                if limit == 0:
                    hits = sum(
                        len(set(f) & set(t.tolist())) for f, t in zip(found, truth, strict=True)
                    )
                    row.append(f"{hits / (10 * len(queries)):.3f}")
                timings = []
                for offset, vector in enumerate(extra[:200]):
                    started = time.perf_counter_ns()
                    index.add(size + offset, vector)
                    timings.append(time.perf_counter_ns() - started)
                adds.append(f"{_percentiles(timings)[0] * 1000:.0f}")
            lines.append("| " + " | ".join(row + adds) + " |")
    finally:
        vectors.EXACT_LIMIT = saved
    return "\n".join(lines)


# --- the report -------------------------------------------------------------------------------


def _report(args: argparse.Namespace, results: list[dict[str, Any]]) -> str:
    load = os.getloadavg()
    kind = f"vectors from {args.data.name}" if args.data else "clustered unit vectors"
    lines = [
        f"# Vector index, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"{args.entries:,} {kind} of {args.dimensions} dimensions, cosine; "
        f"{args.queries} single queries a round, {args.rounds} rounds (best and median round "
        f"by p99); one thread. {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}. Times in ms unless marked.",
        "",
        "| library | storage | build s | add p50 / p99 | remove p50 / p99 | "
        "k=1 p50 / p99 best (median) | k=10 p50 / p99 best (median) | recall@1 | recall@10 | "
        "index MB (RSS growth) | save / load s | installed MB, import ms | add+search threads |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    notes = []
    for r in results:
        name = f"{r['library']} {r.get('version', '')}".strip()
        if "build_s" not in r:
            lines.append(f"| {name} | {r['dtype']} | {r.get('error', 'failed')} |")
            continue
        remove = _pair(r["remove"]) if r.get("remove") else "unsupported"
        if r.get("remove") and not r.get("remove_ok", True):
            remove += " (still found)"
        saved = f"{r['save_s']:.2f} / {r['load_s']:.2f}" if "save_s" in r else "—"
        library_mb = f"{r['library_mb']:.0f}" if r.get("library_mb") else "—"
        installed = f"{r['installed_mb']:.0f}" if r.get("installed_mb") else "?"
        lines.append(
            f"| {name} | {r['dtype']} | {r['build_s']:.1f} | {_pair(r['add'])} | {remove} | "
            f"{_pair(r['k1_best'])} ({_pair(r['k1_median'])}) | "
            f"{_pair(r['k10_best'])} ({_pair(r['k10_median'])}) | "
            f"{r['recall1']:.3f} | {r['recall10']:.3f} | {library_mb} ({r['rss_delta_mb']:.0f}) | "
            f"{saved} | {installed}, {r['import_ms']:.0f} | {r.get('concurrent', 'crashed')} |"
        )
        if r.get("isa"):
            notes.append(f"- {r['library']} {r['dtype']}: {r['isa']}")
        if r.get("remove_error"):
            notes.append(f"- {r['library']} {r['dtype']} remove: {r['remove_error']}")
    if notes:
        lines += ["", "Kernels (what each library dispatched to here) and notes:", "", *notes]
    return "\n".join(lines)


def _pair(values: tuple[float, float] | list[float]) -> str:
    return f"{values[0]:.3f} / {values[1]:.3f}"
