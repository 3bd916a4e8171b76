"""Vector stores passed through to an OpenAI (or Azure OpenAI) account (the `openai` backend,
docs/vector-stores.md): the store lives at the provider, whose API providers/openai/
vector_stores.py speaks; Ogem keeps its own row (its id, tenant, files and their status), so
the ids a client sees stay Ogem's and another tenant's store stays a 404.

The account is that of the model group OGEM_VECTOR_STORES_OPENAI_MODEL's first OpenAI or Azure
OpenAI deployment (by priority), chosen when the store is created and kept with it. Every call
blocks (httpx): a view's worker thread or a Celery task runs it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.db import transaction
from django.db.models import F

from files.selectors import file_open
from gateway.errors import GatewayError
from gateway.registry import registry_get
from providers.base import Deployment
from providers.openai.vector_stores import PROVIDERS, OpenAIVectorStores
from providers.registry import vector_store_api_get
from vector_stores.models import FileStatus, VectorStore, VectorStoreFile

logger = logging.getLogger(__name__)

# How long one indexing task waits for the provider to index a file (polling it), before it
# queues itself again to look later.
POLL_SECONDS = 60.0
POLL_INTERVAL = 0.5
REPOLL_COUNTDOWN = 10
# OpenAI's own bound on a file.
UPLOAD_MAX_BYTES = 512 * 1024 * 1024
_LAST_ERROR_CODES = ("server_error", "unsupported_file", "invalid_file")


class Pending(Exception):
    """The provider is still indexing the file: look again later."""


def passthrough_deployment(*, model: str) -> Deployment:
    """The model group's first OpenAI or Azure OpenAI deployment, by priority."""
    deployments = sorted(
        (d for d in registry_get().by_model.get(model, ()) if d.provider in PROVIDERS),
        key=lambda d: (d.priority, d.id),
    )
    if not deployments:
        raise GatewayError(
            f"Vector stores are passed through to OpenAI, but the model group `{model}` "
            "(OGEM_VECTOR_STORES_OPENAI_MODEL) has no OpenAI or Azure OpenAI deployment.",
            status=503,
            code="vector_store_unavailable",
            headers={"Retry-After": "30"},
        )
    return deployments[0]


def _api(model: str) -> OpenAIVectorStores:
    found = vector_store_api_get(passthrough_deployment(model=model))
    assert found is not None  # an OpenAI or Azure deployment (passthrough_deployment)
    return found


def store_api(*, store: VectorStore) -> OpenAIVectorStores:
    return _api(store.embedding_model)


def upstream_store_create(
    *, model: str, name: str, metadata: dict[str, str], expires_after_days: int | None
) -> str:
    """Create the store at the provider; its upstream id."""
    api = _api(model)
    answer = api.store_create(name=name, metadata=metadata, expires_after_days=expires_after_days)
    return str(answer["id"])


def upstream_store_drop(*, store: VectorStore, file_ids: list[str]) -> None:
    """Delete the store at the provider and the files Ogem uploaded for it."""
    api = store_api(store=store)
    if store.upstream_id:
        api.store_delete(store_id=store.upstream_id)
    for file_id in file_ids:
        api.file_delete(file_id=file_id)


def upstream_file_drop(*, store: VectorStore, file_id: str) -> None:
    """Detach a file from the provider's store and delete the copy Ogem uploaded."""
    api = store_api(store=store)
    if store.upstream_id:
        api.store_file_delete(store_id=store.upstream_id, file_id=file_id)
    api.file_delete(file_id=file_id)


def _chunking(store_file: VectorStoreFile) -> dict[str, Any]:
    return {
        "type": "static",
        "static": {
            "max_chunk_size_tokens": store_file.max_chunk_size_tokens,
            "chunk_overlap_tokens": store_file.chunk_overlap_tokens,
        },
    }


def upstream_file_index(*, store_file: VectorStoreFile) -> str:
    """Forward one attached file (once: its upstream id is kept as soon as it is uploaded),
    then follow the provider's indexing until it ends or POLL_SECONDS pass (Pending)."""
    store = store_file.store
    api = store_api(store=store)
    if not store_file.upstream_file_id:
        source = store_file.source
        if source is None:
            return _end(store_file, None, "invalid_file", "The file was deleted before indexing.")
        if source.bytes > UPLOAD_MAX_BYTES:
            return _end(
                store_file, None, "invalid_file", f"The file is past {UPLOAD_MAX_BYTES} bytes."
            )
        with file_open(file=source) as stream:
            upstream_file_id = api.file_upload(filename=store_file.filename, stream=stream)
        # Kept now: a redelivered task attaches this upload, never uploads again.
        VectorStoreFile.objects.filter(pk=store_file.pk).update(upstream_file_id=upstream_file_id)
        store_file.upstream_file_id = upstream_file_id
        api.store_file_attach(
            store_id=store.upstream_id,
            file_id=upstream_file_id,
            attributes=store_file.attributes,
            chunking_strategy=_chunking(store_file),
        )
    deadline = time.monotonic() + POLL_SECONDS
    while True:
        answer = api.store_file_get(store_id=store.upstream_id, file_id=store_file.upstream_file_id)
        status = str(answer.get("status") or "")
        if status == "completed":
            return _end(store_file, answer, None, "")
        if status in ("failed", "cancelled"):
            error = answer.get("last_error") or {}
            code = str(error.get("code") or "server_error")
            message = str(error.get("message") or "The provider could not index the file.")
            if status == "cancelled":
                return _end(store_file, answer, "cancelled", "")
            return _end(
                store_file, answer, code if code in _LAST_ERROR_CODES else "server_error", message
            )
        if time.monotonic() > deadline:
            raise Pending()
        time.sleep(POLL_INTERVAL)


def _end(
    store_file: VectorStoreFile, answer: dict[str, Any] | None, code: str | None, message: str
) -> str:
    """Write the file's final status (if it still waits for one) and its usage."""
    usage = int((answer or {}).get("usage_bytes") or 0)
    if code is None:
        status, last_error = FileStatus.COMPLETED, None
    elif code == "cancelled":
        status, last_error = FileStatus.CANCELLED, None
    else:
        status, last_error = FileStatus.FAILED, {"code": code, "message": message}
    with transaction.atomic():
        updated = VectorStoreFile.objects.filter(
            pk=store_file.pk, status=FileStatus.IN_PROGRESS
        ).update(status=status, last_error=last_error, usage_bytes=usage)
        if not updated:
            return "unchanged"
        VectorStore.objects.filter(pk=store_file.store_id).update(
            usage_bytes=F("usage_bytes") + usage, index_version=F("index_version") + 1
        )
    return status


def upstream_search(
    *,
    store: VectorStore,
    queries: list[str],
    max_num_results: int,
    filters: dict[str, Any] | None,
    score_threshold: float,
    rewrite_query: bool,
) -> list[dict[str, Any]]:
    """The provider's search of the store, its results given Ogem's file ids and names; a result
    of a file Ogem does not list as completed in the store is left out."""
    body: dict[str, Any] = {
        "query": queries[0] if len(queries) == 1 else queries,
        "max_num_results": max_num_results,
        "rewrite_query": rewrite_query,
    }
    if filters is not None:
        body["filters"] = filters
    if score_threshold:
        body["ranking_options"] = {"score_threshold": score_threshold}
    answer = store_api(store=store).search(store_id=store.upstream_id, body=body)
    found = [row for row in answer.get("data") or [] if isinstance(row, dict)]
    files = {
        upstream: (file_id, filename, attributes)
        for upstream, file_id, filename, attributes in store.files.filter(
            status=FileStatus.COMPLETED,
            upstream_file_id__in=[str(row.get("file_id")) for row in found],
        ).values_list("upstream_file_id", "file_id", "filename", "attributes")
    }
    results = []
    for row in found:
        known = files.get(str(row.get("file_id")))
        if known is None:
            continue
        file_id, filename, attributes = known
        content = [
            {"type": "text", "text": str(part.get("text") or "")}
            for part in row.get("content") or []
            if isinstance(part, dict) and part.get("type") == "text"
        ]
        results.append(
            {
                "file_id": file_id,
                "filename": filename,
                "score": min(1.0, max(0.0, float(row.get("score") or 0.0))),
                "attributes": attributes or {},
                "content": content,
            }
        )
    return results
