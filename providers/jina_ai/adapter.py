"""Jina AI: embeddings (`POST /v1/embeddings`) and rerank (`POST /v1/rerank`).

Deployment settings: `api_base` (default https://api.jina.ai/v1; a base without `/v1` gets it),
`api_key` (a bearer token) and `params.task` (the default task, e.g. `retrieval.passage`).
Requests may name Jina's `task`, `late_chunking`, `truncate` and `normalized` directly, or
Voyage/Cohere-style `input_type` (`query` → `retrieval.query`, `document` →
`retrieval.passage`). OpenAI's `encoding_format: base64` becomes `embedding_type: base64`
(little-endian float32, as OpenAI's). Inputs may be strings or Jina's `{"text"}`/`{"image"}`
objects (for its multimodal CLIP models).
"""

from __future__ import annotations

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
from providers.voyage.adapter import voyage_url

PROVIDER = "jina_ai"
DEFAULT_API_BASE = "https://api.jina.ai/v1"
INPUT_TYPE_TASKS = {"query": "retrieval.query", "document": "retrieval.passage"}
PASSED_THROUGH = ("late_chunking", "truncate", "normalized")


def jina_url(api_base: str, path: str) -> str:
    return voyage_url(api_base or DEFAULT_API_BASE, path)


def _inputs(value: Any) -> list[Any]:
    items = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(items, list) or not items:
        raise InvalidRequestError(f"{PROVIDER} needs `input` as a string or array.", param="input")
    for index, item in enumerate(items):
        valid = isinstance(item, str) or (
            isinstance(item, dict) and set(item) <= {"text", "image"} and len(item) == 1
        )
        if not valid:
            raise InvalidRequestError(
                f"`input[{index}]` must be a string, {{'text': ...}} or {{'image': ...}}; "
                f"{PROVIDER} does not accept token arrays.",
                param=f"input[{index}]",
            )
    return list(items)


def embeddings_request(*, body: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": deployment.upstream_model,
        "input": _inputs(body.get("input")),
    }
    task = body.get("task")
    if task is None and body.get("input_type") is not None:
        task = INPUT_TYPE_TASKS.get(body["input_type"])
        if task is None:
            raise InvalidRequestError(
                "`input_type` must be `query` or `document`.", param="input_type"
            )
    task = task or deployment.params.get("task")
    if task:
        payload["task"] = task
    if body.get("dimensions") is not None:
        payload["dimensions"] = body["dimensions"]
    encoding = body.get("encoding_format")
    if encoding == "base64":
        payload["embedding_type"] = "base64"
    elif encoding not in (None, "float"):
        raise InvalidRequestError(
            "`encoding_format` must be `float` or `base64`.", param="encoding_format"
        )
    for name in PASSED_THROUGH:
        if body.get(name) is not None:
            payload[name] = body[name]
    return payload


def embeddings_response(reply: dict[str, Any]) -> dict[str, Any]:
    usage = reply.get("usage") or {}
    total = int(usage.get("total_tokens") or 0)
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": item["index"], "embedding": item["embedding"]}
            for item in reply.get("data") or []
        ],
        "model": reply.get("model", ""),
        "usage": {"prompt_tokens": int(usage.get("prompt_tokens") or total), "total_tokens": total},
    }


def rerank_request(*, body: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": deployment.upstream_model,
        "query": body.get("query"),
        "documents": body.get("documents"),
    }
    for name in ("top_n", "return_documents"):
        if body.get(name) is not None:
            payload[name] = body[name]
    return payload


def rerank_response(reply: dict[str, Any]) -> dict[str, Any]:
    results = []
    for item in reply.get("results") or []:
        result: dict[str, Any] = {
            "index": item["index"],
            "relevance_score": item["relevance_score"],
        }
        document = item.get("document")
        if document is not None:
            result["document"] = {"text": document} if isinstance(document, str) else document
        results.append(result)
    usage = reply.get("usage") or {}
    total = int(usage.get("total_tokens") or 0)
    translated: dict[str, Any] = {
        "model": reply.get("model", ""),
        "results": results,
        "usage": {"prompt_tokens": int(usage.get("prompt_tokens") or total), "total_tokens": total},
    }
    if reply.get("id"):
        translated = {"id": reply["id"], **translated}
    return translated


class JinaAIAdapter(ProviderAdapter):
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
        headers = {
            "Authorization": f"Bearer {deployment.api_key or ''}",
            "Accept": "application/json",
        }
        if endpoint is Endpoint.EMBEDDINGS:
            payload = embeddings_request(body=body, deployment=deployment)
            return UpstreamRequest(
                "POST", jina_url(deployment.api_base, "embeddings"), headers, json=payload
            )
        if endpoint is Endpoint.RERANK:
            payload = rerank_request(body=body, deployment=deployment)
            return UpstreamRequest(
                "POST", jina_url(deployment.api_base, "rerank"), headers, json=payload
            )
        raise InvalidRequestError(f"Jina AI deployments do not serve /v1/{endpoint.value}.")

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        reply = json_parse(response.body, provider=PROVIDER)
        if endpoint is Endpoint.RERANK:
            return rerank_response(reply)
        return embeddings_response(reply)
