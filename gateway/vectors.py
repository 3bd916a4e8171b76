"""An in-process nearest-neighbour index of labelled vectors, by cosine similarity.

The semantic cache (and the built-in vector store) keep one `VectorIndex` per namespace. Up to
`EXACT_LIMIT` vectors it is a numpy matrix searched exactly (faster than a graph at that size, and
the vectors are all it holds); past that it moves into usearch's HNSW graph of float16 vectors,
a few vectors per call so that no single call pays for the move. usearch was chosen by
measurement against faiss, hnswlib and numpy alone: docs/benchmark.md ("Vector index"). numpy is
imported when the first index is made and usearch when one first grows past `EXACT_LIMIT`, so a
process with no vector feature on loads neither.

usearch picks its SIMD kernels from CPUID at run time and cannot be told otherwise; a CPU flag
that the kernel has not enabled (a VM advertising what it cannot run) would crash the process.
So before the first graph is built its choice is checked against /proc/cpuinfo, and an index
whose kernels the CPU cannot run stays exact (correct, slower past a few thousand vectors).

Thread safety: every method takes the instance's lock, so one index may be shared by the event
loop thread and worker threads; calls on it are serialised (a search waits for an `add_many` in
flight). A rebuild should therefore fill a new `VectorIndex` in a worker thread and swap the
reference when done, rather than add 100,000 vectors to the one the event loop is searching.
"""

from __future__ import annotations

import functools
import logging
import math
import platform
import threading
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

# usearch keys are unsigned 64-bit integers; the exact store keeps the same range.
_MAX_LABEL = 2**64 - 1
# Up to this many vectors a matrix product beats the graph at any dimension (both costs grow
# with it): see docs/benchmark.md.
EXACT_LIMIT = 4096
# Vectors moved into the graph per add while it is being built: tens of µs each.
MIGRATE_STEP = 32
# A search restricted to at most this many labels compares the query with each of them; a larger
# set searches the graph for more neighbours than asked and keeps those in the set.
FILTER_EXACT_LIMIT = 4096
# The graph keeps vectors as float16: half the memory of float32 and faster searches, with the
# same recall in the measurements; a similarity from the graph is good to about 1e-3.
_GRAPH_DTYPE = "f16"
# HNSW settings: usearch's defaults, except a deeper search (64 found the true nearest of
# 100,000 text embeddings 95% of the time, 128 found it 98.5% of the time, for ~0.3 ms more).
_CONNECTIVITY = 16
_EXPANSION_ADD = 128
_EXPANSION_SEARCH = 128
# The /proc/cpuinfo flags each of usearch's x86 kernel families executes.
_SKYLAKE = frozenset({"avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw", "f16c"})
_ICELAKE = _SKYLAKE | {
    "avx512_vnni",
    "avx512ifma",
    "avx512vbmi",
    "avx512_vbmi2",
    "avx512_bitalg",
    "avx512_vpopcntdq",
}
_GENOA = _ICELAKE | {"avx512_bf16"}
_ISA_FLAGS: dict[str, frozenset[str]] = {
    "serial": frozenset(),
    "haswell": frozenset({"avx", "avx2", "fma", "f16c"}),
    "alder": frozenset({"avx", "avx2", "fma", "f16c", "avx_vnni"}),
    "skylake": _SKYLAKE,
    "icelake": _ICELAKE,
    "genoa": _GENOA,
    "turin": _GENOA | {"avx512_vp2intersect"},
    "sapphire": _GENOA | {"avx512_fp16"},
    "sapphireamx": _GENOA | {"avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"},
}


class VectorIndex:
    """Labelled vectors searched by cosine similarity; a label holds at most one vector.

    `capacity` sizes the first allocation only: the index grows as vectors are added.
    """

    def __init__(self, *, dimensions: int, capacity: int = 1024) -> None:
        if dimensions < 1:
            raise ValueError(f"dimensions must be at least 1, not {dimensions}")
        if capacity < 0:
            raise ValueError(f"capacity must not be negative, not {capacity}")
        import numpy as np

        self.dimensions = dimensions
        self._lock = threading.Lock()
        # The exact store: rows [0, len(_row_of)) of _matrix hold unit vectors, _labels their
        # labels. It is the whole index until the graph exists and while vectors move into it.
        rows = max(16, min(capacity, EXACT_LIMIT))
        self._matrix: np.ndarray | None = np.empty((rows, dimensions), dtype=np.float32)
        self._labels: np.ndarray | None = np.empty(rows, dtype=np.uint64)
        self._row_of: dict[int, int] = {}
        self._graph: Any = None
        # Labels of the exact store not yet in the graph, moved MIGRATE_STEP per add.
        self._pending: list[int] = []

    @property
    def kind(self) -> str:
        """Which store answers: exact, migrating (the exact store, while the graph fills) or
        hnsw."""
        if self._graph is None:
            return "exact"
        return "migrating" if self._matrix is not None else "hnsw"

    def __len__(self) -> int:
        with self._lock:
            return self._size()

    def __contains__(self, label: object) -> bool:
        key = _label_or_none(label)
        if key is None:
            return False
        with self._lock:
            if self._matrix is not None:
                return key in self._row_of
            return bool(self._graph.contains(key))

    def add(self, label: int, vector: Sequence[float] | np.ndarray) -> None:
        """Store `vector` under `label`, replacing the label's previous vector if any."""
        self.add_many([label], [vector])

    def add_many(
        self,
        labels: Iterable[int],
        vectors: Sequence[Sequence[float]] | np.ndarray,
        *,
        threads: int = 1,
    ) -> None:
        """Store each vector under its label. `threads`: how many threads usearch inserts into
        the graph with (it releases the GIL meanwhile): more than one only where nothing else
        waits on the cores, such as a rebuild's worker thread filling an index not searched yet."""
        import numpy as np

        keys = np.fromiter((_checked_label(label) for label in labels), dtype=np.uint64)
        matrix = self._normalised(vectors, rows=True)
        if len(keys) != len(matrix):
            raise ValueError(f"{len(keys)} labels for {len(matrix)} vectors")
        if len(keys) == 0:
            return
        # The last vector of a label given twice wins, as successive add() calls would.
        unique, last = np.unique(keys[::-1], return_index=True)
        if len(unique) != len(keys):
            keep = np.sort(len(keys) - 1 - last)
            keys, matrix = keys[keep], matrix[keep]
        with self._lock:
            if self._graph is None and self._size() + len(keys) > EXACT_LIMIT and _graph_ok():
                self._start_graph(batch=len(keys), threads=threads)
            if self._matrix is not None:
                self._exact_add(keys, matrix)
            if self._graph is not None:
                present = self._graph.contains(keys)
                if present.any():
                    self._graph.remove(keys[present])
                self._graph.add(keys, matrix, threads=threads)
                self._migrate_some()

    def migrate_all(self, *, threads: int = 1) -> None:
        """Move every vector still waiting in the exact store into the graph now, in one batch
        (a rebuild, before its index is searched: otherwise they move `MIGRATE_STEP` per later
        add, and meanwhile a search reads the exact store)."""
        import numpy as np

        with self._lock:
            if self._graph is None or self._matrix is None:
                return
            graph, row_of = self._graph, self._row_of
            moving = [key for key in self._pending if key in row_of and not graph.contains(key)]
            if moving:
                rows = [self._row_of[key] for key in moving]
                keys = np.array(moving, dtype=np.uint64)
                self._graph.add(keys, self._matrix[rows], threads=threads)
            self._pending = []
            self._matrix = self._labels = None
            self._row_of = {}

    def remove(self, label: int) -> None:
        """Forget `label`; nothing happens if it is absent."""
        key = _label_or_none(label)
        if key is None:
            return
        with self._lock:
            if self._matrix is not None:
                self._exact_remove(key)
            if self._graph is not None:
                self._graph.remove(key)

    def search(
        self,
        vector: Sequence[float] | np.ndarray,
        *,
        k: int = 1,
        labels: Collection[int] | None = None,
    ) -> list[tuple[int, float]]:
        """The `k` nearest labels as (label, cosine similarity), most similar first; with
        `labels`, only among those (an attribute filter's matches, say)."""
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        query = self._normalised(vector, rows=False)
        allowed = None
        if labels is not None:
            allowed = {key for key in map(_label_or_none, labels) if key is not None}
        with self._lock:
            if self._size() == 0 or allowed == set():
                return []
            if self._matrix is not None:
                found = self._exact_search(query, k, allowed)
            else:
                found = self._graph_search(query, k, allowed)
        # Rounding can put a self-match a hair outside [-1, 1].
        return [(label, min(1.0, max(-1.0, similarity))) for label, similarity in found]

    def memory_bytes(self) -> int:
        """The vectors, the graph and its arenas as usearch counts them, and the exact store."""
        with self._lock:
            total = 0
            if self._matrix is not None and self._labels is not None:
                # A dict entry with its int key: about 100 bytes.
                total += self._matrix.nbytes + self._labels.nbytes + 100 * len(self._row_of)
            if self._graph is not None:
                total += int(self._graph.memory_usage)
            return total

    # --- the exact store ---------------------------------------------------------------------

    def _size(self) -> int:
        return len(self._row_of) if self._matrix is not None else len(self._graph)

    def _exact_add(self, keys: np.ndarray, matrix: np.ndarray) -> None:
        import numpy as np

        assert self._matrix is not None and self._labels is not None
        rows = np.empty(len(keys), dtype=np.intp)
        for position, key in enumerate(keys.tolist()):
            row = self._row_of.get(key)
            if row is None:
                row = self._row_of[key] = len(self._row_of)
            rows[position] = row
        needed = len(self._row_of)
        if needed > len(self._matrix):
            grown = max(needed, 2 * len(self._matrix))
            matrix_grown = np.empty((grown, self.dimensions), dtype=np.float32)
            matrix_grown[: len(self._matrix)] = self._matrix
            labels_grown = np.empty(grown, dtype=np.uint64)
            labels_grown[: len(self._labels)] = self._labels
            self._matrix, self._labels = matrix_grown, labels_grown
        self._matrix[rows] = matrix
        self._labels[rows] = keys

    def _exact_remove(self, key: int) -> None:
        assert self._matrix is not None and self._labels is not None
        row = self._row_of.pop(key, None)
        if row is None:
            return
        # Keep the rows dense: the last one moves into the hole.
        last = len(self._row_of)
        if row != last:
            self._matrix[row] = self._matrix[last]
            moved = int(self._labels[last])
            self._labels[row] = moved
            self._row_of[moved] = row

    def _exact_search(
        self, query: np.ndarray, k: int, allowed: set[int] | None
    ) -> list[tuple[int, float]]:
        import numpy as np

        assert self._matrix is not None and self._labels is not None
        if allowed is None:
            rows = None
            scores = self._matrix[: len(self._row_of)] @ query
        else:
            rows = np.fromiter(
                (row for key in allowed if (row := self._row_of.get(key)) is not None),
                dtype=np.intp,
            )
            if len(rows) == 0:
                return []
            scores = self._matrix[rows] @ query
        best = _top(scores, k)
        if rows is not None:
            best_rows = rows[best]
        else:
            best_rows = best
        return list(
            zip(self._labels[best_rows].tolist(), scores[best].astype(float).tolist(), strict=True)
        )

    # --- the graph -----------------------------------------------------------------------------

    def _start_graph(self, *, batch: int, threads: int = 1) -> None:
        from usearch.index import Index

        assert self._matrix is not None and self._labels is not None
        self._graph = Index(
            ndim=self.dimensions,
            metric="ip",  # unit vectors: the inner product is the cosine, 1 - it the distance
            dtype=_GRAPH_DTYPE,
            connectivity=_CONNECTIVITY,
            expansion_add=_EXPANSION_ADD,
            expansion_search=_EXPANSION_SEARCH,
        )
        count = len(self._row_of)
        if batch >= count:
            # A batch at least as large as what is stored (a rebuild, say) pays for it all now.
            if count:
                self._graph.add(self._labels[:count], self._matrix[:count], threads=threads)
            self._matrix = self._labels = None
            self._row_of = {}
        else:
            self._pending = list(self._row_of)

    def _migrate_some(self) -> None:
        import numpy as np

        if self._matrix is None or self._labels is None:
            return
        moving: list[int] = []
        while self._pending and len(moving) < MIGRATE_STEP:
            key = self._pending.pop()
            # Removed since, or added again (and so into the graph already): nothing to move.
            if key in self._row_of and not self._graph.contains(key):
                moving.append(key)
        if moving:
            rows = [self._row_of[key] for key in moving]
            self._graph.add(np.array(moving, dtype=np.uint64), self._matrix[rows], threads=1)
        if not self._pending:
            self._matrix = self._labels = None
            self._row_of = {}

    def _graph_search(
        self, query: np.ndarray, k: int, allowed: set[int] | None
    ) -> list[tuple[int, float]]:
        import numpy as np

        size = len(self._graph)
        if allowed is None:
            matches = self._graph.search(query, k, threads=1)
            return _pairs(matches.keys, matches.distances)
        if len(allowed) <= FILTER_EXACT_LIMIT:
            keys = np.fromiter(allowed, dtype=np.uint64, count=len(allowed))
            keys = keys[self._graph.contains(keys)]
            if len(keys) == 0:
                return []
            vectors = np.stack(self._graph.get(keys, dtype="f32"))
            scores = vectors @ query
            best = _top(scores, k)
            return list(zip(keys[best].tolist(), scores[best].astype(float).tolist(), strict=True))
        # Enough neighbours that about 2k of them are in the set, more until k are.
        count = min(size, max(4 * k, math.ceil(2 * k * size / len(allowed))))
        while True:
            matches = self._graph.search(query, count, threads=1)
            found = [pair for pair in _pairs(matches.keys, matches.distances) if pair[0] in allowed]
            if len(found) >= k or count >= size:
                return found[:k]
            count = min(size, 4 * count)

    def _normalised(self, vectors: Any, *, rows: bool) -> np.ndarray:
        import numpy as np

        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a vector of numbers: {exc}") from None
        if rows and array.ndim == 1 and array.size == 0:
            array = array.reshape(0, self.dimensions)
        wanted = 2 if rows else 1
        if array.ndim != wanted or array.shape[-1] != self.dimensions:
            raise ValueError(
                f"expected {'rows of ' if rows else ''}{self.dimensions} dimensions, "
                f"got shape {array.shape}"
            )
        norms = np.linalg.norm(array, axis=-1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise ValueError("a vector is zero or not finite: it has no direction to compare")
        return np.ascontiguousarray(array / norms)


def _top(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k highest scores, highest first."""
    import numpy as np

    if k == 1:
        return np.array([int(np.argmax(scores))])
    if k < len(scores):
        best = np.argpartition(-scores, k - 1)[:k]
    else:
        best = np.arange(len(scores))
    return best[np.argsort(-scores[best], kind="stable")]


def _pairs(keys: np.ndarray, distances: np.ndarray) -> list[tuple[int, float]]:
    return [
        (key, 1.0 - distance)
        for key, distance in zip(keys.tolist(), distances.astype(float).tolist(), strict=True)
    ]


@functools.cache
def _graph_ok() -> bool:
    """Whether usearch's kernels here only use instructions the OS has enabled."""
    try:
        from usearch.index import Index
    except ImportError:
        logger.warning("usearch is not installed: vector indexes stay exact")
        return False
    isa = str(Index(ndim=8, metric="ip", dtype=_GRAPH_DTYPE).hardware_acceleration)
    flags = _cpu_flags()
    needed = _ISA_FLAGS.get(isa)
    if flags is None or needed is None:
        # Not x86 Linux, or a kernel family newer than this table: nothing to check against.
        logger.info("usearch uses its %s kernels (not checked against the CPU flags)", isa)
        return True
    missing = sorted(needed - flags)
    if missing:
        logger.warning(
            "usearch would run its %s kernels, but this CPU lacks %s: vector indexes stay exact",
            isa,
            " ".join(missing),
        )
        return False
    return True


def _cpu_flags() -> frozenset[str] | None:
    """The x86 flags Linux reports: those the CPU has and the kernel has enabled."""
    if platform.machine().lower() not in {"x86_64", "amd64"}:
        return None
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return None


def _label_or_none(label: object) -> int | None:
    """`label` as a key, or None if it cannot be one (and so is in no index)."""
    if isinstance(label, bool):
        return None
    if not isinstance(label, int):
        # numpy integers come out of searches and arrays; anything else is no label.
        index = getattr(label, "__index__", None)
        if index is None:
            return None
        label = index()
    return label if 0 <= label <= _MAX_LABEL else None


def _checked_label(label: object) -> int:
    key = _label_or_none(label)
    if key is None:
        raise ValueError(f"a label is an integer from 0 to 2**64 - 1, not {label!r}")
    return key
