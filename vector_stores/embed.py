"""Embeddings of chunks and queries, made by the configured embedding model group through Ogem's
own /v1 pipeline as the store's owner (or the searching caller): routing, limits, budgets and a
RequestLog row each, like a client's /v1/embeddings request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.context import Caller
from gateway.internal import internal_call
from gateway.semantic import embedding_caller
from providers.base import Endpoint

if TYPE_CHECKING:
    import numpy as np

BATCH = 64  # texts per /v1/embeddings call


class EmbeddingFailed(Exception):
    """The pipeline answered an error: its status and OpenAI-shaped body."""

    def __init__(self, status: int, body: dict) -> None:
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        super().__init__(f"{status}: {error.get('message') or 'embedding failed'}")
        self.status = status
        self.body = body


async def texts_embed(*, caller: Caller, model: str, texts: list[str]) -> np.ndarray:
    """Unit vectors of `texts`, one row each (float32)."""
    import numpy as np

    rows: list[list[float]] = []
    for start in range(0, len(texts), BATCH):
        answer = await internal_call(
            caller=embedding_caller(caller, model),
            endpoint=Endpoint.EMBEDDINGS,
            body={"model": model, "input": texts[start : start + BATCH]},
        )
        if not answer.ok:
            raise EmbeddingFailed(answer.status, answer.body)
        data = sorted(answer.body.get("data") or [], key=lambda item: item.get("index", 0))
        rows.extend(item["embedding"] for item in data)
    if len(rows) != len(texts):
        raise EmbeddingFailed(502, {"error": {"message": "the embedding answer lacks rows"}})
    matrix = np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise EmbeddingFailed(502, {"error": {"message": "an embedding has no direction"}})
    return matrix / norms
