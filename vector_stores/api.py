"""/v1/vector_stores (OpenAI's Vector Stores API): stores, their files and file batches, and
search; mounted on the gateway's Ninja API by the URL configuration (`vector_stores_mount`).

The views are thin: they authenticate, check the request, and run the selectors and services in
a worker thread (database, storage and, eagerly in the embedded default, indexing).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI

from files.selectors import file_chunks
from gateway.blocking import blocking_run
from gateway.body import body_read_json, stored_metadata_check
from gateway.errors import InvalidRequestError
from gateway.views.common import list_object, object_answer, object_caller
from vector_stores.chunking import chunking_parse
from vector_stores.filters import attributes_check
from vector_stores.models import FileStatus, VectorStore, VectorStoreFile, VectorStoreFileBatch
from vector_stores.search import MAX_RESULTS, vector_stores_search
from vector_stores.selectors import (
    batch_get_visible,
    file_counts,
    store_file_get,
    store_file_get_visible,
    store_file_page,
    store_get_visible,
    store_page,
    store_status,
)
from vector_stores.services import (
    FileSpec,
    batch_cancel,
    batch_create,
    batch_status,
    store_create,
    store_delete,
    store_file_attach,
    store_file_delete,
    store_file_update,
    store_update,
)

T = TypeVar("T")

LIST_LIMIT_DEFAULT = 20  # OpenAI's default page, from 1 to 100
LIST_LIMIT_MAX = 100
FILE_IDS_MAX = 500  # OpenAI's bound on `file_ids` of a store or a batch


# ---- OpenAI's objects ----------------------------------------------------------------------------


def store_object(store: VectorStore) -> dict[str, Any]:
    counts = file_counts(store.files.all())
    shown: dict[str, Any] = {
        "id": store.store_id,
        "object": "vector_store",
        "created_at": int(store.created_at.timestamp()),
        "name": store.name,
        "usage_bytes": store.usage_bytes,
        "file_counts": counts,
        "status": store_status(store=store, counts=counts),
        "expires_at": int(store.expires_at.timestamp()) if store.expires_at else None,
        "last_active_at": int(store.last_active_at.timestamp()),
        "metadata": store.metadata or {},
    }
    if store.expires_after_days:
        shown["expires_after"] = {"anchor": "last_active_at", "days": store.expires_after_days}
    return shown


def store_file_object(store_file: VectorStoreFile, *, store: VectorStore) -> dict[str, Any]:
    return {
        "id": store_file.file_id,
        "object": "vector_store.file",
        "usage_bytes": store_file.usage_bytes,
        "created_at": int(store_file.created_at.timestamp()),
        "vector_store_id": store.store_id,
        "status": store_file.status,
        "last_error": store_file.last_error,
        "chunking_strategy": {
            "type": "static",
            "static": {
                "max_chunk_size_tokens": store_file.max_chunk_size_tokens,
                "chunk_overlap_tokens": store_file.chunk_overlap_tokens,
            },
        },
        "attributes": store_file.attributes or {},
    }


def batch_object(batch: VectorStoreFileBatch, *, store: VectorStore) -> dict[str, Any]:
    counts = file_counts(batch.files.all())
    return {
        "id": batch.batch_id,
        "object": "vector_store.files_batch",
        "created_at": int(batch.created_at.timestamp()),
        "vector_store_id": store.store_id,
        "status": batch_status(batch=batch, counts=counts),
        "file_counts": counts,
    }


# ---- request fields ------------------------------------------------------------------------------


def _body(request: HttpRequest, fields: set[str]) -> dict[str, Any]:
    body = body_read_json(request).body
    unknown = sorted(set(body) - fields)
    if unknown:
        raise InvalidRequestError(f"Unknown parameter: `{unknown[0]}`.", param=unknown[0])
    return body


def _text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise InvalidRequestError(f"`{name}` must be a string.", param=name)
    return value


def _expires_after(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("anchor") != "last_active_at":
        raise InvalidRequestError(
            "`expires_after` must be an object with `anchor` `last_active_at` and `days`.",
            param="expires_after",
        )
    days = value.get("days")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
        raise InvalidRequestError(
            "`expires_after.days` must be an integer from 1 to 365.", param="expires_after.days"
        )
    return days


def _file_id(value: object, param: str) -> str:
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidRequestError(f"`{param}` must be a file id.", param=param)
    return value


def _file_specs(body: dict[str, Any], *, required: bool) -> list[FileSpec]:
    """`file_ids` (with the request's `attributes` and `chunking_strategy` for each), or
    `files` (each with its own), as OpenAI's create calls take them."""
    file_ids, files = body.get("file_ids"), body.get("files")
    if file_ids is not None and files is not None:
        raise InvalidRequestError("Give `file_ids` or `files`, not both.", param="files")
    attributes = attributes_check(body.get("attributes"))
    chunking = chunking_parse(body.get("chunking_strategy"))
    specs: list[FileSpec] = []
    if files is not None:
        if not isinstance(files, list) or not files:
            raise InvalidRequestError("`files` must be a non-empty array.", param="files")
        for position, item in enumerate(files):
            param = f"files[{position}]"
            if not isinstance(item, dict):
                raise InvalidRequestError(f"`{param}` must be an object.", param=param)
            specs.append(
                FileSpec(
                    file_id=_file_id(item.get("file_id"), f"{param}.file_id"),
                    attributes=attributes_check(
                        item.get("attributes"), param=f"{param}.attributes"
                    ),
                    chunking=chunking_parse(
                        item.get("chunking_strategy"), param=f"{param}.chunking_strategy"
                    ),
                )
            )
    elif file_ids is not None:
        if not isinstance(file_ids, list):
            raise InvalidRequestError("`file_ids` must be an array of file ids.", param="file_ids")
        for position, file_id in enumerate(file_ids):
            specs.append(
                FileSpec(
                    file_id=_file_id(file_id, f"file_ids[{position}]"),
                    attributes=attributes,
                    chunking=chunking,
                )
            )
    if required and not specs:
        raise InvalidRequestError("Missing required parameter: `file_ids`.", param="file_ids")
    if len(specs) > FILE_IDS_MAX:
        raise InvalidRequestError(
            f"At most {FILE_IDS_MAX} files at a time.", param="file_ids", code="too_many_files"
        )
    return specs


def _page(request: HttpRequest) -> tuple[str | None, str | None, int, bool]:
    query = request.GET
    raw = query.get("limit")
    limit = LIST_LIMIT_DEFAULT
    if raw is not None:
        if not raw.isdigit() or not 1 <= int(raw) <= LIST_LIMIT_MAX:
            raise InvalidRequestError(
                f"`limit` must be an integer from 1 to {LIST_LIMIT_MAX}.", param="limit"
            )
        limit = int(raw)
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequestError("`order` must be `asc` or `desc`.", param="order")
    return query.get("after") or None, query.get("before") or None, limit, order == "desc"


def _status_filter(request: HttpRequest) -> str | None:
    status = request.GET.get("filter") or None
    if status is not None and status not in FileStatus.values:
        raise InvalidRequestError(
            f"`filter` must be one of {', '.join(FileStatus.values)}.", param="filter"
        )
    return status


async def _run(function: Callable[..., T], **kwargs: Any) -> T:
    return await blocking_run(function, **kwargs)


# ---- /v1/vector_stores ---------------------------------------------------------------------------


async def stores_create(request: HttpRequest) -> HttpResponse:
    caller = await object_caller(request)
    body = _body(
        request,
        {
            "name",
            "file_ids",
            "files",
            "expires_after",
            "chunking_strategy",
            "metadata",
            "description",
            "attributes",
        },
    )
    name = _text(body.get("name"), "name") or ""
    metadata = stored_metadata_check(body.get("metadata"))
    days = _expires_after(body.get("expires_after"))
    specs = _file_specs(body, required=False)

    def create() -> dict[str, Any]:
        store = store_create(
            caller=caller, name=name, metadata=metadata, expires_after_days=days, files=specs
        )
        store.refresh_from_db()
        return store_object(store)

    return object_answer(request, await _run(create))


async def stores_list(request: HttpRequest) -> HttpResponse:
    caller = await object_caller(request)
    after_id, before_id, limit, descending = _page(request)

    def read() -> dict[str, Any]:
        def cursor(store_id: str | None, param: str) -> VectorStore | None:
            if store_id is None:
                return None
            return store_get_visible(caller=caller, store_id=store_id, param=param)

        rows, more = store_page(
            caller=caller,
            after=cursor(after_id, "after"),
            before=cursor(before_id, "before"),
            limit=limit,
            descending=descending,
        )
        return list_object([store_object(row) for row in rows], more)

    return object_answer(request, await _run(read))


async def stores_retrieve(request: HttpRequest, vector_store_id: str) -> HttpResponse:
    caller = await object_caller(request)

    def read() -> dict[str, Any]:
        return store_object(store_get_visible(caller=caller, store_id=vector_store_id))

    return object_answer(request, await _run(read))


async def stores_modify(request: HttpRequest, vector_store_id: str) -> HttpResponse:
    caller = await object_caller(request)
    body = _body(request, {"name", "expires_after", "metadata"})
    name = _text(body.get("name"), "name")
    metadata = stored_metadata_check(body["metadata"]) if "metadata" in body else None
    days: int | bool | None = False
    if "expires_after" in body:
        days = _expires_after(body["expires_after"])

    def modify() -> dict[str, Any]:
        store = store_get_visible(caller=caller, store_id=vector_store_id)
        return store_object(
            store_update(store=store, name=name, metadata=metadata, expires_after_days=days)
        )

    return object_answer(request, await _run(modify))


async def stores_delete(request: HttpRequest, vector_store_id: str) -> HttpResponse:
    caller = await object_caller(request)

    def delete() -> None:
        store_delete(store=store_get_visible(caller=caller, store_id=vector_store_id))

    await _run(delete)
    return object_answer(
        request, {"id": vector_store_id, "object": "vector_store.deleted", "deleted": True}
    )


async def stores_search(request: HttpRequest, vector_store_id: str) -> HttpResponse:
    caller = await object_caller(request)
    body = _body(
        request, {"query", "rewrite_query", "max_num_results", "filters", "ranking_options"}
    )
    query = body.get("query")
    if isinstance(query, str):
        queries = [query]
    elif isinstance(query, list) and query and all(isinstance(q, str) for q in query):
        queries = query
    else:
        raise InvalidRequestError(
            "`query` must be a string or a non-empty array of strings.", param="query"
        )
    if not isinstance(body.get("rewrite_query", False), bool):
        raise InvalidRequestError("`rewrite_query` must be a boolean.", param="rewrite_query")
    count = body.get("max_num_results", 10)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_RESULTS:
        raise InvalidRequestError(
            f"`max_num_results` must be an integer from 1 to {MAX_RESULTS}.",
            param="max_num_results",
        )
    threshold = _ranking_threshold(body.get("ranking_options"))
    results = await vector_stores_search(
        caller=caller,
        vector_store_ids=[vector_store_id],
        query=queries,
        max_num_results=count,
        filters=body.get("filters"),
        score_threshold=threshold,
        rewrite_query=bool(body.get("rewrite_query", False)),
    )
    return object_answer(
        request,
        {
            "object": "vector_store.search_results.page",
            # Ogem searches with the query as given: `rewrite_query` is accepted, not applied.
            "search_query": queries,
            "data": results,
            "has_more": False,
            "next_page": None,
        },
    )


def _ranking_threshold(value: object) -> float:
    if value is None:
        return 0.0
    if not isinstance(value, dict) or set(value) - {"ranker", "score_threshold"}:
        raise InvalidRequestError(
            "`ranking_options` takes `ranker` and `score_threshold`.", param="ranking_options"
        )
    ranker = value.get("ranker", "auto")
    if ranker not in ("none", "auto", "default-2024-11-15"):
        raise InvalidRequestError(
            "`ranking_options.ranker` must be `none`, `auto` or `default-2024-11-15`.",
            param="ranking_options.ranker",
        )
    threshold = value.get("score_threshold", 0.0)
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 <= threshold <= 1
    ):
        raise InvalidRequestError(
            "`ranking_options.score_threshold` must be a number from 0 to 1.",
            param="ranking_options.score_threshold",
        )
    return float(threshold)


# ---- /v1/vector_stores/{id}/files ----------------------------------------------------------------


async def store_files_create(request: HttpRequest, vector_store_id: str) -> HttpResponse:
    caller = await object_caller(request)
    body = _body(request, {"file_id", "attributes", "chunking_strategy"})
    spec = FileSpec(
        file_id=_file_id(body.get("file_id"), "file_id"),
        attributes=attributes_check(body.get("attributes")),
        chunking=chunking_parse(body.get("chunking_strategy")),
    )

    def create() -> dict[str, Any]:
        store = store_get_visible(caller=caller, store_id=vector_store_id)
        store_file = store_file_attach(caller=caller, store=store, spec=spec)
        store_file.refresh_from_db()
        return store_file_object(store_file, store=store)

    return object_answer(request, await _run(create))


def _files_list(
    request: HttpRequest, vector_store_id: str, batch_id: str | None
) -> Callable[..., dict[str, Any]]:
    after_id, before_id, limit, descending = _page(request)
    status = _status_filter(request)

    def read(caller: Any) -> dict[str, Any]:
        store = store_get_visible(caller=caller, store_id=vector_store_id)
        batch = batch_get_visible(store=store, batch_id=batch_id) if batch_id else None

        def cursor(file_id: str | None, param: str) -> VectorStoreFile | None:
            if file_id is None:
                return None
            found = store_file_get(store=store, file_id=file_id)
            if found is None:
                raise InvalidRequestError(f"No such vector store file: {file_id}", param=param)
            return found

        rows, more = store_file_page(
            store=store,
            batch=batch,
            status=status,
            after=cursor(after_id, "after"),
            before=cursor(before_id, "before"),
            limit=limit,
            descending=descending,
        )
        return list_object([store_file_object(row, store=store) for row in rows], more)

    return read


async def store_files_list(request: HttpRequest, vector_store_id: str) -> HttpResponse:
    caller = await object_caller(request)
    read = _files_list(request, vector_store_id, None)
    return object_answer(request, await _run(read, caller=caller))


async def store_files_retrieve(
    request: HttpRequest, vector_store_id: str, file_id: str
) -> HttpResponse:
    caller = await object_caller(request)

    def read() -> dict[str, Any]:
        store = store_get_visible(caller=caller, store_id=vector_store_id)
        return store_file_object(store_file_get_visible(store=store, file_id=file_id), store=store)

    return object_answer(request, await _run(read))


async def store_files_update(
    request: HttpRequest, vector_store_id: str, file_id: str
) -> HttpResponse:
    caller = await object_caller(request)
    body = _body(request, {"attributes"})
    if "attributes" not in body:
        raise InvalidRequestError("Missing required parameter: `attributes`.", param="attributes")
    attributes = attributes_check(body["attributes"])

    def update() -> dict[str, Any]:
        store = store_get_visible(caller=caller, store_id=vector_store_id)
        store_file = store_file_get_visible(store=store, file_id=file_id)
        store_file_update(store_file=store_file, attributes=attributes)
        return store_file_object(store_file, store=store)

    return object_answer(request, await _run(update))


async def store_files_delete(
    request: HttpRequest, vector_store_id: str, file_id: str
) -> HttpResponse:
    caller = await object_caller(request)

    def delete() -> None:
        store = store_get_visible(caller=caller, store_id=vector_store_id)
        store_file_delete(store_file=store_file_get_visible(store=store, file_id=file_id))

    await _run(delete)
    return object_answer(
        request, {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}
    )


async def store_files_content(
    request: HttpRequest, vector_store_id: str, file_id: str
) -> HttpResponse:
    """The file's parsed text: its chunks joined without their overlap is not recoverable in
    general, so the text is the file's own, decoded."""
    caller = await object_caller(request)

    def read() -> dict[str, Any]:
        store = store_get_visible(caller=caller, store_id=vector_store_id)
        store_file = store_file_get_visible(store=store, file_id=file_id)
        data = []
        if store_file.status == FileStatus.COMPLETED:
            if store_file.source is not None:
                raw = b"".join(file_chunks(file=store_file.source))
                data = [{"type": "text", "text": raw.decode("utf-8-sig", errors="replace")}]
            else:  # the /v1/files file is gone: its chunks are what is left
                data = [
                    {"type": "text", "text": text}
                    for text in store_file.chunks.order_by("position").values_list(
                        "text", flat=True
                    )
                ]
        return {
            "object": "vector_store.file_content.page",
            "data": data,
            "has_more": False,
            "next_page": None,
        }

    return object_answer(request, await _run(read))


# ---- /v1/vector_stores/{id}/file_batches ---------------------------------------------------------


async def batches_create(request: HttpRequest, vector_store_id: str) -> HttpResponse:
    caller = await object_caller(request)
    body = _body(request, {"file_ids", "files", "attributes", "chunking_strategy"})
    specs = _file_specs(body, required=True)

    def create() -> dict[str, Any]:
        store = store_get_visible(caller=caller, store_id=vector_store_id)
        return batch_object(batch_create(caller=caller, store=store, files=specs), store=store)

    return object_answer(request, await _run(create))


async def batches_retrieve(
    request: HttpRequest, vector_store_id: str, batch_id: str
) -> HttpResponse:
    caller = await object_caller(request)

    def read() -> dict[str, Any]:
        store = store_get_visible(caller=caller, store_id=vector_store_id)
        return batch_object(batch_get_visible(store=store, batch_id=batch_id), store=store)

    return object_answer(request, await _run(read))


async def batches_cancel(request: HttpRequest, vector_store_id: str, batch_id: str) -> HttpResponse:
    caller = await object_caller(request)

    def cancel() -> dict[str, Any]:
        store = store_get_visible(caller=caller, store_id=vector_store_id)
        batch = batch_cancel(batch=batch_get_visible(store=store, batch_id=batch_id))
        return batch_object(batch, store=store)

    return object_answer(request, await _run(cancel))


async def batches_files(request: HttpRequest, vector_store_id: str, batch_id: str) -> HttpResponse:
    caller = await object_caller(request)
    read = _files_list(request, vector_store_id, batch_id)
    return object_answer(request, await _run(read, caller=caller))


_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
    }
}


def vector_stores_mount(api: NinjaAPI) -> None:
    """Add the routes to /v1's API (before its catch-all; ogem_site/urls.py)."""
    base = "/vector_stores"
    store = base + "/{vector_store_id}"
    file = store + "/files/{file_id}"
    batch = store + "/file_batches/{batch_id}"
    routes: list[tuple[str, str, Callable[..., Any], str, bool]] = [
        ("post", base, stores_create, "Create a vector store", True),
        ("get", base, stores_list, "List vector stores", False),
        ("get", store, stores_retrieve, "Retrieve a vector store", False),
        ("post", store, stores_modify, "Modify a vector store", True),
        ("delete", store, stores_delete, "Delete a vector store", False),
        ("post", store + "/search", stores_search, "Search a vector store", True),
        ("post", store + "/files", store_files_create, "Attach a file to a vector store", True),
        ("get", store + "/files", store_files_list, "List a vector store's files", False),
        ("get", file, store_files_retrieve, "Retrieve a vector store file", False),
        ("post", file, store_files_update, "Update a vector store file's attributes", True),
        ("delete", file, store_files_delete, "Remove a file from a vector store", False),
        ("get", file + "/content", store_files_content, "A vector store file's content", False),
        ("post", store + "/file_batches", batches_create, "Create a file batch", True),
        ("get", batch, batches_retrieve, "Retrieve a file batch", False),
        ("post", batch + "/cancel", batches_cancel, "Cancel a file batch", False),
        ("get", batch + "/files", batches_files, "List a file batch's files", False),
    ]
    for method, path, view, summary, has_body in routes:
        getattr(api, method)(
            path,
            summary=summary,
            operation_id=f"vector_{view.__name__}",
            openapi_extra=_JSON_BODY if has_body else None,
        )(view)
