"""Deepgram's pre-recorded speech-to-text (`POST /v1/listen`) behind `/v1/audio/transcriptions`.

The audio goes as the raw request body (its content type kept), options as query parameters:
`model` (the upstream model, e.g. `nova-3`), `smart_format=true`, `language` when the request
names one (else `detect_language=true`), and `utterances=true` when the answer needs segments
(`verbose_json`, `srt`, `vtt`). Deployment settings: `api_base` (default
https://api.deepgram.com), `api_key` (sent as `Authorization: Token ...`) and `params.query`
(extra query parameters, e.g. `{"diarize": true}`). OpenAI's `prompt` becomes Deepgram's
`keyterm` for Nova-3 models and is otherwise not sent; `temperature` has no equivalent.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlencode

from providers.adapter import ProviderAdapter, UploadFile, UpstreamRequest, json_parse
from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError
from providers.transcripts import (
    Segment,
    Transcript,
    Word,
    granularities_of,
    response_format_of,
    transcript_render,
)

PROVIDER = "deepgram"
DEFAULT_API_BASE = "https://api.deepgram.com"
SEGMENTED = frozenset({"verbose_json", "srt", "vtt"})


def _flag(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def listen_url(*, deployment: Deployment, body: dict[str, Any]) -> str:
    base = (deployment.api_base or DEFAULT_API_BASE).rstrip("/").removesuffix("/v1/listen")
    base = base.removesuffix("/v1")
    query: list[tuple[str, str]] = [("model", deployment.upstream_model), ("smart_format", "true")]
    if body.get("language"):
        query.append(("language", str(body["language"])))
    else:
        query.append(("detect_language", "true"))
    if response_format_of(body) in SEGMENTED:
        query.append(("utterances", "true"))
    if body.get("prompt") and deployment.upstream_model.startswith("nova-3"):
        query.append(("keyterm", str(body["prompt"])))
    for name, value in (deployment.params.get("query") or {}).items():
        query.append((str(name), _flag(value)))
    return f"{base}/v1/listen?{urlencode(query)}"


def _audio(files: list[UploadFile] | None) -> UploadFile:
    for upload in files or []:
        if upload.field == "file":
            return upload
    raise InvalidRequestError("Missing required file: `file`.", param="file")


def listen_to_transcript(reply: dict[str, Any], *, language: str = "") -> Transcript:
    results = reply.get("results") or {}
    channels = results.get("channels") or [{}]
    channel = channels[0]
    alternative = (channel.get("alternatives") or [{}])[0]
    words = [
        Word(
            word=str(w.get("punctuated_word") or w.get("word") or ""),
            start=float(w.get("start") or 0),
            end=float(w.get("end") or 0),
        )
        for w in alternative.get("words") or []
    ]
    segments = [
        Segment(
            start=float(u.get("start") or 0),
            end=float(u.get("end") or 0),
            text=str(u.get("transcript") or ""),
        )
        for u in results.get("utterances") or []
        if u.get("channel", 0) == 0
    ]
    return Transcript(
        text=str(alternative.get("transcript") or ""),
        duration=float((reply.get("metadata") or {}).get("duration") or 0),
        language=language or str(channel.get("detected_language") or ""),
        segments=segments,
        words=words,
    )


class DeepgramAdapter(ProviderAdapter):
    name: ClassVar[str] = PROVIDER
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.AUDIO_TRANSCRIPTIONS})

    def build_request(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        stream: bool,
        files: list[UploadFile] | None = None,
    ) -> UpstreamRequest:
        if endpoint is not Endpoint.AUDIO_TRANSCRIPTIONS:
            raise InvalidRequestError(f"Deepgram deployments do not serve /v1/{endpoint.value}.")
        audio = _audio(files)
        return UpstreamRequest(
            method="POST",
            url=listen_url(deployment=deployment, body=body),
            headers={
                "Authorization": f"Token {deployment.api_key or ''}",
                "Content-Type": audio.content_type or "application/octet-stream",
            },
            content=audio.content,
        )

    async def call(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> dict[str, Any] | bytes:
        """One round trip; the response format (from the request) decides the rendering."""
        request = self.request_translate(
            endpoint=endpoint, deployment=deployment, body=body, stream=False, files=files
        )
        response = await self.exchange(request, deployment=deployment)
        transcript = listen_to_transcript(
            json_parse(response.body, provider=PROVIDER), language=str(body.get("language") or "")
        )
        return transcript_render(
            transcript,
            response_format=response_format_of(body),
            granularities=granularities_of(body),
        )
