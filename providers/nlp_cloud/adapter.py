"""NLP Cloud's text generation, as LiteLLM's `nlp_cloud/` calls it:
`POST {api_base}{model}/generation` (default base `https://api.nlpcloud.io/v1/gpu/`),
`Authorization: Token <key>`.

The chat messages become the `text` (`Role: text` lines, then `Assistant:`); `max_tokens` →
`max_length` (with `length_no_input`, so it counts generated tokens only), the first `stop`
string → `end_sequence` (removed from the answer), `temperature`, `top_p`, `top_k` and `n`
(`num_return_sequences`) as NLP Cloud names them; `remove_input` so only the continuation comes
back. The answer `{"generated_text", "nb_input_tokens", "nb_generated_tokens"}` carries the
usage. NLP Cloud does not stream here: a streamed request gets the answer as one chunk.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote

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
from providers.whole import answer_as_stream, chat_completion

DEFAULT_API_BASE = "https://api.nlpcloud.io/v1/gpu/"
SAME_NAME = ("temperature", "top_p", "top_k")


def generation_payload(body: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {"text": chat_prompt(body.get("messages")), "remove_input": True}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        payload["max_length"] = max_tokens
        payload["length_no_input"] = True
    stop = body.get("stop")
    if isinstance(stop, list):
        stop = stop[0] if stop else None
    if stop:
        payload["end_sequence"] = stop
        payload["remove_end_sequence"] = True
    for name in SAME_NAME:
        if body.get(name) is not None:
            payload[name] = body[name]
    if body.get("n") not in (None, 1):
        raise InvalidRequestError("nlp_cloud deployments return one choice (n=1).", param="n")
    return payload


class NLPCloudAdapter(ProviderAdapter):
    name: ClassVar[str] = "nlp_cloud"
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
            raise InvalidRequestError(f"nlp_cloud deployments do not serve /v1/{endpoint.value}.")
        # LiteLLM appends the model to the base as it is: a base without its trailing slash
        # is given one, so both spellings reach the same URL.
        base = deployment.api_base or DEFAULT_API_BASE
        base = base if base.endswith("/") else f"{base}/"
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if deployment.api_key:
            headers["Authorization"] = f"Token {deployment.api_key}"
        return UpstreamRequest(
            method="POST",
            url=f"{base}{quote(deployment.upstream_model, safe='/')}/generation",
            headers=headers,
            json=generation_payload(body),
        )

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        answer = json_parse(response.body, provider=self.name)
        if not isinstance(answer, dict) or not isinstance(answer.get("generated_text"), str):
            raise UpstreamError("nlp_cloud answered without generated_text.", provider=self.name)
        prompt = int(answer.get("nb_input_tokens") or 0)
        completion = int(answer.get("nb_generated_tokens") or 0)
        return chat_completion(
            text=answer["generated_text"],
            model=deployment.upstream_model,
            identity=f"chatcmpl-{uuid.uuid4().hex}",
            usage={
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        )

    async def stream(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        answer = await self.call(endpoint=endpoint, deployment=deployment, body=body)
        assert isinstance(answer, dict)
        async for chunk in answer_as_stream(answer):
            yield chunk
