"""Where a store's vectors are searched: one interface (`VectorBackend`), a backend per store
(chosen when the store is created, from OGEM_VECTOR_STORES_BACKEND)."""

from __future__ import annotations

from vector_stores.backends.base import VectorBackend
from vector_stores.models import Backend


def backend_get(name: str) -> VectorBackend:
    if name == Backend.CHROMA:
        from vector_stores.backends.chroma import ChromaBackend

        return ChromaBackend.shared()
    from vector_stores.backends.builtin import BuiltinBackend

    return BuiltinBackend.shared()
