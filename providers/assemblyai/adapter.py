"""AssemblyAI's asynchronous transcription behind `/v1/audio/transcriptions`.

Four steps: upload the audio (`POST /v2/upload`, raw bytes → `upload_url`), create the job
(`POST /v2/transcript` with `audio_url`), poll `GET /v2/transcript/{id}` until `completed` or
`error`, then read what the response format needs: the transcript itself (`json`, `text`), its
`/srt` or `/vtt` export, or its `/sentences` (the segments of `verbose_json`).

Deployment settings: `api_base` (default https://api.assemblyai.com; the EU one is
https://api.eu.assemblyai.com), `api_key` (sent as the bare `authorization` header), and
`params`: `poll_interval` (seconds between polls, default 1), `transcript` (extra job fields,
e.g. `{"speaker_labels": true}`). The upstream model (e.g. `universal`, `slam-1`) is sent as
`speech_model` unless it is `default`. A request's `language` becomes `language_code`, else
language detection is turned on. Polling stops at the deployment's total timeout (504).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, ClassVar

from providers.adapter import ProviderAdapter, UploadFile, UpstreamRequest, json_parse
from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError, UpstreamError, UpstreamTimeoutError
from providers.transcripts import (
    Segment,
    Transcript,
    Word,
    granularities_of,
    response_format_of,
    transcript_render,
)

PROVIDER = "assemblyai"
DEFAULT_API_BASE = "https://api.assemblyai.com"
DEFAULT_POLL_INTERVAL = 1.0


def _base(deployment: Deployment) -> str:
    return (deployment.api_base or DEFAULT_API_BASE).rstrip("/").removesuffix("/v2")


def transcript_job(*, body: dict[str, Any], deployment: Deployment, audio_url: str) -> dict:
    job: dict[str, Any] = {"audio_url": audio_url, "punctuate": True, "format_text": True}
    if deployment.upstream_model and deployment.upstream_model != "default":
        job["speech_model"] = deployment.upstream_model
    if body.get("language"):
        job["language_code"] = str(body["language"])
    else:
        job["language_detection"] = True
    job.update(deployment.params.get("transcript") or {})
    return job


def job_to_transcript(job: dict[str, Any], sentences: list[dict[str, Any]]) -> Transcript:
    return Transcript(
        text=str(job.get("text") or ""),
        duration=float(job.get("audio_duration") or 0),
        language=str(job.get("language_code") or ""),
        segments=[
            Segment(start=s["start"] / 1000, end=s["end"] / 1000, text=str(s.get("text") or ""))
            for s in sentences
        ],
        words=[
            Word(word=str(w.get("text") or ""), start=w["start"] / 1000, end=w["end"] / 1000)
            for w in job.get("words") or []
        ],
    )


class AssemblyAIAdapter(ProviderAdapter):
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
        """The first round trip (the upload); `call` drives the rest."""
        if endpoint is not Endpoint.AUDIO_TRANSCRIPTIONS:
            raise InvalidRequestError(f"AssemblyAI deployments do not serve /v1/{endpoint.value}.")
        audio = next((f for f in files or [] if f.field == "file"), None)
        if audio is None:
            raise InvalidRequestError("Missing required file: `file`.", param="file")
        return UpstreamRequest(
            method="POST",
            url=f"{_base(deployment)}/v2/upload",
            headers={**self._auth(deployment), "Content-Type": "application/octet-stream"},
            content=audio.content,
        )

    @staticmethod
    def _auth(deployment: Deployment) -> dict[str, str]:
        return {"authorization": deployment.api_key or ""}

    async def _json(self, request: UpstreamRequest, *, deployment: Deployment) -> Any:
        return json_parse(
            (await self.exchange(request, deployment=deployment)).body, provider=PROVIDER
        )

    async def _get(self, path: str, *, deployment: Deployment) -> bytes:
        request = UpstreamRequest("GET", f"{_base(deployment)}{path}", self._auth(deployment))
        return (await self.exchange(request, deployment=deployment)).body

    async def call(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> dict[str, Any] | bytes:
        response_format = response_format_of(body)
        upload = self.request_translate(
            endpoint=endpoint, deployment=deployment, body=body, stream=False, files=files
        )
        uploaded = await self._json(upload, deployment=deployment)
        create = UpstreamRequest(
            "POST",
            f"{_base(deployment)}/v2/transcript",
            self._auth(deployment),
            json=transcript_job(body=body, deployment=deployment, audio_url=uploaded["upload_url"]),
        )
        job = await self._json(create, deployment=deployment)
        job = await self._wait(job, deployment=deployment)
        identity = job["id"]
        if response_format in ("srt", "vtt"):
            return await self._get(
                f"/v2/transcript/{identity}/{response_format}", deployment=deployment
            )
        sentences: list[dict[str, Any]] = []
        if response_format == "verbose_json":
            raw = await self._get(f"/v2/transcript/{identity}/sentences", deployment=deployment)
            sentences = json_parse(raw, provider=PROVIDER).get("sentences") or []
        return transcript_render(
            job_to_transcript(job, sentences),
            response_format=response_format,
            granularities=granularities_of(body),
        )

    async def _wait(self, job: dict[str, Any], *, deployment: Deployment) -> dict[str, Any]:
        """Poll the job until it completes; its `error` status is the audio's problem (400)."""
        interval = float(deployment.params.get("poll_interval", DEFAULT_POLL_INTERVAL))
        deadline = time.monotonic() + deployment.timeouts.total
        while True:
            status = job.get("status")
            if status == "completed":
                return job
            if status == "error":
                problem = job.get("error") or "unknown error"
                raise InvalidRequestError(f"{PROVIDER} could not transcribe the audio: {problem}")
            if status not in ("queued", "processing"):
                raise UpstreamError(
                    f"{PROVIDER} reported an unknown transcript status {status!r}.",
                    provider=PROVIDER,
                )
            if time.monotonic() + interval > deadline:
                raise UpstreamTimeoutError(
                    f"{PROVIDER} did not finish the transcript in time.", provider=PROVIDER
                )
            await asyncio.sleep(interval)
            raw = await self._get(f"/v2/transcript/{job['id']}", deployment=deployment)
            job = json_parse(raw, provider=PROVIDER)
