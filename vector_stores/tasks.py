"""Celery tasks of vector stores: thin wrappers over its services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="vector_stores.tasks.vector_store_file_index", ignore_result=True)
def vector_store_file_index(store_file_pk: int) -> str:
    """Chunk, embed and store one attached file; idempotent (vector_stores/indexing.py)."""
    # Imported on use: the services load the gateway's pipeline and every provider adapter.
    from vector_stores.indexing import store_file_index

    return store_file_index(store_file_pk=store_file_pk)
