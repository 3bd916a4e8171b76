"""Amazon SageMaker real-time endpoints: `InvokeEndpoint` (`POST /endpoints/{name}/invocations`)
and `InvokeEndpointWithResponseStream` (`.../invocations-response-stream`, whose body is AWS's
binary event stream of `PayloadPart` events carrying the container's own bytes), SigV4-signed
for the service `sagemaker` with Bedrock's credential chain (providers/bedrock/auth.py).

The payload is the model container's. Two of LiteLLM's prefixes, two formats:
- `sagemaker_chat/<endpoint>`: the messages API of TGI and LMI containers, OpenAI's chat format
  (sent as is; answers and stream chunks are OpenAI's, the stream as server-sent events split
  across payload parts);
- `sagemaker/<endpoint>`: TGI's text generation format (`{"inputs", "parameters"}` answered
  `[{"generated_text", "details"}]`, streamed as TGI's token events); the chat messages become
  one prompt (`Role: text` lines, then `Assistant:`). JumpStart embedding models answer
  `{"text_inputs": [...]}` with `{"embedding": [[...]]}`.

Deployment settings (LiteLLM's names): `region` / `params.aws_region_name`, AWS credentials as for
Bedrock, `api_base` (the runtime's root, default `https://runtime.sagemaker.{region}.amazonaws.com`,
or an endpoint's whole `.../endpoints/<name>/invocations` URL), and
`params.model_id` for an inference component (sent as `X-Amzn-SageMaker-Inference-Component`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote

import orjson

from providers.adapter import (
    ProviderAdapter,
    UploadFile,
    UpstreamRequest,
    UpstreamResponse,
    json_parse,
)
from providers.base import Deployment, Endpoint
from providers.bedrock.auth import credentials_resolve, region_for, request_sign
from providers.bedrock.errors import bedrock_error_parse
from providers.bedrock.eventstream import EventStreamError, eventstream_messages
from providers.errors import (
    InvalidRequestError,
    UpstreamError,
    UpstreamFailure,
    embedding_texts,
    upstream_error,
)
from providers.http import UpstreamHTTPResponse
from providers.huggingface.tgi import (
    GenerateStreamTranslator,
    chat_generate_request,
    chunk_as_chat,
    completion_as_chat,
    generate_response,
)
from providers.sse import sse_data

SERVICE = "sagemaker"
EVENTSTREAM = "application/vnd.amazon.eventstream"
# Exceptions a response stream may end with, and the status each stands for.
STREAM_EXCEPTIONS = {"ModelStreamError": 424, "InternalStreamFailure": 502}


def runtime_base(deployment: Deployment) -> str:
    base = (
        deployment.api_base or f"https://runtime.sagemaker.{region_for(deployment)}.amazonaws.com"
    )
    return base.rstrip("/")


def invocation_request(
    *, deployment: Deployment, payload: dict[str, Any], stream: bool
) -> UpstreamRequest:
    action = "invocations-response-stream" if stream else "invocations"
    headers = {
        "Content-Type": "application/json",
        "Accept": EVENTSTREAM if stream else "application/json",
    }
    component = deployment.params.get("model_id")
    if component:
        headers["X-Amzn-SageMaker-Inference-Component"] = str(component)
    base = runtime_base(deployment)
    if "/endpoints/" in base:  # a whole invocation URL, as some LiteLLM configs give
        url = f"{base.rsplit('/', 1)[0]}/{action}"
    else:
        url = f"{base}/endpoints/{quote(deployment.upstream_model, safe='')}/{action}"
    return UpstreamRequest(
        method="POST",
        url=url,
        headers=headers,
        content=orjson.dumps(payload),
    )


async def payload_bytes(
    chunks: AsyncIterator[bytes], *, secrets: tuple[str, ...]
) -> AsyncIterator[bytes]:
    """The container's bytes out of the response stream's `PayloadPart` events."""
    try:
        async for message in eventstream_messages(chunks):
            headers = message.headers
            if headers.get(":message-type") == "exception":
                name = str(headers.get(":exception-type") or "")
                raise upstream_error(
                    provider=SERVICE,
                    status=STREAM_EXCEPTIONS.get(name, 502),
                    failure=bedrock_error_parse(message.payload, {"x-amzn-errortype": name}),
                    secrets=secrets,
                )
            if headers.get(":event-type") == "PayloadPart":
                yield bytes(message.payload)
    except EventStreamError as exc:
        raise UpstreamError(
            f"sagemaker sent a corrupt event stream ({exc}).", provider=SERVICE
        ) from exc


class SageMakerAdapter(ProviderAdapter):
    """`sagemaker/`: TGI's text generation payload."""

    name: ClassVar[str] = "sagemaker"
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
            texts = embedding_texts(body, provider="SageMaker")
            payload: dict[str, Any] = {"text_inputs": texts}
        elif endpoint is Endpoint.CHAT:
            payload = chat_generate_request(body=body, stream=stream)
            if stream:
                payload["stream"] = True
        else:
            raise InvalidRequestError(f"sagemaker deployments do not serve /v1/{endpoint.value}.")
        return invocation_request(deployment=deployment, payload=payload, stream=stream)

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        answer = json_parse(response.body, provider=self.name)
        if endpoint is Endpoint.EMBEDDINGS:
            vectors = answer.get("embedding") if isinstance(answer, dict) else None
            if not isinstance(vectors, list):
                raise UpstreamError("sagemaker answered without embeddings.", provider=self.name)
            return {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": v}
                    for i, v in enumerate(vectors)
                ],
                "model": deployment.upstream_model,
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        if not isinstance(answer, (list, dict)):
            raise UpstreamError("sagemaker answered with an unexpected body.", provider=self.name)
        text = generate_response(
            answer, model=deployment.upstream_model, identity=f"chatcmpl-{uuid.uuid4().hex}"
        )
        return completion_as_chat(text)

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        translator = GenerateStreamTranslator(
            model=deployment.upstream_model, identity=f"chatcmpl-{uuid.uuid4().hex}"
        )
        first = True
        async for data in sse_data(payload_bytes(chunks, secrets=deployment.secrets)):
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(
                    "sagemaker sent an invalid stream event.", provider=self.name
                ) from exc
            if isinstance(event, dict) and event.get("error"):
                raise upstream_error(
                    provider=self.name,
                    status=502,
                    failure=UpstreamFailure(message=str(event["error"])),
                    secrets=deployment.secrets,
                )
            for chunk in translator.feed(event if isinstance(event, dict) else {}):
                if chunk["choices"]:
                    yield chunk_as_chat(chunk, first=first)
                    first = False
                else:
                    yield chunk_as_chat(chunk, first=False)
            if translator.finished:
                return
        raise UpstreamError("sagemaker ended the stream early.", provider=self.name)

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
            service=SERVICE,
        )
        request.encoded = True  # the path is sent exactly as signed
        return await super()._open(request, deployment=deployment)


class SageMakerChatAdapter(SageMakerAdapter):
    """`sagemaker_chat/`: the container's OpenAI-compatible messages API."""

    name: ClassVar[str] = "sagemaker_chat"
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
            raise InvalidRequestError(
                f"sagemaker_chat deployments do not serve /v1/{endpoint.value}."
            )
        payload = {k: v for k, v in body.items() if k not in ("stream", "stream_options", "store")}
        payload["model"] = deployment.upstream_model
        if stream:
            payload["stream"] = True
            payload["stream_options"] = {"include_usage": True}
        return invocation_request(deployment=deployment, payload=payload, stream=stream)

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        answer = json_parse(response.body, provider=self.name)
        if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
            raise UpstreamError("sagemaker_chat answered without choices.", provider=self.name)
        answer.setdefault("object", "chat.completion")
        answer.setdefault("created", int(time.time()))
        return answer

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        finished = False
        async for data in sse_data(payload_bytes(chunks, secrets=deployment.secrets)):
            if data == "[DONE]":
                return
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(
                    "sagemaker_chat sent an invalid stream event.", provider=self.name
                ) from exc
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk and "choices" not in chunk:
                raise upstream_error(
                    provider=self.name,
                    status=502,
                    failure=UpstreamFailure(message=str(chunk["error"])),
                    secrets=deployment.secrets,
                )
            finished = finished or any(
                isinstance(c, dict) and c.get("finish_reason") for c in chunk.get("choices") or []
            )
            yield chunk
        if not finished:
            raise UpstreamError("sagemaker_chat ended the stream early.", provider=self.name)
