"""Writes of vector stores, their files and batches. An attached file is indexed once its row is
committed, by a Celery task (vector_stores/indexing.py)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from files.selectors import file_get_visible
from gateway.context import Caller
from gateway.errors import RequestTooLargeError
from vector_stores.backends import backend_get
from vector_stores.chunking import Chunking
from vector_stores.live import store_progress_publish
from vector_stores.models import (
    Backend,
    FileStatus,
    VectorChunk,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileBatch,
)
from vector_stores.selectors import tenant_usage_bytes
from vector_stores.upstream import (
    store_api,
    upstream_file_drop,
    upstream_store_create,
    upstream_store_drop,
)

logger = logging.getLogger(__name__)


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


@dataclass(frozen=True, slots=True)
class FileSpec:
    """One file to attach: its id, attributes and chunking."""

    file_id: str
    attributes: dict[str, Any] | None = None
    chunking: Chunking = field(default_factory=Chunking)


def _expires_at(store: VectorStore) -> None:
    days = store.expires_after_days
    store.expires_at = store.last_active_at + timedelta(days=days) if days else None


def store_create(
    *,
    caller: Caller,
    name: str,
    metadata: dict[str, str],
    expires_after_days: int | None,
    files: list[FileSpec],
) -> VectorStore:
    """A new store of `caller`'s tenant, with `files` attached (indexed once committed)."""
    now = timezone.now()
    backend = settings.OGEM_VECTOR_STORES_BACKEND
    model = settings.OGEM_VECTOR_STORES_EMBEDDING_MODEL
    upstream_id = ""
    if backend == Backend.OPENAI:
        # Created at the provider first: a store Ogem lists always has one there.
        model = settings.OGEM_VECTOR_STORES_OPENAI_MODEL
        upstream_id = upstream_store_create(
            model=model, name=name[:512], metadata=metadata, expires_after_days=expires_after_days
        )
    store = VectorStore(
        store_id=_new_id("vs_"),
        upstream_id=upstream_id,
        organization_id=caller.organization_id,
        team_id=caller.team_id,
        key_id=caller.key_id,
        by_master=caller.is_master,
        name=name[:512],
        metadata=metadata,
        backend=backend,
        embedding_model=model,
        created_at=now,
        last_active_at=now,
        expires_after_days=expires_after_days,
    )
    _expires_at(store)
    try:
        with transaction.atomic():
            store.save()
            for spec in files:
                store_file_attach(caller=caller, store=store, spec=spec)
    except Exception:
        if upstream_id:  # a file refused (404, 413): the provider's store goes too
            _quietly(upstream_store_drop, store=store, file_ids=[])
        raise
    return store


def store_update(
    *,
    store: VectorStore,
    name: str | None = None,
    metadata: dict[str, str] | None = None,
    expires_after_days: int | bool | None = False,
) -> VectorStore:
    """`expires_after_days`: False leaves it, None removes it, a number sets it."""
    fields = []
    if name is not None:
        store.name = name[:512]
        fields.append("name")
    if metadata is not None:
        store.metadata = metadata
        fields.append("metadata")
    if expires_after_days is not False:
        store.expires_after_days = expires_after_days  # type: ignore[assignment]
        _expires_at(store)
        fields += ["expires_after_days", "expires_at"]
    if fields:
        if store.backend == Backend.OPENAI and store.upstream_id:
            upstream: dict[str, Any] = {}
            if name is not None:
                upstream["name"] = store.name
            if metadata is not None:
                upstream["metadata"] = metadata
            if expires_after_days is not False:
                upstream["expires_after"] = (
                    {"anchor": "last_active_at", "days": expires_after_days}
                    if expires_after_days
                    else None
                )
            store_api(store=store).store_update(store_id=store.upstream_id, body=upstream)
        store.save(update_fields=fields)
    return store


def store_touch(*, store: VectorStore) -> None:
    """Mark the store active now (a search), moving its expiry; at most once a minute."""
    now = timezone.now()
    if now - store.last_active_at < timedelta(minutes=1):
        return
    store.last_active_at = now
    _expires_at(store)
    VectorStore.objects.filter(pk=store.pk).update(last_active_at=now, expires_at=store.expires_at)


def store_delete(*, store: VectorStore) -> None:
    """The rows now (chunks by cascade), the backend's vectors once committed."""
    backend = backend_get(store.backend)
    uploaded = list(
        store.files.exclude(upstream_file_id="").values_list("upstream_file_id", flat=True)
    )
    with transaction.atomic():
        store.delete()
        if store.backend == Backend.OPENAI:
            transaction.on_commit(
                lambda: _quietly(upstream_store_drop, store=store, file_ids=uploaded)
            )
        else:
            transaction.on_commit(lambda: _quietly(backend.store_drop, store=store))


def _quietly(function: Any, **kwargs: Any) -> None:
    try:
        function(**kwargs)
    except Exception:
        # The rows are gone, so nothing searches these vectors again; they are only space.
        logger.exception("vector store backend clean-up failed")


def store_file_attach(
    *,
    caller: Caller,
    store: VectorStore,
    spec: FileSpec,
    batch: VectorStoreFileBatch | None = None,
) -> VectorStoreFile:
    """Attach a /v1/files file of the caller's tenant (404 otherwise) and index it once
    committed. Attaching a file already there answers the one there (as OpenAI does). Over the
    tenant's storage bound (OGEM_VECTOR_STORES_MAX_BYTES), 413 and nothing is attached."""
    file = file_get_visible(caller=caller, file_id=spec.file_id)
    existing = store.files.filter(file_id=file.file_id).first()
    if existing is not None:
        return existing
    limit = settings.OGEM_VECTOR_STORES_MAX_BYTES
    used = tenant_usage_bytes(store=store)
    if used + file.bytes > limit:
        raise RequestTooLargeError(
            f"This file ({file.bytes} bytes) would take the vector storage of your organization "
            f"past its limit of {limit} bytes ({used} in use).",
        )
    with transaction.atomic():
        store_file = VectorStoreFile.objects.create(
            store=store,
            file_id=file.file_id,
            source=file,
            filename=file.filename,
            batch=batch,
            max_chunk_size_tokens=spec.chunking.max_tokens,
            chunk_overlap_tokens=spec.chunking.overlap_tokens,
            attributes=spec.attributes,
            created_at=timezone.now(),
        )
        pk = store_file.pk
        # Published first: a page sees the file in progress even when indexing runs eagerly.
        store_progress_publish(store_pk=store.pk)
        transaction.on_commit(lambda: _index_enqueue(pk))
    return store_file


def _index_enqueue(store_file_pk: int) -> None:
    from vector_stores.tasks import vector_store_file_index

    vector_store_file_index.delay(store_file_pk)


def store_file_update(*, store_file: VectorStoreFile, attributes: dict[str, Any] | None) -> None:
    """New attributes; the store's version moves, so every worker's searches see them."""
    store = store_file.store
    if store.backend == Backend.OPENAI and store_file.upstream_file_id:
        store_api(store=store).store_file_update(
            store_id=store.upstream_id, file_id=store_file.upstream_file_id, attributes=attributes
        )
    with transaction.atomic():
        store_file.attributes = attributes
        store_file.save(update_fields=["attributes"])
        VectorStore.objects.filter(pk=store_file.store_id).update(
            index_version=F("index_version") + 1
        )


def store_file_delete(*, store_file: VectorStoreFile) -> None:
    """Detach the file: its chunks and their usage go, the /v1/files file stays."""
    store = store_file.store
    backend = backend_get(store.backend)
    with transaction.atomic():
        locked = VectorStore.objects.select_for_update().get(pk=store.pk)
        VectorChunk.objects.filter(store_file=store_file).delete()
        VectorStore.objects.filter(pk=locked.pk).update(
            usage_bytes=F("usage_bytes") - store_file.usage_bytes,
            index_version=F("index_version") + 1,
        )
        file_pk = store_file.pk
        upstream_file_id = store_file.upstream_file_id
        store_file.delete()
        if store.backend == Backend.OPENAI:
            if upstream_file_id:
                transaction.on_commit(
                    lambda: _quietly(upstream_file_drop, store=locked, file_id=upstream_file_id)
                )
        else:
            transaction.on_commit(
                lambda: _quietly(backend.vectors_remove, store=locked, file_pk=file_pk)
            )


def batch_create(
    *, caller: Caller, store: VectorStore, files: list[FileSpec]
) -> VectorStoreFileBatch:
    with transaction.atomic():
        batch = VectorStoreFileBatch.objects.create(
            batch_id=_new_id("vsfb_"), store=store, created_at=timezone.now()
        )
        for spec in files:
            store_file_attach(caller=caller, store=store, spec=spec, batch=batch)
    return batch


def batch_cancel(*, batch: VectorStoreFileBatch) -> VectorStoreFileBatch:
    """Files of the batch not yet indexed are cancelled, those done stay; a batch with nothing
    left to cancel stays as it is."""
    with transaction.atomic():
        waiting = batch.files.filter(status=FileStatus.IN_PROGRESS)
        forwarded = list(
            waiting.exclude(upstream_file_id="").values_list("upstream_file_id", flat=True)
        )
        stopped = waiting.update(status=FileStatus.CANCELLED)
        store = batch.store
        for upstream_file_id in forwarded if store.backend == Backend.OPENAI else []:
            # Forwarded already: detached (and deleted) at the provider too.
            transaction.on_commit(
                lambda file_id=upstream_file_id: _quietly(  # type: ignore[misc]
                    upstream_file_drop, store=store, file_id=file_id
                )
            )
        if stopped:
            batch.cancelled = True
            batch.save(update_fields=["cancelled"])
            store_progress_publish(store_pk=batch.store_id)
    return batch


def batch_status(*, batch: VectorStoreFileBatch, counts: dict[str, int]) -> str:
    if counts["in_progress"]:
        return "in_progress"
    if batch.cancelled:
        return "cancelled"
    if counts["total"] and counts["failed"] == counts["total"]:
        return "failed"
    return "completed"
