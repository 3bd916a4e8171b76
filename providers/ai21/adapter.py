"""AI21 Studio's Jamba chat API (`POST /studio/v1/chat/completions`), streaming included.

Deployment settings: `api_base` (default https://api.ai21.com/studio/v1; a base without the
`/studio/v1` path gets it) and `api_key` (a bearer token). The translation lives in
`providers/ai21/translate.py`.
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
    json_parse,
)
from providers.ai21.translate import StreamTranslator, ai21_response_to_chat, chat_request_to_ai21
from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError, UpstreamError, error_object_parse, upstream_error
from providers.sse import sse_data

PROVIDER = "ai21"
DEFAULT_API_BASE = "https://api.ai21.com/studio/v1"


def ai21_url(api_base: str) -> str:
    base = (api_base or DEFAULT_API_BASE).rstrip("/").removesuffix("/chat/completions")
    if not base.endswith("/studio/v1"):
        base = f"{base.removesuffix('/v1')}/studio/v1"
    return f"{base}/chat/completions"


class AI21Adapter(ProviderAdapter):
    name: ClassVar[str] = PROVIDER
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
            raise InvalidRequestError(f"AI21 deployments do not serve /v1/{endpoint.value}.")
        return UpstreamRequest(
            method="POST",
            url=ai21_url(deployment.api_base),
            headers={"Authorization": f"Bearer {deployment.api_key or ''}"},
            json=chat_request_to_ai21(body=body, deployment=deployment, stream=stream),
        )

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        reply = json_parse(response.body, provider=PROVIDER)
        return ai21_response_to_chat(reply, model=deployment.upstream_model)

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        translator = StreamTranslator(model=deployment.upstream_model)
        async for data in sse_data(chunks):
            if data == "[DONE]":
                return
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(
                    f"{PROVIDER} sent an invalid stream event.", provider=PROVIDER
                ) from exc
            if isinstance(event, dict) and ("detail" in event or "error" in event):
                raise upstream_error(
                    provider=PROVIDER,
                    status=502,
                    failure=error_object_parse(event),
                    secrets=deployment.secrets,
                )
            for chunk in translator.feed(event):
                yield chunk
        raise UpstreamError(f"{PROVIDER} ended the stream early.", provider=PROVIDER)
