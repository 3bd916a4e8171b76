"""The interface of a vector backend. Every method blocks (database, HTTP): call them from a
worker thread or a Celery task, never on the event loop.

Labels are the chunks' primary keys; a chunk's text and file are rows of `VectorChunk`
whatever the backend, so a backend keeps vectors (and their file, for filters) only.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from vector_stores.models import VectorStore


class VectorBackend(Protocol):
    # Whether the vectors live in VectorChunk.vector (the rows are then the whole truth).
    vectors_in_rows: bool

    def vectors_add(
        self, *, store: VectorStore, file_pk: int, labels: list[int], vectors: np.ndarray
    ) -> None:
        """Store a file's chunk vectors (labels already committed as rows)."""

    def vectors_remove(self, *, store: VectorStore, file_pk: int) -> None:
        """Forget a file's vectors; idempotent."""

    def store_drop(self, *, store: VectorStore) -> None:
        """Forget every vector of the store; idempotent."""

    def search(
        self,
        *,
        store: VectorStore,
        vector: np.ndarray,
        k: int,
        file_pks: Collection[int] | None,
    ) -> list[tuple[int, float]]:
        """The k nearest chunks as (label, cosine similarity), best first; with `file_pks`,
        only chunks of those files."""
