"""The Anthropic Messages API adapter (chat completions only).

Deployment settings: `api_base` (default https://api.anthropic.com; a base ending in `/v1` or in
`/v1/messages` works too), `api_key` (sent as `x-api-key`), `api_version` (the
`anthropic-version` header, default 2023-06-01), and `params`: `max_tokens` (the default when
the request sets none), `anthropic_beta` (a string or list, sent as `anthropic-beta`) and
`extra_headers`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from providers.adapter import (
    ProviderAdapter,
    UploadFile,
    UpstreamRequest,
    UpstreamResponse,
    translating,
)
from providers.anthropic.errors import PROVIDER
from providers.anthropic.stream import StreamTranslator
from providers.anthropic.translate import chat_request_to_messages, messages_response_to_chat
from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError, UpstreamError
from providers.sse import sse_data

DEFAULT_API_BASE = "https://api.anthropic.com"
DEFAULT_API_VERSION = "2023-06-01"


def messages_url(api_base: str, *, path: str = "messages") -> str:
    base = (api_base or DEFAULT_API_BASE).rstrip("/")
    if base.endswith("/v1/messages"):
        base = base[: -len("/messages")]
    if not base.endswith("/v1"):
        base = f"{base}/v1"
    return f"{base}/{path}"


def anthropic_headers(deployment: Deployment) -> dict[str, str]:
    headers = {"anthropic-version": deployment.api_version or DEFAULT_API_VERSION}
    if deployment.api_key:
        headers["x-api-key"] = deployment.api_key
    beta = deployment.params.get("anthropic_beta")
    if beta:
        headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(beta)
    headers.update(deployment.params.get("extra_headers") or {})
    return headers


class AnthropicAdapter(ProviderAdapter):
    name: ClassVar[str] = PROVIDER
    maps_anthropic_fields: ClassVar[bool] = True
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
            raise InvalidRequestError(f"Anthropic deployments do not serve /v1/{endpoint.value}.")
        return UpstreamRequest(
            method="POST",
            url=messages_url(deployment.api_base),
            headers=anthropic_headers(deployment),
            json=chat_request_to_messages(body=body, deployment=deployment, stream=stream),
        )

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        try:
            message = orjson.loads(response.body)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"{PROVIDER} answered with invalid JSON.", provider=PROVIDER
            ) from exc
        return messages_response_to_chat(message)

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        translator = StreamTranslator(secrets=deployment.secrets)
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

    def stream_usage(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        """The usage block a translated chunk carries (only the final usage-only chunk)."""
        return chunk.get("usage")

    async def count_tokens(self, *, deployment: Deployment, body: dict[str, Any]) -> int:
        """Anthropic's own count of an OpenAI-shaped chat request's input tokens."""
        with translating(self.name):
            payload = chat_request_to_messages(body=body, deployment=deployment, stream=False)
        payload.pop("max_tokens", None)
        request = UpstreamRequest(
            method="POST",
            url=messages_url(deployment.api_base, path="messages/count_tokens"),
            headers=anthropic_headers(deployment),
            json=payload,
        )
        response = await self.exchange(request, deployment=deployment)
        try:
            return int(orjson.loads(response.body)["input_tokens"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(
                f"{PROVIDER} answered count_tokens with an unexpected body.", provider=PROVIDER
            ) from exc
