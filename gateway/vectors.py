"""An in-process approximate-nearest-neighbour index of labelled vectors, by cosine similarity.

The semantic cache (and the built-in vector store) keep one `VectorIndex` per namespace. It wraps
usearch's HNSW graph; the measurements behind that choice (against faiss, hnswlib and numpy
brute force) are in docs/benchmark.md ("Vector index"). usearch is imported on first use, so a
process with no vector feature on never loads it.

Thread safety: every method takes the instance's lock, so one index may be shared by the event loop
thread and worker threads; calls on it are serialised (a search waits for an `add_many` in flight).
A rebuild should therefore fill a new `VectorIndex` in a worker thread and swap the reference when
it is done, rather than add 100,000 vectors to the one the event loop is searching.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

# usearch keys are unsigned 64-bit integers.
_MAX_LABEL = 2**64 - 1


class VectorIndex:
    """Labelled vectors searched by cosine similarity; a label holds at most one vector."""

    def __init__(self, *, dimensions: int, capacity: int = 1024) -> None:
        if dimensions < 1:
            raise ValueError(f"dimensions must be at least 1, not {dimensions}")
        if capacity < 0:
            raise ValueError(f"capacity must not be negative, not {capacity}")
        from usearch.index import Index

        self.dimensions = dimensions
        self._lock = threading.Lock()
        # Vectors are normalised on the way in, so the inner product is the cosine and usearch's
        # "ip" distance is 1 - cosine (cheaper than its "cos" metric, which normalises each pair).
        self._index = Index(ndim=dimensions, metric="ip", dtype="f32")
        # usearch grows the graph by itself; `capacity` is a hint we keep for callers' sizing.
        self.capacity = capacity

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, label: object) -> bool:
        key = _label_or_none(label)
        if key is None:
            return False
        with self._lock:
            return bool(self._index.contains(key))

    def add(self, label: int, vector: Sequence[float] | np.ndarray) -> None:
        """Store `vector` under `label`, replacing the label's previous vector if any."""
        self.add_many([label], [vector])

    def add_many(
        self, labels: Iterable[int], vectors: Sequence[Sequence[float]] | np.ndarray
    ) -> None:
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
            present = self._index.contains(keys)
            if present.any():
                self._index.remove(keys[present])
            self._index.add(keys, matrix, threads=1)

    def remove(self, label: int) -> None:
        """Forget `label`; nothing happens if it is absent."""
        key = _label_or_none(label)
        if key is None:
            return
        with self._lock:
            self._index.remove(key)

    def search(
        self, vector: Sequence[float] | np.ndarray, *, k: int = 1
    ) -> list[tuple[int, float]]:
        """The `k` nearest labels as (label, cosine similarity), most similar first."""
        if k < 1:
            raise ValueError(f"k must be at least 1, not {k}")
        query = self._normalised(vector, rows=False)
        with self._lock:
            if len(self._index) == 0:
                return []
            matches = self._index.search(query, k, threads=1)
            keys, distances = matches.keys, matches.distances
        # Rounding can put a self-match a hair outside [-1, 1].
        return [
            (int(key), min(1.0, max(-1.0, 1.0 - float(distance))))
            for key, distance in zip(keys, distances, strict=True)
        ]

    def memory_bytes(self) -> int:
        """What usearch says the index holds (vectors, graph and its arenas)."""
        with self._lock:
            return int(self._index.memory_usage)

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


def _label_or_none(label: object) -> int | None:
    """`label` as a usearch key, or None if it cannot be one (and so is in no index)."""
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
