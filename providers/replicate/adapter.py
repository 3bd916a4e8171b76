"""Replicate's predictions API: chat models and image generation.

A model string is `owner/name` (an official model: `POST /v1/models/{owner}/{name}/predictions`)
or `owner/name:version` (a model version: `POST /v1/predictions` with `version`). Non-streamed
calls ask Replicate to hold the request (`Prefer: wait=N`, `params.wait`, default 60 s) and poll
`GET /v1/predictions/{id}` (every `params.poll_interval`, default 1 s) while it is still
`starting`/`processing`, up to the deployment's total timeout. Streams create the prediction with
`stream: true` and read its `urls.stream` SSE (`output`/`error`/`done` events), then read the
finished prediction once for its token counts.

Deployment settings: `api_base` (default https://api.replicate.com), `api_key` (a bearer
`r8_...` token), `params.wait`, `params.poll_interval`, and `params.allow_private_urls` (lets the
image download for `response_format: b64_json` reach a private address, e.g. a local emulator).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from providers.adapter import ProviderAdapter, UploadFile, UpstreamRequest, json_parse
from providers.base import Deployment, Endpoint
from providers.errors import (
    GatewayError,
    InvalidRequestError,
    UpstreamError,
    UpstreamTimeoutError,
    error_body_parse,
    secret_redact,
    upstream_error,
)
from providers.fetch import IMAGE_TYPES, fetch_guarded
from providers.replicate.stream import NamedSSEParser
from providers.replicate.translate import (
    TERMINAL,
    chat_input,
    image_input,
    output_urls,
    prediction_to_chat,
    prediction_usage,
)

PROVIDER = "replicate"
DEFAULT_API_BASE = "https://api.replicate.com"
DEFAULT_WAIT = 60
DEFAULT_POLL_INTERVAL = 1.0
MAX_IMAGE_BYTES = 20 * 1024 * 1024


def _base(deployment: Deployment) -> str:
    return (deployment.api_base or DEFAULT_API_BASE).rstrip("/").removesuffix("/v1")


def create_request(
    *, deployment: Deployment, prediction_input: dict[str, Any], stream: bool
) -> tuple[str, dict[str, Any]]:
    """The create URL and body for the deployment's model (or model version)."""
    model, _, version = deployment.upstream_model.partition(":")
    payload: dict[str, Any] = {"input": prediction_input}
    if stream:
        payload["stream"] = True
    if version:
        return f"{_base(deployment)}/v1/predictions", {"version": version, **payload}
    if model.count("/") != 1:
        raise InvalidRequestError(
            f"The replicate model {deployment.upstream_model!r} must be `owner/name` or "
            "`owner/name:version`."
        )
    return f"{_base(deployment)}/v1/models/{model}/predictions", payload


class ReplicateAdapter(ProviderAdapter):
    name: ClassVar[str] = PROVIDER
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.IMAGES_GENERATIONS}
    )

    def build_request(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        stream: bool,
        files: list[UploadFile] | None = None,
    ) -> UpstreamRequest:
        """The prediction's creation (the first round trip; `call`/`stream` drive the rest)."""
        if endpoint is Endpoint.CHAT:
            prediction_input = chat_input(body)
        elif endpoint is Endpoint.IMAGES_GENERATIONS:
            if body.get("response_format") not in (None, "url", "b64_json"):
                raise InvalidRequestError(
                    "`response_format` must be `url` or `b64_json`.", param="response_format"
                )
            prediction_input = image_input(body)
        else:
            raise InvalidRequestError(f"Replicate deployments do not serve /v1/{endpoint.value}.")
        url, payload = create_request(
            deployment=deployment, prediction_input=prediction_input, stream=stream
        )
        headers = self._auth(deployment)
        if not stream:
            wait = int(deployment.params.get("wait", DEFAULT_WAIT))
            headers["Prefer"] = f"wait={max(1, min(wait, 60))}"
        return UpstreamRequest("POST", url, headers, json=payload)

    @staticmethod
    def _auth(deployment: Deployment) -> dict[str, str]:
        return {"Authorization": f"Bearer {deployment.api_key or ''}"}

    async def _json(self, request: UpstreamRequest, *, deployment: Deployment) -> Any:
        response = await self.exchange(request, deployment=deployment)
        return json_parse(response.body, provider=PROVIDER)

    async def _prediction_get(self, identity: str, *, deployment: Deployment) -> dict[str, Any]:
        request = UpstreamRequest(
            "GET", f"{_base(deployment)}/v1/predictions/{identity}", self._auth(deployment)
        )
        return await self._json(request, deployment=deployment)

    async def _finish(self, prediction: dict[str, Any], *, deployment: Deployment) -> dict:
        """Poll until the prediction is terminal; a failed or canceled one is an error."""
        interval = float(deployment.params.get("poll_interval", DEFAULT_POLL_INTERVAL))
        deadline = time.monotonic() + deployment.timeouts.total
        while prediction.get("status") not in TERMINAL:
            if time.monotonic() + interval > deadline:
                raise UpstreamTimeoutError(
                    f"{PROVIDER} did not finish the prediction in time.", provider=PROVIDER
                )
            await asyncio.sleep(interval)
            prediction = await self._prediction_get(prediction["id"], deployment=deployment)
        if prediction["status"] != "succeeded":
            raise self._failure(prediction, secrets=deployment.secrets)
        return prediction

    @staticmethod
    def _failure(prediction: dict[str, Any], *, secrets: tuple[str, ...]) -> GatewayError:
        status = prediction.get("status")
        detail = secret_redact(str(prediction.get("error") or status), secrets)
        return UpstreamError(
            f"{PROVIDER} prediction {prediction.get('id')} {status}: {detail}",
            provider=PROVIDER,
            code=f"prediction_{status}",
        )

    async def call(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> dict[str, Any] | bytes:
        create = self.request_translate(
            endpoint=endpoint, deployment=deployment, body=body, stream=False
        )
        prediction = await self._json(create, deployment=deployment)
        prediction = await self._finish(prediction, deployment=deployment)
        if endpoint is Endpoint.CHAT:
            return prediction_to_chat(prediction, model=deployment.upstream_model)
        return await self._images(prediction, body=body, deployment=deployment)

    async def _images(
        self, prediction: dict[str, Any], *, body: dict[str, Any], deployment: Deployment
    ) -> dict[str, Any]:
        urls = output_urls(prediction.get("output"))
        if body.get("response_format") != "b64_json":
            data = [{"url": url} for url in urls]
        else:
            data = []
            for url in urls:
                fetched = await fetch_guarded(
                    url,
                    allow_private=bool(deployment.params.get("allow_private_urls")),
                    max_bytes=MAX_IMAGE_BYTES,
                    allowed_types=IMAGE_TYPES,
                )
                data.append({"b64_json": base64.b64encode(fetched.content).decode()})
        return {"created": int(time.time()), "data": data}

    async def stream(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        create = self.request_translate(
            endpoint=endpoint, deployment=deployment, body=body, stream=True
        )
        prediction = await self._json(create, deployment=deployment)
        stream_url = (prediction.get("urls") or {}).get("stream")
        if not stream_url:
            raise InvalidRequestError(
                f"The replicate model {deployment.upstream_model} does not support streaming."
            )
        request = UpstreamRequest(
            "GET",
            stream_url,
            {**self._auth(deployment), "Accept": "text/event-stream", "Cache-Control": "no-store"},
        )
        response = await self.exchange_open(request, deployment=deployment)
        chunk_id = f"chatcmpl-{prediction['id']}"
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": deployment.upstream_model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        try:
            parser = NamedSSEParser()
            first = True
            async for raw in self.body_chunks(response):
                for event, data in parser.feed(raw):
                    if event == "output":
                        delta = (
                            {"role": "assistant", "content": data} if first else {"content": data}
                        )
                        first = False
                        yield chunk(delta)
                    elif event == "error":
                        raise upstream_error(
                            provider=PROVIDER,
                            status=502,
                            failure=error_body_parse(data.encode()),
                            secrets=deployment.secrets,
                        )
                    elif event == "done":
                        reason = self._done_reason(data)
                        if reason:
                            raise UpstreamError(
                                f"{PROVIDER} prediction {prediction['id']} ended: {reason}",
                                provider=PROVIDER,
                            )
                        yield chunk({}, "stop")
                        finished = await self._prediction_get(
                            prediction["id"], deployment=deployment
                        )
                        yield {**chunk({}), "choices": [], "usage": prediction_usage(finished)}
                        return
        finally:
            response.close()
        raise UpstreamError(f"{PROVIDER} ended the stream early.", provider=PROVIDER)

    @staticmethod
    def _done_reason(data: str) -> str:
        try:
            parsed = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError:
            return ""
        return str(parsed.get("reason") or "") if isinstance(parsed, dict) else ""
