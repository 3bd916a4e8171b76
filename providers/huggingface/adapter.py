"""Hugging Face: the Inference Providers router and Text Generation Inference (TGI) servers.

- Chat: OpenAI-style `POST {base}/v1/chat/completions` (the router, TGI's Messages API), passed
  through with the upstream model id; `max_completion_tokens` becomes `max_tokens` and the
  OpenAI-only fields TGI does not know (`user`, `metadata`, `store`, ...) are not sent.
- Text completions: TGI's native `POST {base}/generate` and `/generate_stream` (`tgi.py`).
- Embeddings: the `feature-extraction` task (`{"inputs": [...]}` → one vector per input);
  OpenAI's `encoding_format: base64` is encoded by Ogem (little-endian float32).
- Audio: Whisper-style ASR (`automatic-speech-recognition`: base64 audio in, `text` and
  timestamped `chunks` out, rendered in every OpenAI response format) and text-to-speech
  (`{"inputs": text}` → audio bytes, relayed as they come).

Deployment settings: `api_base` (default https://router.huggingface.co; a dedicated Inference
Endpoint or TGI server URL works too), `api_key` (an `hf_...` bearer token), and
`params.task_path`: the path of task requests (default `/hf-inference/models/{model}`, plus
`/pipeline/feature-extraction` for embeddings); `{model}` is replaced by the upstream model id,
and `""` serves a dedicated endpoint's root.
"""

from __future__ import annotations

import base64
import struct
import uuid
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from providers.adapter import ProviderAdapter, UploadFile, UpstreamRequest, json_parse
from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError, UpstreamError, error_object_parse, upstream_error
from providers.huggingface.tgi import (
    GenerateStreamTranslator,
    generate_request,
    generate_response,
)
from providers.sse import sse_data
from providers.transcripts import (
    Segment,
    Transcript,
    granularities_of,
    response_format_of,
    transcript_render,
)

PROVIDER = "huggingface"
DEFAULT_API_BASE = "https://router.huggingface.co"
DEFAULT_TASK_PATH = "/hf-inference/models/{model}"
CHAT_NOT_SENT = frozenset(
    {
        "user",
        "metadata",
        "store",
        "parallel_tool_calls",
        "service_tier",
        "prediction",
        "modalities",
        "audio",
        "reasoning_effort",
        "max_completion_tokens",
    }
)
SEGMENTED = frozenset({"verbose_json", "srt", "vtt"})


def _base(deployment: Deployment) -> str:
    return (deployment.api_base or DEFAULT_API_BASE).rstrip("/").removesuffix("/v1")


def task_url(deployment: Deployment, *, suffix: str = "") -> str:
    path = deployment.params.get("task_path")
    if path is None:
        path = DEFAULT_TASK_PATH + suffix
    return _base(deployment) + str(path).replace("{model}", deployment.upstream_model)


def chat_request(*, body: dict[str, Any], deployment: Deployment, stream: bool) -> dict[str, Any]:
    payload = {k: v for k, v in body.items() if k not in CHAT_NOT_SENT}
    if body.get("max_completion_tokens") is not None and body.get("max_tokens") is None:
        payload["max_tokens"] = body["max_completion_tokens"]
    payload["model"] = deployment.upstream_model
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    else:
        payload.pop("stream", None)
        payload.pop("stream_options", None)
    return payload


def embeddings_request(body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise InvalidRequestError(
            f"{PROVIDER} embeds strings: `input` must be a string or an array of strings.",
            param="input",
        )
    if body.get("dimensions") is not None:
        raise InvalidRequestError(
            f"{PROVIDER} feature-extraction models have a fixed size; `dimensions` is not "
            "supported.",
            param="dimensions",
        )
    return {"inputs": texts}


def embeddings_response(vectors: Any, *, model: str, encoding: str | None) -> dict[str, Any]:
    valid = isinstance(vectors, list) and all(
        isinstance(v, list) and all(isinstance(x, (int, float)) for x in v) for v in vectors
    )
    if not valid:
        raise UpstreamError(
            f"{PROVIDER} did not return one vector per input (is the model a sentence "
            "embedding model?).",
            provider=PROVIDER,
        )
    data = []
    for index, vector in enumerate(vectors):
        embedding: Any = [float(x) for x in vector]
        if encoding == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": 0, "total_tokens": 0},
    }


def asr_request(*, body: dict[str, Any], audio: UploadFile) -> dict[str, Any]:
    payload: dict[str, Any] = {"inputs": base64.b64encode(audio.content).decode()}
    if response_format_of(body) in SEGMENTED:
        payload["parameters"] = {"return_timestamps": True}
    return payload


def asr_to_transcript(reply: Any, *, language: str) -> Transcript:
    if isinstance(reply, list):
        reply = reply[0] if reply else {}
    segments = []
    for chunk in reply.get("chunks") or []:
        start, end = [*(chunk.get("timestamp") or []), None, None][:2]
        start = float(start or 0)
        segments.append(
            Segment(
                start=start,
                end=float(end if end is not None else start),
                text=str(chunk.get("text") or "").strip(),
            )
        )
    return Transcript(
        text=str(reply.get("text") or "").strip(),
        duration=segments[-1].end if segments else 0.0,
        language=language,
        segments=segments,
    )


class HuggingFaceAdapter(ProviderAdapter):
    name: ClassVar[str] = PROVIDER
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {
            Endpoint.CHAT,
            Endpoint.COMPLETIONS,
            Endpoint.EMBEDDINGS,
            Endpoint.AUDIO_TRANSCRIPTIONS,
            Endpoint.AUDIO_SPEECH,
        }
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
        headers = {"Authorization": f"Bearer {deployment.api_key or ''}"}
        base = _base(deployment)
        if endpoint is Endpoint.CHAT:
            payload = chat_request(body=body, deployment=deployment, stream=stream)
            return UpstreamRequest("POST", f"{base}/v1/chat/completions", headers, json=payload)
        if endpoint is Endpoint.COMPLETIONS:
            path = "generate_stream" if stream else "generate"
            payload = generate_request(body=body, stream=stream)
            return UpstreamRequest("POST", f"{base}/{path}", headers, json=payload)
        if endpoint is Endpoint.EMBEDDINGS:
            url = task_url(deployment, suffix="/pipeline/feature-extraction")
            return UpstreamRequest("POST", url, headers, json=embeddings_request(body))
        if endpoint is Endpoint.AUDIO_TRANSCRIPTIONS:
            audio = next((f for f in files or [] if f.field == "file"), None)
            if audio is None:
                raise InvalidRequestError("Missing required file: `file`.", param="file")
            payload = asr_request(body=body, audio=audio)
            return UpstreamRequest("POST", task_url(deployment), headers, json=payload)
        if endpoint is Endpoint.AUDIO_SPEECH:
            headers["Accept"] = "audio/*"
            payload = {"inputs": str(body.get("input") or "")}
            return UpstreamRequest("POST", task_url(deployment), headers, json=payload)
        raise InvalidRequestError(f"Hugging Face deployments do not serve /v1/{endpoint.value}.")

    async def call(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> dict[str, Any] | bytes:
        request = self.request_translate(
            endpoint=endpoint, deployment=deployment, body=body, stream=False, files=files
        )
        response = await self.exchange(request, deployment=deployment)
        reply = json_parse(response.body, provider=PROVIDER)
        model = deployment.upstream_model
        if endpoint is Endpoint.COMPLETIONS:
            return generate_response(reply, model=model, identity=f"cmpl-{uuid.uuid4().hex}")
        if endpoint is Endpoint.EMBEDDINGS:
            return embeddings_response(reply, model=model, encoding=body.get("encoding_format"))
        if endpoint is Endpoint.AUDIO_TRANSCRIPTIONS:
            transcript = asr_to_transcript(reply, language=str(body.get("language") or ""))
            return transcript_render(
                transcript,
                response_format=response_format_of(body),
                granularities=granularities_of(body),
            )
        return reply

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        generate = (
            GenerateStreamTranslator(
                model=deployment.upstream_model, identity=f"cmpl-{uuid.uuid4().hex}"
            )
            if endpoint is Endpoint.COMPLETIONS
            else None
        )
        async for data in sse_data(chunks):
            if data == "[DONE]":
                return
            try:
                event = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise UpstreamError(
                    f"{PROVIDER} sent an invalid stream event.", provider=PROVIDER
                ) from exc
            if isinstance(event, dict) and "error" in event and "choices" not in event:
                raise upstream_error(
                    provider=PROVIDER,
                    status=502,
                    failure=error_object_parse(event),
                    secrets=deployment.secrets,
                )
            if generate is None:
                yield event
                continue
            for chunk in generate.feed(event):
                yield chunk
            if generate.finished:
                return
        raise UpstreamError(f"{PROVIDER} ended the stream early.", provider=PROVIDER)
