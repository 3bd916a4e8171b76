"""Aleph Alpha's completion API, as LiteLLM's `aleph_alpha/` calls it: `POST /complete` (`api_base`
is that whole URL, default `https://api.aleph-alpha.com/complete`; a base without it gets it
appended), bearer token.

The chat messages become the `prompt` (`Role: text` lines, then `Assistant:`); `max_tokens` →
`maximum_tokens` (required upstream: 256 when the client gives none), `stop` →
`stop_sequences`, `temperature`, `top_k`, `top_p`, `presence_penalty`, `frequency_penalty` and
`n` keep their names. The answer `{"completions": [{"completion", "finish_reason"}],
"num_tokens_prompt_total", "num_tokens_generated"}` gives the choices and usage
(`maximum_tokens` finishes are OpenAI's `length`). Streamed requests get the answer as one chunk.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from providers.adapter import (
    ProviderAdapter,
    UploadFile,
    UpstreamRequest,
    UpstreamResponse,
    json_parse,
)
from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError, UpstreamError
from providers.huggingface.tgi import chat_prompt
from providers.whole import answer_as_stream

DEFAULT_URL = "https://api.aleph-alpha.com/complete"
DEFAULT_MAXIMUM_TOKENS = 256
SAME_NAME = ("temperature", "top_k", "top_p", "presence_penalty", "frequency_penalty", "n")


def complete_url(deployment: Deployment) -> str:
    base = (deployment.api_base or DEFAULT_URL).rstrip("/")
    return base if base.endswith("/complete") else f"{base}/complete"


def complete_payload(*, body: dict[str, Any], model: str) -> dict[str, Any]:
    maximum = body.get("max_completion_tokens") or body.get("max_tokens")
    payload: dict[str, Any] = {
        "model": model,
        "prompt": chat_prompt(body.get("messages")),
        "maximum_tokens": int(maximum or DEFAULT_MAXIMUM_TOKENS),
    }
    stop = body.get("stop")
    if stop:
        payload["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    for name in SAME_NAME:
        if body.get(name) is not None:
            payload[name] = body[name]
    return payload


class AlephAlphaAdapter(ProviderAdapter):
    name: ClassVar[str] = "aleph_alpha"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.CHAT})

    def build_request(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        stream: bool,
        files: list[UploadFile] | None = None,
    ) -> UpstreamRequest:
        if endpoint is not Endpoint.CHAT:
            raise InvalidRequestError(f"aleph_alpha deployments do not serve /v1/{endpoint.value}.")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Bearer {deployment.api_key}"
        return UpstreamRequest(
            method="POST",
            url=complete_url(deployment),
            headers=headers,
            json=complete_payload(body=body, model=deployment.upstream_model),
        )

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        answer = json_parse(response.body, provider=self.name)
        completions = answer.get("completions") if isinstance(answer, dict) else None
        if not isinstance(completions, list) or not completions:
            raise UpstreamError("aleph_alpha answered without completions.", provider=self.name)
        prompt = int(answer.get("num_tokens_prompt_total") or 0)
        generated = int(answer.get("num_tokens_generated") or 0)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": deployment.upstream_model,
            "choices": [
                {
                    "index": index,
                    "message": {"role": "assistant", "content": str(c.get("completion") or "")},
                    "finish_reason": "length"
                    if c.get("finish_reason") == "maximum_tokens"
                    else "stop",
                    "logprobs": None,
                }
                for index, c in enumerate(completions)
                if isinstance(c, dict)
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": generated,
                "total_tokens": prompt + generated,
            },
        }

    async def stream(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        if body.get("n") not in (None, 1):
            raise InvalidRequestError("Streamed aleph_alpha requests take n=1.", param="n")
        answer = await self.call(endpoint=endpoint, deployment=deployment, body=body)
        assert isinstance(answer, dict)
        async for chunk in answer_as_stream(answer):
            yield chunk
