"""Indexing one attached file (the Celery task vector_stores/tasks.py runs): read it from the
files storage, chunk it, embed the chunks as the store's owner, store them (and their vectors in
the store's backend). Idempotent: it runs only for a file still `in_progress`, and writes its
result in one transaction, so a run again after a crash starts over cleanly."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings
from django.db import transaction

from files.models import File
from files.selectors import file_chunks
from gateway.context import Caller
from gateway.errors import GatewayError
from vector_stores.backends import backend_get
from vector_stores.chunking import Chunking, text_chunks
from vector_stores.embed import EmbeddingFailed, texts_embed
from vector_stores.extract import UnsupportedFile, file_text
from vector_stores.live import store_progress_publish
from vector_stores.models import Backend, FileStatus, VectorChunk, VectorStore, VectorStoreFile
from vector_stores.selectors import tenant_usage_bytes
from vector_stores.upstream import Pending, upstream_file_index

logger = logging.getLogger(__name__)

# The bytes a chunk's row costs besides its text and vector (ids, position): counted in
# `usage_bytes` as a fixed overhead.
_CHUNK_OVERHEAD = 32
# A file's text is read whole to be chunked.
TEXT_MAX_BYTES = 64 * 1024 * 1024


class _Failed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def store_file_index(*, store_file_pk: int) -> str:
    """Index one attached file, if it still waits for it; its final status."""
    store_file = (
        VectorStoreFile.objects.select_related("store", "source").filter(pk=store_file_pk).first()
    )
    if store_file is None:
        return "gone"
    if store_file.status != FileStatus.IN_PROGRESS:
        return store_file.status
    status = _index(store_file)
    # The portal's page of vector stores follows it (after commit: there is none open here).
    store_progress_publish(store_pk=store_file.store_id)
    return status


def _index(store_file: VectorStoreFile) -> str:
    if store_file.store.backend == Backend.OPENAI:
        return _index_upstream(store_file)
    try:
        texts = _file_texts(store_file)
        vectors = _embedded(store_file.store, texts) if texts else None
        return _chunks_write(store_file, texts, vectors)
    except _Failed as failure:
        return _fail(store_file, code=failure.code, message=failure.message)
    except Exception:
        logger.exception("indexing %s failed", store_file)
        return _fail(store_file, code="server_error", message="The file could not be indexed.")


def _index_upstream(store_file: VectorStoreFile) -> str:
    """Forwarded to the provider, which indexes it (vector_stores/upstream.py). Its failure to
    answer (or an answer refusing the file) fails the file, like an embedding call's."""
    try:
        return upstream_file_index(store_file=store_file)
    except Pending:
        raise
    except GatewayError as failure:
        code = "invalid_file" if failure.status in (400, 413, 415, 422) else "server_error"
        return _fail(store_file, code=code, message=f"The provider refused it: {failure}")
    except Exception:
        logger.exception("forwarding %s failed", store_file)
        return _fail(store_file, code="server_error", message="The file could not be indexed.")


def _file_texts(store_file: VectorStoreFile) -> list[str]:
    file: File | None = store_file.source
    if file is None:
        raise _Failed("invalid_file", "The file was deleted before it could be indexed.")
    if file.bytes > TEXT_MAX_BYTES:
        raise _Failed("invalid_file", f"The file is larger than {TEXT_MAX_BYTES} bytes.")
    raw = b"".join(file_chunks(file=file))
    try:
        text = file_text(raw, max_chars=TEXT_MAX_BYTES)
    except UnsupportedFile as unsupported:
        raise _Failed("unsupported_file", unsupported.message) from None
    chunking = Chunking(
        max_tokens=store_file.max_chunk_size_tokens,
        overlap_tokens=store_file.chunk_overlap_tokens,
    )
    return text_chunks(text, chunking=chunking)


def _embedded(store: VectorStore, texts: list[str]) -> Any:
    loop = asyncio.new_event_loop()
    try:
        caller = loop.run_until_complete(store_owner(store=store))
        if caller is None:
            raise _Failed("server_error", "The key that created this vector store is gone.")
        return loop.run_until_complete(
            texts_embed(caller=caller, model=store.embedding_model, texts=texts)
        )
    except EmbeddingFailed as failure:
        raise _Failed("server_error", f"Embedding failed: {failure}") from None
    finally:
        loop.close()


async def store_owner(*, store: VectorStore) -> Caller | None:
    """The Caller the store's embeddings are made as: the key that created it."""
    from gateway.auth import caller_by_key_id  # on use: it loads the key cache and Redis

    if store.by_master:
        return Caller(is_master=True)
    if store.key_id is None:
        return None
    return await caller_by_key_id(key_id=store.key_id)


def _chunks_write(store_file: VectorStoreFile, texts: list[str], vectors: Any) -> str:
    backend = backend_get(store_file.store.backend)
    dimensions = int(vectors.shape[1]) if vectors is not None else None
    with transaction.atomic():
        store = VectorStore.objects.select_for_update().get(pk=store_file.store_id)
        current = VectorStoreFile.objects.select_for_update().get(pk=store_file.pk)
        if current.status != FileStatus.IN_PROGRESS:  # cancelled (or done) meanwhile
            return current.status
        if dimensions is not None and store.dimensions not in (None, dimensions):
            raise _Failed(
                "server_error",
                f"The embedding model answered {dimensions} dimensions; this store holds "
                f"{store.dimensions}.",
            )
        usage = sum(len(text.encode()) + _CHUNK_OVERHEAD for text in texts)
        if dimensions is not None:
            usage += len(texts) * dimensions * 4
        limit = settings.OGEM_VECTOR_STORES_MAX_BYTES
        if tenant_usage_bytes(store=store) + usage > limit:
            raise _Failed(
                "invalid_file",
                f"Indexed, this file would take {usage} bytes: past the vector storage limit "
                f"of {limit} bytes of your organization.",
            )
        # A run is all or nothing (this transaction), so no earlier run left chunks; a guard
        # all the same, for the idempotence the task promises.
        VectorChunk.objects.filter(store_file=current).delete()
        rows = [
            VectorChunk(
                store_id=store.pk,
                store_file=current,
                position=position,
                text=text,
                vector=vectors[position].astype("<f4").tobytes()
                if backend.vectors_in_rows
                else b"",
            )
            for position, text in enumerate(texts)
        ]
        created = VectorChunk.objects.bulk_create(rows, batch_size=1000)
        if not backend.vectors_in_rows and created:
            # Inside the transaction: a backend failure rolls the chunks back and fails the file.
            backend.vectors_add(
                store=store,
                file_pk=current.pk,
                labels=[row.pk for row in created],
                vectors=vectors,
            )
        current.status = FileStatus.COMPLETED
        current.usage_bytes = usage
        current.last_error = None
        current.save(update_fields=["status", "usage_bytes", "last_error"])
        store.usage_bytes += usage
        store.index_version += 1
        if store.dimensions is None and dimensions is not None:
            store.dimensions = dimensions
        store.save(update_fields=["usage_bytes", "index_version", "dimensions"])
    return FileStatus.COMPLETED


def _fail(store_file: VectorStoreFile, *, code: str, message: str) -> str:
    updated = VectorStoreFile.objects.filter(
        pk=store_file.pk, status=FileStatus.IN_PROGRESS
    ).update(status=FileStatus.FAILED, last_error={"code": code, "message": message})
    return FileStatus.FAILED if updated else "unchanged"
