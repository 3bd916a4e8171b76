"""The Gemini API (Google AI Studio) adapter: chat completions and embeddings.

Deployment settings: `api_base` (default https://generativelanguage.googleapis.com; a base that
already ends in the API version works too), `api_key` (sent as `x-goog-api-key`), `api_version`
(default `v1beta`), and `params`: `safety_settings` (Gemini's `safetySettings` list, sent as
given; none are sent otherwise), `max_tokens` (the default `maxOutputTokens`), `task_type` (the
embeddings' `taskType`), `cached_content`, `extra_headers`, `allow_private_urls` and
`max_media_bytes` (for media URLs Ogem downloads).

Chat is `models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` when streaming.
Embeddings are `:embedContent` for one input and `:batchEmbedContents` for several.
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
from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError, UpstreamError, UpstreamFailure
from providers.gemini import translate
from providers.gemini.errors import google_error_parse
from providers.gemini.media import media_inline
from providers.gemini.stream import StreamTranslator
from providers.sse import sse_data

DEFAULT_API_BASE = "https://generativelanguage.googleapis.com"
DEFAULT_API_VERSION = "v1beta"
FILES_API_PREFIX = "https://generativelanguage.googleapis.com/"


def _model_id(upstream_model: str) -> str:
    return upstream_model.removeprefix("models/")


class GeminiAdapter(ProviderAdapter):
    name: ClassVar[str] = "gemini"
    maps_anthropic_fields: ClassVar[bool] = True
    # Realtime sessions are translated to the Live API (providers/gemini/live.py).
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.EMBEDDINGS, Endpoint.REALTIME}
    )
    # Remote media the upstream fetches itself (not downloaded by Ogem).
    kept_media_prefixes: ClassVar[tuple[str, ...]] = (FILES_API_PREFIX,)

    # -- hooks the Vertex AI adapter overrides ------------------------------------------------
    def model_url(self, deployment: Deployment, method: str) -> str:
        base = (deployment.api_base or DEFAULT_API_BASE).rstrip("/")
        version = deployment.api_version or DEFAULT_API_VERSION
        if not base.endswith(f"/{version}"):
            base = f"{base}/{version}"
        return f"{base}/models/{_model_id(deployment.upstream_model)}:{method}"

    def realtime_target(self, deployment: Deployment) -> tuple[str, dict[str, str]]:
        """The Live API's WebSocket (`BidiGenerateContent`), the key in `x-goog-api-key`."""
        base = (deployment.api_base or DEFAULT_API_BASE).rstrip("/")
        version = deployment.api_version or DEFAULT_API_VERSION
        base = base.removesuffix(f"/{version}")
        scheme, sep, rest = base.partition("://")
        ws_scheme = {"https": "wss", "http": "ws"}.get(scheme.lower(), scheme)
        url = (
            f"{ws_scheme}{sep}{rest}/ws/google.ai.generativelanguage.{version}"
            ".GenerativeService.BidiGenerateContent"
        )
        return url, self.headers(deployment)

    def realtime_live_model(self, deployment: Deployment) -> str | None:
        return f"models/{_model_id(deployment.upstream_model)}"

    def headers(self, deployment: Deployment) -> dict[str, str]:
        headers: dict[str, str] = {}
        if deployment.api_key:
            headers["x-goog-api-key"] = deployment.api_key
        headers.update(deployment.params.get("extra_headers") or {})
        return headers

    def embeddings_request(
        self, *, deployment: Deployment, body: dict[str, Any]
    ) -> UpstreamRequest:
        texts = translate.embedding_inputs(body)
        if len(texts) == 1:
            url = self.model_url(deployment, "embedContent")
            payload = translate.embedding_request(
                body=body, deployment=deployment, text=texts[0], with_model=False
            )
        else:
            url = self.model_url(deployment, "batchEmbedContents")
            payload = {
                "requests": [
                    translate.embedding_request(
                        body=body, deployment=deployment, text=text, with_model=True
                    )
                    for text in texts
                ]
            }
        return UpstreamRequest(
            method="POST", url=url, headers=self.headers(deployment), json=payload
        )

    def embeddings_response(
        self, *, deployment: Deployment, body: dict[str, Any], answer: dict[str, Any]
    ) -> dict[str, Any]:
        if "embedding" in answer:
            vectors = [answer["embedding"].get("values") or []]
        else:
            vectors = [e.get("values") or [] for e in answer.get("embeddings") or []]
        return translate.embeddings_to_openai(
            vectors,
            body=body,
            model=deployment.upstream_model,
            prompt_tokens=translate.tokens_estimate(translate.embedding_inputs(body)),
        )

    # -- the adapter interface ----------------------------------------------------------------
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
            return self.embeddings_request(deployment=deployment, body=body)
        if endpoint is not Endpoint.CHAT:
            raise InvalidRequestError(f"{self.name} deployments do not serve /v1/{endpoint.value}.")
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return UpstreamRequest(
            method="POST",
            url=self.model_url(deployment, method),
            headers=self.headers(deployment),
            json=translate.chat_request_to_gemini(body=body, deployment=deployment),
        )

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        return translate.gemini_response_to_chat(
            self._json(response.body), model=deployment.upstream_model
        )

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        translator = StreamTranslator(
            provider=self.name, model=deployment.upstream_model, secrets=deployment.secrets
        )
        async for data in sse_data(chunks):
            for chunk in translator.feed(self._json(data.encode())):
                yield chunk
        if not translator.finished:
            raise translator.premature_end_error()
        yield translator.usage_chunk()

    def error_parse(self, response: UpstreamResponse) -> UpstreamFailure:
        return google_error_parse(response.body, response.headers)

    async def call(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> dict[str, Any] | bytes:
        if endpoint is Endpoint.EMBEDDINGS:
            with translating(self.name):
                request = self.embeddings_request(deployment=deployment, body=body)
            upstream = await self.exchange(request, deployment=deployment)
            return self.embeddings_response(
                deployment=deployment, body=body, answer=self._json(upstream.body)
            )
        body = await media_inline(
            body, deployment=deployment, kept_prefixes=self.kept_media_prefixes
        )
        return await super().call(endpoint=endpoint, deployment=deployment, body=body, files=files)

    async def stream(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        body = await media_inline(
            body, deployment=deployment, kept_prefixes=self.kept_media_prefixes
        )
        async for chunk in super().stream(
            endpoint=endpoint, deployment=deployment, body=body, files=files
        ):
            yield chunk

    def _json(self, raw: bytes) -> dict[str, Any]:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"{self.name} answered with invalid JSON.", provider=self.name
            ) from exc
        if not isinstance(parsed, dict):
            raise UpstreamError(
                f"{self.name} answered with an unexpected body.", provider=self.name
            )
        return parsed
