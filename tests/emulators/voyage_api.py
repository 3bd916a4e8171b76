"""A local emulator of Voyage AI's API, written from its reference: `POST /v1/embeddings` and
`POST /v1/rerank` with bearer auth, FastAPI-style `{"detail": ...}` errors, the request fields
each endpoint knows (others refused), and deterministic embeddings and scores.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

API_KEY = "pa-voyage-emulator-key"
EMBED_FIELDS = {
    "input",
    "model",
    "input_type",
    "truncation",
    "output_dimension",
    "output_dtype",
    "encoding_format",
}
RERANK_FIELDS = {"query", "documents", "model", "top_k", "return_documents", "truncation"}


def words(text: str) -> list[str]:
    return [w.strip(".,?!").lower() for w in text.split() if w.strip(".,?!")]


def vector(text: str, *, dimension: int) -> list[float]:
    """A deterministic embedding: the text's length and first letters, padded."""
    values = [float(len(text))] + [float(ord(c) % 7) for c in text[: dimension - 1]]
    return (values + [0.0] * dimension)[:dimension]


def score(query: str, document: str) -> float:
    wanted = set(words(query))
    return round(len(wanted & set(words(document))) / max(1, len(wanted)), 4)


def detail(status: int, message: str, **headers: str) -> Fault:
    return Fault(status, {"detail": message}, headers)


class VoyageEmulator(ScriptedEmulator):
    name = "voyage-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/rerank", self._rerank)

    async def _checked(self, request: web.Request, fields: set[str]) -> Any:
        received = await self.receive(request)
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return detail(401, "Provided API key is invalid.").response()
        body = received.body
        if not isinstance(body, dict):
            return detail(400, "Request body must be a JSON object.").response()
        unknown = sorted(set(body) - fields)
        if unknown:
            return detail(400, f"Unexpected argument: {unknown[0]}").response()
        reply = self.next_reply()
        if isinstance(reply, Fault):
            return reply.response()
        return body

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._checked(request, EMBED_FIELDS)
        if isinstance(body, web.Response):
            return body
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not body.get("model") or not isinstance(texts, list) or not texts:
            return detail(400, "Both `input` and `model` are required.").response()
        if not all(isinstance(t, str) for t in texts):
            return detail(400, "`input` must be a string or a list of strings.").response()
        if body.get("input_type") not in (None, "query", "document"):
            return detail(400, "`input_type` must be None, 'query' or 'document'.").response()
        dimension = body.get("output_dimension") or 4
        data = []
        for index, text in enumerate(texts):
            values = vector(text, dimension=dimension)
            embedding: Any = values
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            data.append({"object": "embedding", "embedding": embedding, "index": index})
        tokens = sum(len(words(t)) for t in texts)
        return json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"total_tokens": tokens},
            }
        )

    async def _rerank(self, request: web.Request) -> web.Response:
        body = await self._checked(request, RERANK_FIELDS)
        if isinstance(body, web.Response):
            return body
        documents = body.get("documents")
        if not body.get("model") or not isinstance(body.get("query"), str):
            return detail(400, "`query` and `model` are required.").response()
        if not isinstance(documents, list) or not all(isinstance(d, str) for d in documents):
            return detail(400, "`documents` must be a list of strings.").response()
        ranked = sorted(
            (
                {"relevance_score": score(body["query"], d), "index": i}
                for i, d in enumerate(documents)
            ),
            key=lambda item: (-item["relevance_score"], item["index"]),
        )
        if body.get("top_k"):
            ranked = ranked[: body["top_k"]]
        if body.get("return_documents"):
            for item in ranked:
                item["document"] = documents[item["index"]]
        tokens = len(words(body["query"])) * len(documents) + sum(len(words(d)) for d in documents)
        return json_response(
            {
                "object": "list",
                "data": ranked,
                "model": body["model"],
                "usage": {"total_tokens": tokens},
            }
        )


_emulator: VoyageEmulator | None = None


def voyage_emulator_get() -> VoyageEmulator:
    global _emulator
    if _emulator is None:
        _emulator = VoyageEmulator()
        _emulator.start()
    return _emulator
