"""A local emulator of Jina AI's Search Foundation API, written from its reference:
`POST /v1/embeddings` (inputs as strings or `{"text"}`/`{"image"}` objects, `task`, `dimensions`,
`embedding_type`) and `POST /v1/rerank` (`top_n`, `return_documents`), bearer auth, FastAPI-style
`{"detail": ...}` errors, unknown fields refused.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response
from tests.emulators.voyage_api import detail, score, vector, words

API_KEY = "jina_emulator_key"
TASKS = {
    "retrieval.query",
    "retrieval.passage",
    "separation",
    "classification",
    "text-matching",
    "code.query",
    "code.passage",
}
EMBED_FIELDS = {
    "model",
    "input",
    "task",
    "dimensions",
    "embedding_type",
    "normalized",
    "late_chunking",
    "truncate",
}
RERANK_FIELDS = {"model", "query", "documents", "top_n", "return_documents"}


def item_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    return str(item.get("text") or item.get("image") or "")


class JinaEmulator(ScriptedEmulator):
    name = "jina-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/rerank", self._rerank)

    async def _checked(self, request: web.Request, fields: set[str]) -> Any:
        received = await self.receive(request)
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return detail(401, "Invalid API key").response()
        body = received.body
        if not isinstance(body, dict) or not body.get("model"):
            return detail(422, "model: Field required").response()
        unknown = sorted(set(body) - fields)
        if unknown:
            return detail(422, f"{unknown[0]}: Extra inputs are not permitted").response()
        reply = self.next_reply()
        if isinstance(reply, Fault):
            return reply.response()
        return body

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._checked(request, EMBED_FIELDS)
        if isinstance(body, web.Response):
            return body
        items = body.get("input")
        if isinstance(items, str):
            items = [items]
        if not isinstance(items, list) or not items:
            return detail(422, "input: Field required").response()
        for item in items:
            if not (isinstance(item, str) or (isinstance(item, dict) and item_text(item))):
                return detail(422, "input: Input should be a valid string or object").response()
        if body.get("task") is not None and body["task"] not in TASKS:
            return detail(422, f"task: Input should be one of {sorted(TASKS)}").response()
        if body.get("embedding_type", "float") not in ("float", "base64", "binary", "ubinary"):
            return detail(422, "embedding_type: invalid").response()
        dimension = body.get("dimensions") or 4
        data = []
        for index, item in enumerate(items):
            values = vector(item_text(item), dimension=dimension)
            embedding: Any = values
            if body.get("embedding_type") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(words(item_text(i))) for i in items)
        return json_response(
            {
                "model": body["model"],
                "object": "list",
                "usage": {"total_tokens": tokens, "prompt_tokens": tokens},
                "data": data,
            }
        )

    async def _rerank(self, request: web.Request) -> web.Response:
        body = await self._checked(request, RERANK_FIELDS)
        if isinstance(body, web.Response):
            return body
        documents = body.get("documents")
        if not isinstance(body.get("query"), str) or not isinstance(documents, list):
            return detail(422, "query and documents are required").response()
        texts = [item_text(d) for d in documents]
        ranked = sorted(
            ({"index": i, "relevance_score": score(body["query"], t)} for i, t in enumerate(texts)),
            key=lambda item: (-item["relevance_score"], item["index"]),
        )
        if body.get("top_n"):
            ranked = ranked[: body["top_n"]]
        if body.get("return_documents", True):
            for item in ranked:
                item["document"] = {"text": texts[item["index"]]}
        tokens = len(words(body["query"])) + sum(len(words(t)) for t in texts)
        return json_response(
            {"model": body["model"], "usage": {"total_tokens": tokens}, "results": ranked}
        )


_emulator: JinaEmulator | None = None


def jina_emulator_get() -> JinaEmulator:
    global _emulator
    if _emulator is None:
        _emulator = JinaEmulator()
        _emulator.start()
    return _emulator
