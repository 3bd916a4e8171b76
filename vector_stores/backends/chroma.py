"""The Chroma backend: a store's vectors in a collection of a Chroma server
(OGEM_VECTOR_STORES_CHROMA_URL), by cosine distance; a filter's files become a `$in` on each
vector's `file` metadata. The chunks' text stays in Ogem's database, as with the built-in backend.

The `chromadb` client is imported on first use: a process whose stores are all built-in never
loads it (`pip install chromadb-client`, or `chromadb` which also brings the server).
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from django.conf import settings

if TYPE_CHECKING:
    import numpy as np

    from vector_stores.models import VectorStore

_ADD_BATCH = 1000


def collection_name(store: VectorStore) -> str:
    # Chroma's names: 3 to 512 characters of [a-zA-Z0-9.-], starting and ending alphanumeric.
    return "ogem-" + store.store_id.replace("_", "-")


class ChromaBackend:
    vectors_in_rows = False
    _shared: ClassVar[ChromaBackend | None] = None
    _shared_lock = threading.Lock()

    def __init__(self, url: str) -> None:
        import chromadb

        parts = urlsplit(url)
        self.url = url
        self._client = chromadb.HttpClient(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (443 if parts.scheme == "https" else 8000),
            ssl=parts.scheme == "https",
        )

    @classmethod
    def shared(cls) -> ChromaBackend:
        url = settings.OGEM_VECTOR_STORES_CHROMA_URL
        with cls._shared_lock:
            if cls._shared is None or cls._shared.url != url:
                cls._shared = cls(url)
            return cls._shared

    def _collection(self, store: VectorStore) -> Any:
        return self._client.get_or_create_collection(
            collection_name(store),
            configuration={"hnsw": {"space": "cosine"}},
            embedding_function=None,
        )

    def vectors_add(
        self, *, store: VectorStore, file_pk: int, labels: list[int], vectors: np.ndarray
    ) -> None:
        collection = self._collection(store)
        for start in range(0, len(labels), _ADD_BATCH):
            part = labels[start : start + _ADD_BATCH]
            # upsert: a task run again after a crash writes the same ids again.
            collection.upsert(
                ids=[str(label) for label in part],
                embeddings=vectors[start : start + len(part)].tolist(),
                metadatas=[{"file": file_pk}] * len(part),
            )

    def vectors_remove(self, *, store: VectorStore, file_pk: int) -> None:
        self._collection(store).delete(where={"file": file_pk})

    def store_drop(self, *, store: VectorStore) -> None:
        from chromadb.errors import NotFoundError

        try:
            self._client.delete_collection(collection_name(store))
        except NotFoundError:
            pass

    def search(
        self,
        *,
        store: VectorStore,
        vector: np.ndarray,
        k: int,
        file_pks: Collection[int] | None,
    ) -> list[tuple[int, float]]:
        if file_pks is not None and not file_pks:
            return []
        where = {"file": {"$in": sorted(file_pks)}} if file_pks is not None else None
        found = self._collection(store).query(
            query_embeddings=[vector.tolist()], n_results=k, where=where, include=["distances"]
        )
        ids, distances = found["ids"][0], found["distances"][0]
        # Chroma's cosine distance is 1 - the similarity.
        return [(int(label), 1.0 - float(d)) for label, d in zip(ids, distances, strict=True)]
