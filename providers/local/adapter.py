"""The `local` provider: embeddings computed inside Ogem's own process, offline.

It serves OpenAI's `/v1/embeddings` with the models of `providers/local/models.py` (today
`wordllama-l2-supercat`, 256 dimensions), so the semantic cache and vector stores work with no
upstream, no account and no network; the embedded default serves it as `local-embed`. Configured
as `model: local/wordllama-l2-supercat`; it takes no `api_base` or key, and costs nothing.

OpenAI's request semantics: `input` a string or a list of strings (token-id arrays are refused:
the ids would be OpenAI's tokenizer's, not this model's), `dimensions` one of 64, 128, 256,
`encoding_format` `float` or `base64` (little-endian float32, as OpenAI's), `usage` counted by the
model's own tokenizer. Vectors are L2-normalised.

The work is CPU-bound, so it runs on a small thread pool (`LOCAL_THREADS` per process), never on
the event loop; at most `LOCAL_QUEUE` requests wait for it, and the next one is answered 503 at
once (the router fails over as from a busy upstream). Every request's work is bounded by the
input limits below.
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

from providers.adapter import ProviderAdapter, UploadFile
from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError, NotFoundError, UpstreamUnavailableError
from providers.local.models import (
    ALLOWED_DIMENSIONS,
    SHIPPED_DIMENSIONS,
    WORDLLAMA_MODELS,
    local_model_get,
)

PROVIDER = "local"
# OpenAI's limits for its embedding models: tokens per input and per request.
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
# Checked before tokenizing, so the tokenizer's work is bounded too: no real text averages more
# than 8 characters a token (English averages about 4 with this tokenizer).
MAX_INPUT_CHARACTERS = 8 * MAX_INPUT_TOKENS
MAX_REQUEST_CHARACTERS = 8 * MAX_REQUEST_TOKENS
LOCAL_THREADS = 2
LOCAL_QUEUE = 64
ENCODING_FORMATS = ("float", "base64")


class _Pool:
    """The process's embedding threads and its admission count. Rebuilt in a forked child (a
    Celery prefork worker): threads do not survive a fork, and the parent's count is not ours."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.executor = ThreadPoolExecutor(LOCAL_THREADS, thread_name_prefix="ogem-local")
        self.slots = threading.BoundedSemaphore(LOCAL_QUEUE)


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _pool_get() -> _Pool:
    global _pool
    pool = _pool
    if pool is not None and pool.pid == os.getpid():
        return pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = _Pool()
        return _pool


def local_texts(value: Any) -> list[str]:
    """`input` as a list of non-empty strings within the limits, else OpenAI's 400."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise InvalidRequestError(
            "`input` must be a string or a non-empty array of strings.", param="input"
        )
    if not all(isinstance(text, str) for text in texts):
        raise InvalidRequestError(
            "The local provider's models take text: send `input` as a string or an array of "
            "strings, not token ids (those are another model's tokenizer's).",
            param="input",
        )
    total = 0
    for index, text in enumerate(texts):
        if not text:
            raise InvalidRequestError(
                f"`input[{index}]` is empty: every input must contain text.", param="input"
            )
        if len(text) > MAX_INPUT_CHARACTERS:
            raise InvalidRequestError(
                f"`input[{index}]` has {len(text)} characters; the local provider takes at most "
                f"{MAX_INPUT_CHARACTERS} characters ({MAX_INPUT_TOKENS} tokens) per input.",
                param="input",
                code="context_length_exceeded",
            )
        total += len(text)
    if total > MAX_REQUEST_CHARACTERS:
        raise InvalidRequestError(
            f"`input` has {total} characters in all; the local provider takes at most "
            f"{MAX_REQUEST_CHARACTERS} per request.",
            param="input",
            code="context_length_exceeded",
        )
    return texts


def local_dimensions(value: Any) -> int:
    if value is None:
        return SHIPPED_DIMENSIONS
    if isinstance(value, bool) or not isinstance(value, int) or value not in ALLOWED_DIMENSIONS:
        allowed = ", ".join(str(d) for d in ALLOWED_DIMENSIONS)
        raise InvalidRequestError(
            f"`dimensions` must be one of {allowed} for the local provider's models.",
            param="dimensions",
            code="invalid_value",
        )
    return value


def local_encoding(value: Any) -> str:
    if value is None:
        return "float"
    if value not in ENCODING_FORMATS:
        raise InvalidRequestError(
            "`encoding_format` must be `float` or `base64`.",
            param="encoding_format",
            code="invalid_value",
        )
    return str(value)


def local_embed(*, model: str, texts: list[str], dimensions: int, encoding: str) -> dict[str, Any]:
    """OpenAI's embeddings answer for `texts` (blocking, CPU-bound: run it off the event loop)."""
    loaded = local_model_get(model)
    ids = loaded.token_ids(texts)
    counts = [len(token_ids) for token_ids in ids]
    for index, count in enumerate(counts):
        if count > MAX_INPUT_TOKENS:
            raise InvalidRequestError(
                f"`input[{index}]` has {count} tokens; the local provider's models take at most "
                f"{MAX_INPUT_TOKENS} tokens per input.",
                param="input",
                code="context_length_exceeded",
            )
    tokens = sum(counts)
    if tokens > MAX_REQUEST_TOKENS:
        raise InvalidRequestError(
            f"`input` has {tokens} tokens in all; the local provider takes at most "
            f"{MAX_REQUEST_TOKENS} per request.",
            param="input",
            code="context_length_exceeded",
        )
    vectors = loaded.vectors(ids, dimensions=dimensions)
    data = []
    for index, vector in enumerate(vectors):
        embedding: list[float] | str
        if encoding == "base64":
            embedding = base64.b64encode(vector.astype("<f4").tobytes()).decode()
        else:
            embedding = vector.tolist()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


class LocalAdapter(ProviderAdapter):
    name: ClassVar[str] = PROVIDER
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.EMBEDDINGS})

    async def call(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> dict[str, Any] | bytes:
        if endpoint != Endpoint.EMBEDDINGS:
            raise InvalidRequestError(f"The local provider does not serve {endpoint.value}.")
        model = deployment.upstream_model
        if model not in WORDLLAMA_MODELS:
            served = ", ".join(f"`{name}`" for name in WORDLLAMA_MODELS)
            raise NotFoundError(
                f"The local provider has no model `{model}`; it serves {served}.",
                code="model_not_found",
            )
        texts = local_texts(body.get("input"))
        dimensions = local_dimensions(body.get("dimensions"))
        encoding = local_encoding(body.get("encoding_format"))
        pool = _pool_get()
        if not pool.slots.acquire(blocking=False):
            raise UpstreamUnavailableError(
                f"The local provider is busy ({LOCAL_QUEUE} embedding requests waiting).",
                provider=PROVIDER,
            )
        try:
            job = pool.executor.submit(
                local_embed, model=model, texts=texts, dimensions=dimensions, encoding=encoding
            )
        except BaseException:
            pool.slots.release()
            raise
        # Released when the work ends, not when this coroutine does: a client that goes away
        # does not stop a thread that has started.
        job.add_done_callback(lambda _: pool.slots.release())
        return await asyncio.wrap_future(job)
