"""Cloudflare Workers AI through its REST API: `POST /client/v4/accounts/{account_id}/ai/run/
{model}` (model ids such as `@cf/meta/llama-3.1-8b-instruct`), bearer API token, as LiteLLM's
`cloudflare/` calls it.

Chat sends `messages` (text only: a list of text parts is joined) and the sampling fields the
text-generation models take; the answer is `{"result": {"response", "tool_calls", "usage"},
"success", "errors", "messages"}`, streamed as server-sent events `data: {"response": ...}` ending
with `[DONE]`. Embedding models (`@cf/baai/bge-*`) take `{"text": [...]}` and answer
`{"result": {"shape", "data"}}`. Errors: `{"success": false, "errors": [{"code", "message"}]}`.

Deployment settings: `api_base` (the `.../ai/run` URL, LiteLLM's convention) or
`params.account_id` (else the CLOUDFLARE_ACCOUNT_ID environment variable); `api_key` the token.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

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
from providers.http import UpstreamRequest
from providers.sse import sse_data

PROVIDER = "cloudflare"
API_ROOT = "https://api.cloudflare.com/client/v4"
# OpenAI chat fields Workers AI's text-generation models take under the same name.
SAMPLING_FIELDS = (
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "repetition_penalty",
    "response_format",
)


def run_base(deployment: Deployment) -> str:
    if deployment.api_base:
        return deployment.api_base.rstrip("/")
    account = deployment.params.get("account_id") or os.environ.get("CLOUDFLARE_ACCOUNT_ID")
    if not account:
        raise InvalidRequestError(
            f"The cloudflare deployment {deployment.id} needs api_base or params.account_id "
            "(or CLOUDFLARE_ACCOUNT_ID)."
        )
    return f"{API_ROOT}/accounts/{account}/ai/run"


def _text(content: Any) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise InvalidRequestError(
                    "cloudflare (Workers AI) chat takes text content only.", param="messages"
                )
            parts.append(str(part.get("text") or ""))
        return "".join(parts)
    raise InvalidRequestError("A message's content must be a string or a list of parts.")


def chat_request(*, body: dict[str, Any], stream: bool) -> dict[str, Any]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequestError("`messages` must be a list.", param="messages")
    payload: dict[str, Any] = {
        "messages": [{"role": m.get("role"), "content": _text(m.get("content"))} for m in messages]
    }
    for name in SAMPLING_FIELDS:
        if body.get(name) is not None:
            payload[name] = body[name]
    if body.get("max_completion_tokens") is not None:
        payload["max_tokens"] = body["max_completion_tokens"]
    # Workers AI has no tool_choice: with "none" the tools are left out, so none can be called.
    if body.get("tools") and body.get("tool_choice") != "none":
        payload["tools"] = body["tools"]
    if stream:
        payload["stream"] = True
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


def _tool_calls(raw: Any) -> list[dict[str, Any]] | None:
    """Workers AI's `[{"name", "arguments"}]` (or OpenAI's shape, kept) → OpenAI's."""
    if not isinstance(raw, list) or not raw:
        return None
    calls = []
    for index, call in enumerate(raw):
        if isinstance(call, dict) and "function" in call:
            calls.append({"id": call.get("id") or f"call_{index}", "type": "function", **call})
            continue
        arguments = call.get("arguments") if isinstance(call, dict) else None
        calls.append(
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {
                    "name": str(call.get("name") if isinstance(call, dict) else ""),
                    "arguments": arguments
                    if isinstance(arguments, str)
                    else orjson.dumps(arguments or {}).decode(),
                },
            }
        )
    return calls


class CloudflareAdapter(ProviderAdapter):
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
            texts = embedding_texts(body, provider="Workers AI")
            payload: dict[str, Any] = {"text": texts}
        elif endpoint is Endpoint.CHAT:
            payload = chat_request(body=body, stream=stream)
        else:
            raise InvalidRequestError(f"cloudflare deployments do not serve /v1/{endpoint.value}.")
        headers = {"Accept": "text/event-stream" if stream else "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        return UpstreamRequest(
            method="POST",
            url=f"{run_base(deployment)}/{deployment.upstream_model}",
            headers=headers,
            json=payload,
        )

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        answer = json_parse(response.body, provider=PROVIDER)
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, dict):
            raise UpstreamError("cloudflare answered without a result.", provider=PROVIDER)
        if endpoint is Endpoint.EMBEDDINGS:
            usage = _usage(result.get("usage")) or {"prompt_tokens": 0, "total_tokens": 0}
            return {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": vector}
                    for i, vector in enumerate(result.get("data") or [])
                ],
                "model": deployment.upstream_model,
                "usage": {
                    "prompt_tokens": usage["prompt_tokens"],
                    "total_tokens": usage["total_tokens"],
                },
            }
        message: dict[str, Any] = {"role": "assistant", "content": result.get("response")}
        calls = _tool_calls(result.get("tool_calls"))
        if calls:
            message["tool_calls"] = calls
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": deployment.upstream_model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if calls else "stop",
                    "logprobs": None,
                }
            ],
            "usage": _usage(result.get("usage")),
        }

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        identity = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {
                "id": identity,
                "object": "chat.completion.chunk",
                "created": created,
                "model": deployment.upstream_model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        usage: dict[str, int] | None = None
        first = True
        async for data in sse_data(chunks):
            if data == "[DONE]":
                final = chunk({}, "stop")
                if usage is not None:
                    final["usage"] = usage
                yield final
                return
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(
                    "cloudflare sent an invalid stream event.", provider=PROVIDER
                ) from exc
            if not isinstance(event, dict):
                continue
            if event.get("errors"):
                raise upstream_error(
                    provider=PROVIDER,
                    status=502,
                    failure=error_body_parse(data.encode(), None),
                    secrets=deployment.secrets,
                )
            usage = _usage(event.get("usage")) or usage
            text = event.get("response")
            if text:
                delta: dict[str, Any] = {"content": text}
                if first:
                    delta["role"] = "assistant"
                    first = False
                yield chunk(delta, None)
        raise UpstreamError("cloudflare ended the stream early.", provider=PROVIDER)

    def error_parse(self, response: UpstreamResponse) -> UpstreamFailure:
        return error_body_parse(response.body, response.headers)
