"""The AWS Bedrock adapter: chat through Converse/ConverseStream, embeddings through InvokeModel.

Deployment settings (LiteLLM's names): the model string `bedrock/<model id>` (also
`bedrock/converse/<id>`, cross-region inference profile ids such as `us.anthropic.claude-...`,
and ARNs); `region` or `params.aws_region_name` (else AWS_REGION, else us-east-1); `api_base` or
`params.aws_bedrock_runtime_endpoint` (default `https://bedrock-runtime.{region}.amazonaws.com`);
credentials as in `providers/bedrock/auth.py`. Every request is SigV4-signed (service `bedrock`)
over the exact bytes sent; the model id is percent-encoded in the path and sent as signed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote

import orjson

from providers.adapter import ProviderAdapter, UploadFile, UpstreamRequest, UpstreamResponse
from providers.base import Deployment, Endpoint
from providers.bedrock.auth import credentials_resolve, region_for, request_sign
from providers.bedrock.errors import PROVIDER, bedrock_error_parse
from providers.bedrock.eventstream import EventStreamError, eventstream_messages
from providers.bedrock.images import images_inline
from providers.bedrock.stream import StreamTranslator
from providers.bedrock.translate import (
    chat_request_to_converse,
    cohere_embed_body,
    converse_response_to_chat,
    embedding_family,
    embedding_inputs,
    embeddings_to_openai,
    model_id,
    titan_embed_body,
)
from providers.errors import InvalidRequestError, UpstreamError, UpstreamFailure
from providers.http import UpstreamHTTPResponse

EVENTSTREAM = "application/vnd.amazon.eventstream"
COHERE_BATCH = 96  # texts per Cohere InvokeModel call


def runtime_base(deployment: Deployment) -> str:
    base = deployment.api_base or str(deployment.params.get("aws_bedrock_runtime_endpoint") or "")
    return (base or f"https://bedrock-runtime.{region_for(deployment)}.amazonaws.com").rstrip("/")


def model_url(deployment: Deployment, *, model: str, action: str) -> str:
    return f"{runtime_base(deployment)}/model/{quote(model, safe='')}/{action}"


def _json_request(url: str, payload: dict[str, Any], *, accept: str) -> UpstreamRequest:
    return UpstreamRequest(
        method="POST",
        url=url,
        headers={"Content-Type": "application/json", "Accept": accept},
        content=orjson.dumps(payload),
    )


def _json_load(raw: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"{PROVIDER} answered with invalid JSON.", provider=PROVIDER) from exc
    if not isinstance(parsed, dict):
        raise UpstreamError(f"{PROVIDER} answered with an unexpected body.", provider=PROVIDER)
    return parsed


def _request_id(headers: Any) -> str:
    return str(headers.get("x-amzn-RequestId") or headers.get("x-amzn-requestid") or "")


class BedrockAdapter(ProviderAdapter):
    name: ClassVar[str] = PROVIDER
    maps_anthropic_fields: ClassVar[bool] = True
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
        if endpoint is not Endpoint.CHAT:
            raise InvalidRequestError(f"Bedrock deployments do not serve /v1/{endpoint.value}.")
        action = "converse-stream" if stream else "converse"
        return _json_request(
            model_url(deployment, model=model_id(deployment), action=action),
            chat_request_to_converse(body=body, deployment=deployment),
            accept=EVENTSTREAM if stream else "application/json",
        )

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        return converse_response_to_chat(
            _json_load(response.body),
            model=model_id(deployment),
            request_id=_request_id(response.headers),
        )

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self._translate(deployment=deployment, chunks=chunks, request_id=""):
            yield chunk

    async def _translate(
        self, *, deployment: Deployment, chunks: AsyncIterator[bytes], request_id: str
    ) -> AsyncIterator[dict[str, Any]]:
        translator = StreamTranslator(
            model=model_id(deployment), request_id=request_id, secrets=deployment.secrets
        )
        try:
            async for message in eventstream_messages(chunks):
                for chunk in translator.feed(message):
                    yield chunk
                if translator.finished:
                    return
        except EventStreamError as exc:
            raise UpstreamError(
                f"{PROVIDER} sent a corrupt event stream ({exc}).",
                provider=PROVIDER,
                code="upstream_error",
            ) from exc
        if not translator.stopped:
            raise translator.premature_end_error()

    async def stream(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        body = await images_inline(body=body, deployment=deployment)
        request = self.request_translate(
            endpoint=endpoint, deployment=deployment, body=body, stream=True
        )
        response = await self.exchange_open(request, deployment=deployment)
        try:
            translated = self._translate(
                deployment=deployment,
                chunks=self.body_chunks(response),
                request_id=_request_id(response.headers),
            )
            async for chunk in translated:
                yield chunk
        finally:
            response.close()

    async def call(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> dict[str, Any] | bytes:
        if endpoint is Endpoint.EMBEDDINGS:
            return await self._embeddings(deployment=deployment, body=body)
        if endpoint is Endpoint.CHAT:
            body = await images_inline(body=body, deployment=deployment)
        return await super().call(endpoint=endpoint, deployment=deployment, body=body)

    async def _invoke(
        self, *, deployment: Deployment, model: str, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], int]:
        """One InvokeModel round trip → (the model's JSON answer, its input token count)."""
        request = _json_request(
            model_url(deployment, model=model, action="invoke"), payload, accept="application/json"
        )
        response = await self.exchange(request, deployment=deployment)
        tokens = response.headers.get("X-Amzn-Bedrock-Input-Token-Count")
        return _json_load(response.body), int(tokens) if tokens and tokens.isdigit() else 0

    async def _embeddings(self, *, deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
        model = model_id(deployment)
        texts = embedding_inputs(body)
        vectors: list[list[float]] = []
        tokens = 0
        if embedding_family(model) == "titan":
            answers = await asyncio.gather(
                *(
                    self._invoke(
                        deployment=deployment,
                        model=model,
                        payload=titan_embed_body(
                            text=text, body=body, deployment=deployment, model=model
                        ),
                    )
                    for text in texts
                )
            )
            for answer, counted in answers:
                vectors.append(list(answer.get("embedding") or []))
                tokens += int(answer.get("inputTextTokenCount") or counted)
        else:
            for start in range(0, len(texts), COHERE_BATCH):
                answer, counted = await self._invoke(
                    deployment=deployment,
                    model=model,
                    payload=cohere_embed_body(
                        texts=texts[start : start + COHERE_BATCH], body=body, deployment=deployment
                    ),
                )
                embeddings = answer.get("embeddings") or []
                if isinstance(embeddings, dict):  # asked with embedding_types
                    embeddings = embeddings.get("float") or []
                vectors.extend(list(v) for v in embeddings)
                tokens += counted
        return embeddings_to_openai(
            vectors, model=model, tokens=tokens, encoding_format=body.get("encoding_format")
        )

    def error_parse(self, response: UpstreamResponse) -> UpstreamFailure:
        return bedrock_error_parse(response.body, response.headers)

    async def _open(
        self, request: UpstreamRequest, *, deployment: Deployment
    ) -> UpstreamHTTPResponse:
        credentials = await credentials_resolve(deployment)
        request.headers = request_sign(
            method=request.method,
            url=request.url,
            body=request.content or b"",
            headers=request.headers,
            credentials=credentials,
            region=region_for(deployment),
        )
        # The path is sent exactly as signed (model ids hold ':' and '/').
        request.encoded = True
        return await super()._open(request, deployment=deployment)
