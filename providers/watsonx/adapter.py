"""IBM watsonx.ai: chat through `/ml/v1/text/chat` (and `/text/chat_stream`), embeddings through
`/ml/v1/text/embeddings`, each with the API's `version` date and the deployment's `project_id` or
`space_id` (a model deployed to a space, `watsonx/deployment/<id>`, is called at
`/ml/v1/deployments/<id>/text/chat`). Auth: an IBM Cloud API key exchanged for an IAM token
(providers/watsonx/auth.py), or a ready token.

Deployment settings (LiteLLM's names): `api_base` or `params.url` (the region's URL, default
Dallas), `api_key` / `params.apikey` (IBM Cloud API key) or `params.token`, `params.project_id` /
`params.space_id`; each falls back to LiteLLM's environment variable (WATSONX_URL, WATSONX_APIKEY,
WATSONX_TOKEN, WATSONX_PROJECT_ID, WATSONX_DEPLOYMENT_SPACE_ID) when the deployment leaves it out;
`api_version` (default 2024-03-13), `params.iam_url` (IAM's token URL, for a private IAM).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import orjson

from providers.adapter import ProviderAdapter, UploadFile, UpstreamResponse, json_parse
from providers.base import Deployment, Endpoint
from providers.errors import (
    InvalidRequestError,
    UpstreamError,
    UpstreamFailure,
    embedding_texts,
    error_body_parse,
    upstream_error,
)
from providers.http import UpstreamHTTPResponse, UpstreamRequest
from providers.sse import sse_data
from providers.watsonx.auth import PROVIDER, bearer_token

DEFAULT_URL = "https://us-south.ml.cloud.ibm.com"
DEFAULT_VERSION = "2024-03-13"
# OpenAI chat fields /text/chat takes under the same name.
CHAT_FIELDS = (
    "messages",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "n",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
)
DEPLOYMENT_PREFIX = "deployment/"


def setting(deployment: Deployment, name: str, *variables: str) -> str:
    """A deployment parameter, else the first of LiteLLM's environment variables that is set
    (a LiteLLM config may leave them to the environment)."""
    value = deployment.params.get(name)
    if value:
        return str(value)
    return next((os.environ[v] for v in variables if os.environ.get(v)), "")


def api_base(deployment: Deployment) -> str:
    base = (
        deployment.api_base
        or setting(deployment, "url", "WATSONX_URL", "WATSONX_API_BASE")
        or DEFAULT_URL
    )
    return base.rstrip("/")


def _space(deployment: Deployment) -> dict[str, str]:
    """Where the model runs: the project or the deployment space (one is required)."""
    project = setting(deployment, "project_id", "WATSONX_PROJECT_ID")
    if project:
        return {"project_id": project}
    space = setting(deployment, "space_id", "WATSONX_DEPLOYMENT_SPACE_ID", "WATSONX_SPACE_ID")
    if space:
        return {"space_id": space}
    raise InvalidRequestError(
        f"The watsonx deployment {deployment.id} needs params.project_id or params.space_id."
    )


def _url(deployment: Deployment, path: str) -> str:
    version = deployment.api_version or DEFAULT_VERSION
    return f"{api_base(deployment)}/ml/v1/{path}?{urlencode({'version': version})}"


def chat_request(*, body: dict[str, Any], deployment: Deployment) -> dict[str, Any]:
    payload: dict[str, Any] = {k: body[k] for k in CHAT_FIELDS if body.get(k) is not None}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        payload["max_tokens"] = max_tokens
    choice = body.get("tool_choice")
    if isinstance(choice, str):  # "auto" / "none" / "required" have a field of their own
        payload["tool_choice_option"] = choice
    elif choice is not None:
        payload["tool_choice"] = choice
    if not deployment.upstream_model.startswith(DEPLOYMENT_PREFIX):
        payload["model_id"] = deployment.upstream_model
        payload.update(_space(deployment))
    return payload


def _usage(raw: Any) -> dict[str, int] | None:
    if not isinstance(raw, dict):
        return None
    prompt, completion = int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": int(raw.get("total_tokens") or prompt + completion),
    }


def chat_response(answer: dict[str, Any], *, model: str) -> dict[str, Any]:
    return {
        "id": str(answer.get("id") or f"chatcmpl-watsonx-{int(time.time() * 1000)}"),
        "object": "chat.completion",
        "created": int(answer.get("created") or time.time()),
        "model": str(answer.get("model_id") or model),
        "choices": [
            {
                "index": choice.get("index", index),
                "message": choice.get("message") or {"role": "assistant", "content": ""},
                "finish_reason": choice.get("finish_reason"),
                "logprobs": choice.get("logprobs"),
            }
            for index, choice in enumerate(answer.get("choices") or [])
        ],
        "usage": _usage(answer.get("usage")),
    }


class WatsonxAdapter(ProviderAdapter):
    name: ClassVar[str] = PROVIDER
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.CHAT, Endpoint.EMBEDDINGS})

    def build_request(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        stream: bool,
        files: list[UploadFile] | None = None,
    ) -> UpstreamRequest:
        if endpoint is Endpoint.EMBEDDINGS:
            texts = embedding_texts(body, provider="watsonx")
            payload: dict[str, Any] = {
                "inputs": texts,
                "model_id": deployment.upstream_model,
                **_space(deployment),
            }
            return UpstreamRequest(
                method="POST", url=_url(deployment, "text/embeddings"), json=payload
            )
        if endpoint is not Endpoint.CHAT:
            raise InvalidRequestError(f"watsonx deployments do not serve /v1/{endpoint.value}.")
        action = "text/chat_stream" if stream else "text/chat"
        model = deployment.upstream_model
        if model.startswith(DEPLOYMENT_PREFIX):
            deployed = quote(model.removeprefix(DEPLOYMENT_PREFIX), safe="")
            action = f"deployments/{deployed}/{action}"
        request = UpstreamRequest(
            method="POST",
            url=_url(deployment, action),
            json=chat_request(body=body, deployment=deployment),
        )
        if stream:
            request.headers["Accept"] = "text/event-stream"
        return request

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        answer = json_parse(response.body, provider=PROVIDER)
        if not isinstance(answer, dict):
            raise UpstreamError("watsonx answered with an unexpected body.", provider=PROVIDER)
        if endpoint is Endpoint.EMBEDDINGS:
            tokens = int(answer.get("input_token_count") or 0)
            return {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": r.get("embedding") or []}
                    for i, r in enumerate(answer.get("results") or [])
                ],
                "model": str(answer.get("model_id") or deployment.upstream_model),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        return chat_response(answer, model=deployment.upstream_model)

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        finished = False
        async for data in sse_data(chunks):
            if data == "[DONE]":
                return
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(
                    "watsonx sent an invalid stream event.", provider=PROVIDER
                ) from exc
            if not isinstance(event, dict):
                continue
            if "errors" in event:
                raise upstream_error(
                    provider=PROVIDER,
                    status=int(event.get("status_code") or 502),
                    failure=error_body_parse(data.encode(), None),
                    secrets=deployment.secrets,
                )
            choices = event.get("choices") or []
            finished = finished or any(c.get("finish_reason") for c in choices)
            chunk: dict[str, Any] = {
                "id": str(event.get("id") or ""),
                "object": "chat.completion.chunk",
                "created": int(event.get("created") or time.time()),
                "model": str(event.get("model_id") or deployment.upstream_model),
                "choices": [
                    {
                        "index": c.get("index", 0),
                        "delta": c.get("delta") or {},
                        "finish_reason": c.get("finish_reason"),
                    }
                    for c in choices
                ],
            }
            usage = _usage(event.get("usage"))
            if usage is not None and usage["total_tokens"]:
                chunk["usage"] = usage
            yield chunk
        if not finished:
            raise UpstreamError("watsonx ended the stream early.", provider=PROVIDER)

    def error_parse(self, response: UpstreamResponse) -> UpstreamFailure:
        return error_body_parse(response.body, response.headers)

    async def _iam_send(
        self, request: UpstreamRequest, deployment: Deployment
    ) -> tuple[int, bytes]:
        answer = await self._read(await super()._open(request, deployment=deployment))
        return answer.status, answer.body

    async def _open(
        self, request: UpstreamRequest, *, deployment: Deployment
    ) -> UpstreamHTTPResponse:
        async def send(token_request: UpstreamRequest) -> tuple[int, bytes]:
            return await self._iam_send(token_request, deployment)

        token = await bearer_token(deployment, send=send)
        request.headers["Authorization"] = f"Bearer {token}"
        request.headers.setdefault("Accept", "application/json")
        return await super()._open(request, deployment=deployment)
