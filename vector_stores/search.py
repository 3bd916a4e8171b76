"""Search of vector stores, for /v1/vector_stores/{id}/search and for other code (the Responses
API's `file_search`, an Assistants run): `vector_stores_search`.

The query is embedded as the caller (the searcher pays for it) by each store's embedding model
group; each store's backend gives its nearest chunks among the files that pass `filters`; the
best `max_num_results` over every store, at `score_threshold` or above, come back in OpenAI's
search-result shape.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cachetools import LRUCache
from django.utils import timezone

from gateway.blocking import blocking_run
from gateway.context import Caller
from gateway.errors import GatewayError, InvalidRequestError
from vector_stores.backends import backend_get
from vector_stores.embed import EmbeddingFailed, texts_embed
from vector_stores.filters import filters_check, filters_match
from vector_stores.models import Backend, FileStatus, VectorChunk, VectorStore
from vector_stores.selectors import store_get_visible
from vector_stores.services import store_touch
from vector_stores.upstream import upstream_search

logger = logging.getLogger(__name__)

MAX_RESULTS = 50


@dataclass(slots=True)
class _Target:
    store: VectorStore
    # Completed files passing the filter: pk -> (file_id, filename, attributes).
    files: dict[int, tuple[str, str, dict[str, Any] | None]]
    filtered: bool


# Each store's searchable files (completed: pk -> (file_id, filename, attributes)) at a version
# of the store: a search of an unchanged store reads only the store's row. Kept with the store's
# `store_id` and creation time as well as its version: its primary key may name another store
# later (ids restart when tables are made again, or a database is flushed or restored).
_FileTable = dict[int, tuple[str, str, dict[str, Any] | None]]
_Stamp = tuple[str, datetime, int]
_files_cache: LRUCache[int, tuple[_Stamp, _FileTable]] = LRUCache(maxsize=1024)
_files_lock = threading.Lock()


def _files_of(store: VectorStore) -> _FileTable:
    stamp = (store.store_id, store.created_at, store.index_version)
    with _files_lock:
        cached = _files_cache.get(store.pk)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    files = {
        pk: (file_id, filename, attributes)
        for pk, file_id, filename, attributes in store.files.filter(
            status=FileStatus.COMPLETED
        ).values_list("pk", "file_id", "filename", "attributes")
    }
    with _files_lock:
        _files_cache[store.pk] = (stamp, files)
    return files


def _targets(
    *, caller: Caller, vector_store_ids: list[str], filters: dict[str, Any] | None
) -> list[_Target]:
    targets = []
    for store_id in dict.fromkeys(vector_store_ids):
        store = store_get_visible(caller=caller, store_id=store_id)
        if store.expires_at is not None and store.expires_at <= timezone.now():
            raise InvalidRequestError(
                f"Vector store {store_id} has expired.", param="vector_store_id", code="expired"
            )
        files = _files_of(store)
        if filters is not None:
            files = {pk: row for pk, row in files.items() if filters_match(filters, row[2])}
        store_touch(store=store)
        targets.append(_Target(store=store, files=files, filtered=filters is not None))
    return targets


def _stores_check(*, caller: Caller, vector_store_ids: list[str]) -> None:
    for store_id in dict.fromkeys(vector_store_ids):
        store = store_get_visible(caller=caller, store_id=store_id)
        if store.expires_at is not None and store.expires_at <= timezone.now():
            raise InvalidRequestError(
                f"Vector store {store_id} has expired.", param="vector_store_id", code="expired"
            )


async def vector_stores_check(*, caller: Caller, vector_store_ids: list[str]) -> None:
    """The errors a search of these stores would meet first (a store of another tenant: 404,
    an expired one: 400), raised before a streamed or background response starts."""
    await blocking_run(_stores_check, caller=caller, vector_store_ids=vector_store_ids)


def _nearest(*, target: _Target, vectors: Any, k: int) -> dict[int, float]:
    """The store's best chunks for any of the queries: label -> best similarity."""
    if target.store.dimensions is None or not target.files:
        return {}
    best: dict[int, float] = {}
    try:
        backend = backend_get(target.store.backend)
        for vector in vectors:
            for label, score in backend.search(
                store=target.store,
                vector=vector,
                k=k,
                file_pks=list(target.files) if target.filtered else None,
            ):
                if score > best.get(label, -2.0):
                    best[label] = score
    except Exception as exc:
        # An external backend away (Chroma down): the caller may retry, as with any upstream.
        logger.warning("vector store %s: search failed (%r)", target.store.store_id, exc)
        raise GatewayError(
            "The vector store's backend is unavailable; retry shortly.",
            status=503,
            code="vector_store_unavailable",
            headers={"Retry-After": "1"},
        ) from exc
    return best


def _hydrated(
    *, found: list[tuple[int, float, _Target]], k: int, score_threshold: float
) -> list[dict[str, Any]]:
    # OpenAI's scores are from 0 to 1: a negative cosine (an unrelated chunk) scores 0.
    found = [
        (label, min(1.0, max(0.0, score)), target)
        for label, score, target in found
        if max(0.0, score) >= score_threshold
    ]
    found.sort(key=lambda item: -item[1])
    labels = [label for label, _, _ in found[: k * 2]]
    rows = {
        pk: (file_pk, text)
        for pk, file_pk, text in VectorChunk.objects.filter(pk__in=labels).values_list(
            "pk", "store_file_id", "text"
        )
    }
    results = []
    for label, score, target in found:
        row = rows.get(label)
        # A chunk deleted since the index saw it, or one of a file no longer searchable.
        if row is None or row[0] not in target.files:
            continue
        file_id, filename, attributes = target.files[row[0]]
        results.append(
            {
                "file_id": file_id,
                "filename": filename,
                "score": score,
                "attributes": attributes or {},
                "content": [{"type": "text", "text": row[1]}],
            }
        )
        if len(results) == k:
            break
    return results


def _search_blocking(
    *, targets: list[_Target], vectors: Any, k: int, score_threshold: float
) -> list[dict[str, Any]]:
    found = []
    for target in targets:
        for label, score in _nearest(target=target, vectors=vectors, k=k).items():
            found.append((label, score, target))
    return _hydrated(found=found, k=k, score_threshold=score_threshold)


async def vector_stores_search(
    *,
    caller: Caller,
    vector_store_ids: list[str],
    query: str | list[str],
    max_num_results: int = 10,
    filters: dict | None = None,
    score_threshold: float = 0.0,
    rewrite_query: bool = False,
) -> list[dict]:
    """The best chunks of the caller's stores for `query` (a string, or several searched
    together), as OpenAI's search results (`file_id`, `filename`, `score`, `attributes`,
    `content`). A store of another tenant is a 404 (a GatewayError); a failed query embedding
    is the embedding call's error."""
    queries = [query] if isinstance(query, str) else list(query)
    if not queries or not all(isinstance(q, str) and q.strip() for q in queries):
        raise InvalidRequestError("`query` must be a non-empty string.", param="query")
    if not 1 <= max_num_results <= MAX_RESULTS:
        raise InvalidRequestError(
            f"`max_num_results` must be from 1 to {MAX_RESULTS}.", param="max_num_results"
        )
    filters = filters_check(filters)
    targets = await blocking_run(
        _targets, caller=caller, vector_store_ids=vector_store_ids, filters=filters
    )
    results: list[dict[str, Any]] = []
    by_model: dict[str, list[_Target]] = {}
    for target in targets:
        if target.store.backend == Backend.OPENAI:
            # Searched by the provider (vector_stores/upstream.py): nothing embedded here.
            results += await blocking_run(
                upstream_search,
                store=target.store,
                queries=queries,
                max_num_results=max_num_results,
                filters=filters,
                score_threshold=score_threshold,
                rewrite_query=rewrite_query,
            )
            continue
        by_model.setdefault(target.store.embedding_model, []).append(target)
    for model, group in by_model.items():
        if not any(target.files and target.store.dimensions for target in group):
            continue
        try:
            vectors = await texts_embed(caller=caller, model=model, texts=queries)
        except EmbeddingFailed as failure:
            raise QueryEmbeddingError(failure) from None
        results += await blocking_run(
            _search_blocking,
            targets=group,
            vectors=vectors,
            k=max_num_results,
            score_threshold=score_threshold,
        )
    results.sort(key=lambda item: -item["score"])
    return results[:max_num_results]


class QueryEmbeddingError(GatewayError):
    """The query could not be embedded: the caller gets the embedding call's own answer (a
    budget or rate limit of theirs, say), status and body."""

    def __init__(self, failure: EmbeddingFailed) -> None:
        super().__init__(str(failure), status=failure.status)
        self.body = failure.body

    def to_body(self) -> dict[str, Any]:
        return self.body if isinstance(self.body.get("error"), dict) else super().to_body()
