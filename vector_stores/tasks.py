"""Celery tasks of vector stores: thin wrappers over its services."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="vector_stores.tasks.vector_store_file_index", ignore_result=True)
def vector_store_file_index(store_file_pk: int) -> str:
    """Chunk, embed and store one attached file; idempotent (vector_stores/indexing.py)."""
    # Imported on use: the services load the gateway's pipeline and every provider adapter.
    from vector_stores.indexing import store_file_index
    from vector_stores.upstream import REPOLL_COUNTDOWN, Pending

    try:
        return store_file_index(store_file_pk=store_file_pk)
    except Pending:
        # Still indexing at the provider (the `openai` backend): looked at again later.
        vector_store_file_index.apply_async((store_file_pk,), countdown=REPOLL_COUNTDOWN)
        return "in_progress"
