"""OpenAI's Vector Stores API, for tests/emulators/openai_api.py, from OpenAI's API reference:
`/v1/vector_stores` (create, retrieve, modify, delete, search) and its files (attach, retrieve,
update attributes, detach), and Azure OpenAI's data-plane variant at `/openai/vector_stores`
(with `api-version`). Files are the emulator's Files API's (tests/emulators/openai_batches.py),
whose store it reads.

A file attached is `in_progress` for `index_seconds`, then `completed` (its `usage_bytes` its
text's length) or, for bytes that are not UTF-8 text, `failed` with `unsupported_file`. A search
scores each completed file by the share of the query's words it holds and answers the file's
text as one result (OpenAI's VectorStoreSearchResultsPage); `filters` of type `eq` on an
attribute are applied. Shapes: VectorStoreObject, VectorStoreFileObject.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import orjson
from aiohttp import web

_PATH = re.compile(
    r"(?:/v1|/openai/v1|/openai)/vector_stores(?:/([^/]+))?(?:/(search|files))?(?:/([^/]+))?"
)
_WORD = re.compile(r"[a-z0-9]+")


def _error(status: int, message: str, *, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param}}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _json(payload: Any) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


class VectorStoresAPI:
    def __init__(self, files: dict[str, dict[str, Any]]) -> None:
        # The Files API's store: file id -> {"object": the File, "content": its bytes}.
        self.files = files
        self.index_seconds = 0.3
        self.stores: dict[str, dict[str, Any]] = {}
        # store id -> file id -> {"object": VectorStoreFileObject, "ready_at": time}.
        self.store_files: dict[str, dict[str, dict[str, Any]]] = {}
        self.searches: list[dict[str, Any]] = []

    def clear(self) -> None:
        self.stores.clear()
        self.store_files.clear()
        self.searches.clear()
        self.index_seconds = 0.3

    @staticmethod
    def match(path: str) -> re.Match[str] | None:
        return _PATH.fullmatch(path)

    async def route(
        self, request: web.Request, body: dict[str, Any], match: re.Match[str]
    ) -> web.Response:
        azure = request.path.startswith("/openai/") and not request.path.startswith("/openai/v1/")
        if azure and "api-version" not in request.query:
            return _error(404, "Resource not found")
        store_id, kind, file_id = match.groups()
        method = request.method
        if store_id is None:
            if method == "POST":
                return self._store_create(body)
            return _error(404, f"Invalid URL ({method} {request.path})")
        store = self.stores.get(store_id)
        if store is None:
            return _error(
                404, f"No vector store found with id '{store_id}'.", param="vector_store_id"
            )
        if kind is None:
            if method == "GET":
                return _json(self._store_object(store_id))
            if method == "POST":
                for name in ("name", "metadata", "expires_after"):
                    if name in body:
                        store[name] = body[name]
                return _json(self._store_object(store_id))
            if method == "DELETE":
                del self.stores[store_id]
                self.store_files.pop(store_id, None)
                return _json({"id": store_id, "object": "vector_store.deleted", "deleted": True})
        if kind == "search" and method == "POST" and file_id is None:
            return self._search(store_id, body)
        if kind == "files":
            attached = self.store_files[store_id]
            if file_id is None and method == "POST":
                return self._file_attach(store_id, body)
            entry = attached.get(file_id or "")
            if entry is None:
                return _error(404, f"No file found with id '{file_id}'.", param="file_id")
            if method == "GET":
                return _json(self._file_object(entry))
            if method == "POST":
                entry["object"]["attributes"] = body.get("attributes")
                return _json(self._file_object(entry))
            if method == "DELETE":
                del attached[file_id or ""]
                return _json(
                    {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}
                )
        return _error(404, f"Invalid URL ({method} {request.path})")

    # -- stores ----------------------------------------------------------------------------------
    def _store_create(self, body: dict[str, Any]) -> web.Response:
        store_id = f"vs_{uuid.uuid4().hex[:24]}"
        now = int(time.time())
        self.stores[store_id] = {
            "id": store_id,
            "created_at": now,
            "name": body.get("name") or "",
            "metadata": body.get("metadata") or {},
            "expires_after": body.get("expires_after"),
            "last_active_at": now,
        }
        self.store_files[store_id] = {}
        for file_id in body.get("file_ids") or []:
            self._attach(store_id, str(file_id), None)
        return _json(self._store_object(store_id))

    def _store_object(self, store_id: str) -> dict[str, Any]:
        store = self.stores[store_id]
        files = [self._file_object(entry) for entry in self.store_files[store_id].values()]
        counts = {name: 0 for name in ("in_progress", "completed", "failed", "cancelled")}
        for file in files:
            counts[file["status"]] += 1
        found = {
            "id": store_id,
            "object": "vector_store",
            "created_at": store["created_at"],
            "name": store["name"],
            "usage_bytes": sum(file["usage_bytes"] for file in files),
            "file_counts": {**counts, "total": len(files)},
            "status": "in_progress" if counts["in_progress"] else "completed",
            "expires_after": store["expires_after"],
            "expires_at": None,
            "last_active_at": store["last_active_at"],
            "metadata": store["metadata"],
        }
        if not found["expires_after"]:  # optional, and not nullable: left out
            del found["expires_after"]
        return found

    # -- files -----------------------------------------------------------------------------------
    def _file_attach(self, store_id: str, body: dict[str, Any]) -> web.Response:
        file_id = str(body.get("file_id") or "")
        if file_id not in self.files:
            return _error(404, f"No file found with id '{file_id}'.", param="file_id")
        entry = self.store_files[store_id].get(file_id) or self._attach(
            store_id, file_id, body.get("attributes"), body.get("chunking_strategy")
        )
        return _json(self._file_object(entry))

    def _attach(
        self,
        store_id: str,
        file_id: str,
        attributes: dict[str, Any] | None,
        chunking: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        entry = {
            "object": {
                "id": file_id,
                "object": "vector_store.file",
                "usage_bytes": 0,
                "created_at": int(time.time()),
                "vector_store_id": store_id,
                "status": "in_progress",
                "last_error": None,
                "chunking_strategy": chunking
                or {
                    "type": "static",
                    "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
                },
                "attributes": attributes,
            },
            "ready_at": time.monotonic() + self.index_seconds,
        }
        self.store_files[store_id][file_id] = entry
        return entry

    def _text(self, file_id: str) -> str | None:
        content = self.files.get(file_id, {}).get("content", b"")
        try:
            text = content.decode()
        except UnicodeDecodeError:
            return None
        return None if "\x00" in text else text

    def _file_object(self, entry: dict[str, Any]) -> dict[str, Any]:
        obj = entry["object"]
        if obj["status"] == "in_progress" and time.monotonic() >= entry["ready_at"]:
            text = self._text(obj["id"])
            if text is None:
                obj["status"] = "failed"
                obj["last_error"] = {
                    "code": "unsupported_file",
                    "message": "The file type is not supported.",
                }
            else:
                obj["status"] = "completed"
                obj["usage_bytes"] = len(text.encode())
        return obj

    # -- search ----------------------------------------------------------------------------------
    def _search(self, store_id: str, body: dict[str, Any]) -> web.Response:
        self.searches.append(body)
        query = body.get("query")
        queries = [query] if isinstance(query, str) else list(query or [])
        if not queries:
            return _error(400, "Missing required parameter: 'query'.", param="query")
        words = set(_WORD.findall(" ".join(queries).lower()))
        results = []
        for entry in self.store_files[store_id].values():
            obj = self._file_object(entry)
            if obj["status"] != "completed" or not _passes(body.get("filters"), obj["attributes"]):
                continue
            text = self._text(obj["id"]) or ""
            held = words & set(_WORD.findall(text.lower()))
            score = len(held) / len(words) if words else 0.0
            threshold = (body.get("ranking_options") or {}).get("score_threshold") or 0.0
            if score <= 0 or score < threshold:
                continue
            results.append(
                {
                    "file_id": obj["id"],
                    "filename": self.files[obj["id"]]["object"]["filename"],
                    "score": score,
                    "attributes": obj["attributes"] or {},
                    "content": [{"type": "text", "text": text}],
                }
            )
        results.sort(key=lambda row: -row["score"])
        return _json(
            {
                "object": "vector_store.search_results.page",
                "search_query": queries,
                "data": results[: int(body.get("max_num_results") or 10)],
                "has_more": False,
                "next_page": None,
            }
        )


def _passes(filters: dict[str, Any] | None, attributes: dict[str, Any] | None) -> bool:
    if not filters:
        return True
    if filters.get("type") == "eq":
        return (attributes or {}).get(filters.get("key")) == filters.get("value")
    return True
