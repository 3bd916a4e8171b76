"""The Cohere v2 adapter: chat (`/v2/chat`), embeddings (`/v2/embed`), rerank (`/v2/rerank`).

Deployment settings: `api_base` (default https://api.cohere.com; a base ending in `/v2` works
too, and so does LiteLLM's `cohere_chat` form, the full endpoint URL such as
`https://api.cohere.ai/v1/chat`: its host is used with the v2 API), `api_key` (sent as a bearer
token), and `params`: `max_tokens`, `input_type` (embeddings' default, else search_document),
`dimensions`, `truncate`, `extra_headers`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from providers.adapter import ProviderAdapter, UploadFile, UpstreamRequest, UpstreamResponse
from providers.base import Deployment, Endpoint
from providers.cohere.stream import StreamTranslator
from providers.cohere.translate import (
    PROVIDER,
    chat_request_to_cohere,
    chat_response_to_openai,
    embed_request_to_cohere,
    embedding_encode,
    rerank_request_to_cohere,
    rerank_response_to_openai,
)
from providers.errors import InvalidRequestError, UpstreamError
from providers.sse import sse_data

DEFAULT_API_BASE = "https://api.cohere.com"
PATHS = {Endpoint.CHAT: "chat", Endpoint.EMBEDDINGS: "embed", Endpoint.RERANK: "rerank"}


def cohere_url(api_base: str, *, path: str) -> str:
    base = (api_base or DEFAULT_API_BASE).rstrip("/")
    # LiteLLM's `cohere_chat/` takes the full endpoint URL (`https://api.cohere.ai/v1/chat`):
    # its host is kept and the v2 path Ogem speaks is used.
    for endpoint in PATHS.values():
        base = base.removesuffix(f"/{endpoint}")
    base = base.removesuffix("/v1")
    if not base.endswith("/v2"):
        base = f"{base}/v2"
    return f"{base}/{path}"


class CohereAdapter(ProviderAdapter):
    name: ClassVar[str] = PROVIDER
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(PATHS)

    def build_request(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        stream: bool,
        files: list[UploadFile] | None = None,
    ) -> UpstreamRequest:
        if endpoint is Endpoint.CHAT:
            payload = chat_request_to_cohere(body=body, deployment=deployment, stream=stream)
        elif endpoint is Endpoint.EMBEDDINGS:
            payload = embed_request_to_cohere(body=body, deployment=deployment)
        elif endpoint is Endpoint.RERANK:
            payload = rerank_request_to_cohere(body=body, deployment=deployment)
        else:
            raise InvalidRequestError(f"Cohere deployments do not serve /v1/{endpoint.value}.")
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        headers.update(deployment.params.get("extra_headers") or {})
        return UpstreamRequest(
            method="POST",
            url=cohere_url(deployment.api_base, path=PATHS[endpoint]),
            headers=headers,
            json=payload,
        )

    async def call(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> dict[str, Any] | bytes:
        result = await super().call(endpoint=endpoint, deployment=deployment, body=body)
        if endpoint is Endpoint.EMBEDDINGS and isinstance(result, dict):
            encoding = body.get("encoding_format")
            for item in result["data"]:
                item["embedding"] = embedding_encode(item["embedding"], encoding_format=encoding)
        if endpoint is Endpoint.RERANK and isinstance(result, dict):
            result = rerank_response_to_openai(result, body=body, model=deployment.upstream_model)
        return result

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        try:
            parsed = orjson.loads(response.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"{PROVIDER} answered with invalid JSON.", provider=PROVIDER
            ) from exc
        if endpoint is Endpoint.CHAT:
            return chat_response_to_openai(parsed, model=deployment.upstream_model)
        if endpoint is Endpoint.EMBEDDINGS:
            vectors = (parsed.get("embeddings") or {}).get("float") or []
            tokens = int(
                ((parsed.get("meta") or {}).get("billed_units") or {}).get("input_tokens") or 0
            )
            return {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": v}
                    for i, v in enumerate(vectors)
                ],
                "model": deployment.upstream_model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        return parsed

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        translator = StreamTranslator(model=deployment.upstream_model, secrets=deployment.secrets)
        async for data in sse_data(chunks):
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(
                    f"{PROVIDER} sent an invalid stream event.", provider=PROVIDER
                ) from exc
            for chunk in translator.feed(event):
                yield chunk
            if translator.finished:
                return
        raise translator.premature_end_error()
