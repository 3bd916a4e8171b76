"""Voyage AI: embeddings (`POST /v1/embeddings`) and rerank (`POST /v1/rerank`).

Deployment settings: `api_base` (default https://api.voyageai.com/v1; a base without `/v1` gets
it), `api_key` (a bearer token) and `params.input_type` (`query` or `document`, the default when
a request names none). OpenAI's `dimensions` becomes `output_dimension`, `encoding_format:
base64` is passed through (Voyage's base64 is little-endian float32, like OpenAI's); Voyage's own
`input_type`, `truncation` and `output_dtype` pass through from the request body.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from providers.adapter import (
    ProviderAdapter,
    UploadFile,
    UpstreamRequest,
    UpstreamResponse,
    json_parse,
)
from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError

PROVIDER = "voyage"
DEFAULT_API_BASE = "https://api.voyageai.com/v1"
INPUT_TYPES = ("query", "document")


def voyage_url(api_base: str, path: str) -> str:
    base = (api_base or DEFAULT_API_BASE).rstrip("/")
    for suffix in ("/embeddings", "/rerank"):
        base = base.removesuffix(suffix)
    if not base.endswith("/v1"):
        base = f"{base}/v1"
    return f"{base}/{path}"


def texts_of(value: Any, *, param: str) -> str | list[str]:
    """A string or a list of strings, as Voyage accepts; token arrays are refused."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    raise InvalidRequestError(
        f"{PROVIDER} accepts `{param}` as a string or a non-empty array of strings.", param=param
    )


def embeddings_request(*, body: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "input": texts_of(body.get("input"), param="input"),
        "model": deployment.upstream_model,
    }
    input_type = body.get("input_type", deployment.params.get("input_type"))
    if input_type is not None:
        if input_type not in INPUT_TYPES:
            raise InvalidRequestError(
                "`input_type` must be `query` or `document`.", param="input_type"
            )
        payload["input_type"] = input_type
    for name in ("truncation", "output_dtype"):
        if body.get(name) is not None:
            payload[name] = body[name]
    if body.get("dimensions") is not None:
        payload["output_dimension"] = body["dimensions"]
    encoding = body.get("encoding_format")
    if encoding == "base64":
        payload["encoding_format"] = "base64"
    elif encoding not in (None, "float"):
        raise InvalidRequestError(
            "`encoding_format` must be `float` or `base64`.", param="encoding_format"
        )
    return payload


def embeddings_response(reply: dict[str, Any]) -> dict[str, Any]:
    tokens = int((reply.get("usage") or {}).get("total_tokens") or 0)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": item["index"], "embedding": item["embedding"]}
            for item in reply.get("data") or []
        ],
        "model": reply.get("model", ""),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _document_text(document: Any, index: int) -> str:
    if isinstance(document, str):
        return document
    if isinstance(document, dict) and isinstance(document.get("text"), str):
        return document["text"]
    raise InvalidRequestError(
        f"`documents[{index}]` must be a string or an object with `text`.",
        param=f"documents[{index}]",
    )


def rerank_request(*, body: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    documents = [_document_text(d, i) for i, d in enumerate(body.get("documents") or [])]
    payload: dict[str, Any] = {
        "query": body.get("query"),
        "documents": documents,
        "model": deployment.upstream_model,
    }
    top_n = body.get("top_n", body.get("top_k"))
    if top_n is not None:
        payload["top_k"] = top_n
    if body.get("return_documents") is not None:
        payload["return_documents"] = bool(body["return_documents"])
    if body.get("truncation") is not None:
        payload["truncation"] = body["truncation"]
    return payload


def rerank_response(reply: dict[str, Any]) -> dict[str, Any]:
    """Voyage's `data` → the Cohere/Jina `results` shape Ogem's /v1/rerank answers with."""
    results = []
    for item in reply.get("data") or []:
        result: dict[str, Any] = {
            "index": item["index"],
            "relevance_score": item["relevance_score"],
        }
        if item.get("document") is not None:
            result["document"] = {"text": item["document"]}
        results.append(result)
    tokens = int((reply.get("usage") or {}).get("total_tokens") or 0)
    return {
        "id": f"rerank-{uuid.uuid4().hex}",
        "model": reply.get("model", ""),
        "results": results,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


class VoyageAdapter(ProviderAdapter):
    name: ClassVar[str] = PROVIDER
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.EMBEDDINGS, Endpoint.RERANK})

    def build_request(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        stream: bool,
        files: list[UploadFile] | None = None,
    ) -> UpstreamRequest:
        headers = {"Authorization": f"Bearer {deployment.api_key or ''}"}
        if endpoint is Endpoint.EMBEDDINGS:
            payload = embeddings_request(body=body, deployment=deployment)
            return UpstreamRequest(
                "POST", voyage_url(deployment.api_base, "embeddings"), headers, json=payload
            )
        if endpoint is Endpoint.RERANK:
            payload = rerank_request(body=body, deployment=deployment)
            return UpstreamRequest(
                "POST", voyage_url(deployment.api_base, "rerank"), headers, json=payload
            )
        raise InvalidRequestError(f"Voyage deployments do not serve /v1/{endpoint.value}.")

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        reply = json_parse(response.body, provider=PROVIDER)
        if endpoint is Endpoint.RERANK:
            return rerank_response(reply)
        return embeddings_response(reply)
