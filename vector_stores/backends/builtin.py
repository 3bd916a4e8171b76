"""The built-in backend: vectors durable in the database (VectorChunk.vector), searched in an
in-process `gateway.vectors.VectorIndex` per store (exact below 4,096 chunks, usearch's HNSW
above), the same index as the semantic cache's.

Every worker loads a store on its first search of it. A store past `EXACT_LIMIT` chunks is
searched exactly (one matrix product) while its graph is built in a thread of its own, then by
the graph: no search waits for a build (minutes for 100,000 chunks on a busy core). Every change
to a store's chunks (or its files' attributes) bumps `VectorStore.index_version` in the same
transaction, and a search reads the store's row anyway (its tenant check), so a worker whose
index has another version brings it up to date first: it reads the store's chunk ids, drops the
ones gone and loads the new ones. Every worker thus answers from what is committed, without
messages between workers.

A primary key can name another store later: ids restart when the tables are dropped and made
again (migrations run backwards then forwards), or when a database is flushed or restored, while
a worker keeps its indexes. So a loaded index belongs to the store it was loaded from (its
`store_id`, random, and its creation time), never to whichever store has that primary key now: a
store of the same key and an equal or lower version is loaded afresh, not served another store's
chunks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.vectors import EXACT_LIMIT, VectorIndex

if TYPE_CHECKING:
    import numpy as np

    from vector_stores.models import VectorStore

logger = logging.getLogger(__name__)

_LOAD_BATCH = 2000

# Which store an index was loaded from: its primary key may be another store's later.
_Identity = tuple[str, datetime]


def _identity(store: VectorStore) -> _Identity:
    return (store.store_id, store.created_at)


@dataclass(slots=True)
class _Exact:
    """A whole store as one matrix, searched while its graph is built."""

    labels: np.ndarray  # uint64
    files: np.ndarray  # int64, each row's file
    matrix: np.ndarray  # float32 unit rows

    def search(
        self, vector: np.ndarray, k: int, file_pks: Collection[int] | None
    ) -> list[tuple[int, float]]:
        import numpy as np

        query = np.asarray(vector, dtype=np.float32)
        query = query / np.linalg.norm(query)
        scores = self.matrix @ query
        if file_pks is not None:
            keep = np.isin(self.files, np.fromiter(file_pks, dtype=np.int64))
            scores = np.where(keep, scores, -np.inf)
            k = min(k, int(keep.sum()))
        if k <= 0:
            return []
        best = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        best = best[np.argsort(-scores[best], kind="stable")]
        return list(
            zip(self.labels[best].tolist(), scores[best].astype(float).tolist(), strict=True)
        )


@dataclass(slots=True)
class _Loaded:
    identity: _Identity
    version: int
    index: VectorIndex
    # Set while the graph is built: searches use it instead of `index`.
    exact: _Exact | None = None
    # Each chunk's file, and each file's chunks: a filter's files become labels.
    file_of: dict[int, int] = field(default_factory=dict)
    labels_of: dict[int, list[int]] = field(default_factory=dict)

    def note(self, rows: list[tuple[int, int, bytes]]) -> None:
        for label, file_pk, _ in rows:
            self.file_of[label] = file_pk
            self.labels_of.setdefault(file_pk, []).append(label)

    def add(self, rows: list[tuple[int, int, bytes]]) -> None:
        if rows:
            self.index.add_many([label for label, _, _ in rows], _matrix(rows))
            self.note(rows)

    def remove(self, labels: Collection[int]) -> None:
        gone: set[int] = set()
        for label in labels:
            self.index.remove(label)
            file_pk = self.file_of.pop(label, None)
            if file_pk is not None:
                gone.add(file_pk)
        for file_pk in gone:
            kept = [label for label in self.labels_of[file_pk] if label in self.file_of]
            if kept:
                self.labels_of[file_pk] = kept
            else:
                del self.labels_of[file_pk]


def _current(loaded: _Loaded, store: VectorStore) -> bool:
    """Whether `loaded` is this store's index (not an earlier store's of the same primary key)
    at its version or later."""
    return loaded.identity == _identity(store) and loaded.version >= store.index_version


def _matrix(rows: list[tuple[int, int, bytes]]) -> np.ndarray:
    import numpy as np

    return np.stack([np.frombuffer(bytes(raw), dtype=np.float32) for _, _, raw in rows])


class BuiltinBackend:
    vectors_in_rows = True
    _shared: ClassVar[BuiltinBackend | None] = None

    def __init__(self) -> None:
        self._loaded: dict[int, _Loaded] = {}
        self._lock = threading.Lock()  # guards _locks
        self._locks: dict[int, threading.Lock] = {}
        self._builds: dict[int, threading.Event] = {}  # graph builds in flight or done

    @classmethod
    def shared(cls) -> BuiltinBackend:
        if cls._shared is None:
            cls._shared = cls()
        return cls._shared

    def vectors_add(self, **_: Any) -> None:
        """The rows hold the vectors: searches load them."""

    def vectors_remove(self, **_: Any) -> None:
        """Deleted rows leave the index at the next search."""

    def store_drop(self, *, store: VectorStore) -> None:
        with self._lock:
            self._loaded.pop(store.pk, None)
            self._locks.pop(store.pk, None)
            self._builds.pop(store.pk, None)

    def search(
        self,
        *,
        store: VectorStore,
        vector: np.ndarray,
        k: int,
        file_pks: Collection[int] | None,
    ) -> list[tuple[int, float]]:
        loaded = self.index_synced(store=store)
        if not loaded.file_of:
            return []
        wanted = None
        if file_pks is not None and not set(file_pks).issuperset(loaded.labels_of):
            wanted = set(file_pks)
        exact = loaded.exact
        if exact is not None:
            return exact.search(vector, k, wanted)
        labels = None
        if wanted is not None:
            labels = [label for file_pk in wanted for label in loaded.labels_of.get(file_pk, ())]
        return loaded.index.search(vector, k=k, labels=labels)

    def index_synced(self, *, store: VectorStore) -> _Loaded:
        """The store's index at `store.index_version` or later."""
        loaded = self._loaded.get(store.pk)
        if loaded is not None and _current(loaded, store):
            return loaded
        with self._lock:
            lock = self._locks.setdefault(store.pk, threading.Lock())
        with lock:  # one load per store at a time; the others wait for it and use it
            loaded = self._loaded.get(store.pk)
            if loaded is not None and _current(loaded, store):
                return loaded
            if loaded is not None and loaded.identity != _identity(store):
                # Another store that had this primary key: nothing of its index is reused (its
                # labels, chunk ids, may be the new store's ids for other chunks).
                loaded = None
                self._builds.pop(store.pk, None)
            loaded = self._sync(store=store, loaded=loaded)
            self._loaded[store.pk] = loaded
            return loaded

    def graph_wait(self, *, store: VectorStore, timeout: float | None = None) -> bool:
        """Wait until the store's graph is built (benchmarks, tests); whether it is."""
        built = self._builds.get(store.pk)
        return built.wait(timeout) if built is not None else True

    def _sync(self, *, store: VectorStore, loaded: _Loaded | None) -> _Loaded:
        from vector_stores.models import VectorChunk, VectorStore

        # The version first: a change committed while the chunks are read makes the next search
        # sync again, never one missed.
        found = VectorStore.objects.filter(pk=store.pk, store_id=store.store_id)
        current = found.values_list("index_version", "dimensions").first()
        if current is None or current[1] is None:
            return _Loaded(
                identity=_identity(store),
                version=store.index_version,
                index=VectorIndex(dimensions=1),
            )
        version, dimensions = current
        chunks = VectorChunk.objects.filter(store_id=store.pk)
        rows = chunks.values_list("id", "store_file_id", "vector").order_by("id")
        if loaded is None or loaded.exact is not None or loaded.index.dimensions != dimensions:
            # Loaded whole (a build still running is left to finish unused).
            return self._load(
                store, version, dimensions, list(rows.iterator(chunk_size=_LOAD_BATCH))
            )
        present = set(chunks.values_list("id", flat=True).iterator(chunk_size=10_000))
        loaded.remove([label for label in loaded.file_of if label not in present])
        new_ids = sorted(present.difference(loaded.file_of))
        for start in range(0, len(new_ids), _LOAD_BATCH):
            loaded.add(list(rows.filter(id__in=new_ids[start : start + _LOAD_BATCH])))
        loaded.version = version
        return loaded

    def _load(
        self, store: VectorStore, version: int, dimensions: int, rows: list[tuple[int, int, bytes]]
    ) -> _Loaded:
        import numpy as np

        loaded = _Loaded(
            identity=_identity(store), version=version, index=VectorIndex(dimensions=dimensions)
        )
        if len(rows) <= EXACT_LIMIT:
            loaded.add(rows)
            return loaded
        loaded.note(rows)
        matrix = _matrix(rows)
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
        labels = np.fromiter((row[0] for row in rows), dtype=np.uint64, count=len(rows))
        files = np.fromiter((row[1] for row in rows), dtype=np.int64, count=len(rows))
        loaded.exact = _Exact(labels=labels, files=files, matrix=matrix)
        built = self._builds[store.pk] = threading.Event()

        def build() -> None:
            try:
                # A batch as large as the index builds its graph in one go.
                loaded.index.add_many(labels, matrix)
                loaded.exact = None  # the index is complete before searches move to it
            except Exception:
                logger.exception("building the vector index of store %s failed", store.store_id)
            finally:
                built.set()

        threading.Thread(target=build, name=f"ogem-vs-index-{store.pk}", daemon=True).start()
        return loaded
