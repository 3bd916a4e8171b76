"""A local emulator of AssemblyAI's async transcription API, written from its reference:
`POST /v2/upload` (raw bytes → `upload_url`), `POST /v2/transcript` (a job; `audio_url` required,
unknown fields refused), `GET /v2/transcript/{id}` (the job moves queued → processing →
completed, one step per poll, or to `error`), and its exports `/sentences`, `/srt`, `/vtt`.
Auth is the bare `authorization` header; errors are `{"error": "..."}`.

As in the Deepgram emulator, the uploaded "audio" is UTF-8 text standing for speech: 500 ms a
word, one sentence per segment.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.emulators.deepgram_api import sentences
from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

API_KEY = "aai-emulator-key"
JOB_FIELDS = {
    "audio_url",
    "speech_model",
    "language_code",
    "language_detection",
    "punctuate",
    "format_text",
    "speaker_labels",
    "keyterms_prompt",
}
WORD_MS = 500


def aai_error(status: int, message: str, **headers: str) -> Fault:
    return Fault(status, {"error": message}, headers)


@dataclass
class FailJob:
    """Script: the next job ends in `error` with this message."""

    message: str


def _clock(ms: int, separator: str) -> str:
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


class AssemblyAIEmulator(ScriptedEmulator):
    name = "assemblyai-emulator"

    def __init__(self) -> None:
        super().__init__()
        self.uploads: dict[str, bytes] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def reset(self) -> None:
        super().reset()
        self.uploads.clear()
        self.jobs.clear()
        self._ids = itertools.count(1)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/upload", self._upload)
        app.router.add_post("/v2/transcript", self._create)
        app.router.add_get("/v2/transcript/{id}", self._poll)
        app.router.add_get("/v2/transcript/{id}/sentences", self._sentences)
        app.router.add_get("/v2/transcript/{id}/{format:srt|vtt}", self._subtitles)

    async def _admit(self, request: web.Request) -> tuple[Any, web.Response | None]:
        received = await self.receive(request)
        if request.headers.get("authorization") != API_KEY:
            return received, aai_error(
                401, "Authentication error, API token missing/invalid"
            ).response()
        reply = self.next_reply()
        if isinstance(reply, Fault):
            return received, reply.response()
        if isinstance(reply, FailJob):
            self.script(reply)  # a job failure is for the job, not this request
        return received, None

    async def _upload(self, request: web.Request) -> web.Response:
        received, refused = await self._admit(request)
        if refused:
            return refused
        if not received.raw:
            return aai_error(400, "Upload data is empty").response()
        token = f"up{next(self._ids)}"
        self.uploads[f"{self.url}/cdn/upload/{token}"] = received.raw
        return json_response({"upload_url": f"{self.url}/cdn/upload/{token}"})

    async def _create(self, request: web.Request) -> web.Response:
        received, refused = await self._admit(request)
        if refused:
            return refused
        body = received.body
        if not isinstance(body, dict) or not body.get("audio_url"):
            return aai_error(400, "audio_url is required").response()
        unknown = sorted(set(body) - JOB_FIELDS)
        if unknown:
            return aai_error(400, f"Invalid field: {unknown[0]}").response()
        if body["audio_url"] not in self.uploads:
            return aai_error(400, "Download error, unable to download the audio").response()
        failure = self.next_reply()
        job_id = f"job-{next(self._ids)}"
        self.jobs[job_id] = {
            "id": job_id,
            "status": "queued",
            "text": self.uploads[body["audio_url"]].decode(),
            "language_code": body.get("language_code") or "en_us",
            "fail": failure.message if isinstance(failure, FailJob) else None,
            "request": body,
        }
        return json_response(self._public(self.jobs[job_id]))

    def _words(self, job: dict[str, Any]) -> list[list[dict[str, Any]]]:
        clock, out = 0, []
        for sentence in sentences(job["text"]):
            words = []
            for position, word in enumerate(sentence):
                last = position == len(sentence) - 1
                words.append(
                    {
                        "text": word + ("." if last else ""),
                        "start": clock,
                        "end": clock + WORD_MS,
                        "confidence": 0.98,
                        "speaker": None,
                    }
                )
                clock += WORD_MS
            out.append(words)
        return out

    def _public(self, job: dict[str, Any]) -> dict[str, Any]:
        public: dict[str, Any] = {
            "id": job["id"],
            "status": job["status"],
            "audio_url": job["request"]["audio_url"],
            "language_code": job["language_code"],
            "text": None,
            "words": None,
            "audio_duration": None,
            "error": None,
        }
        if job["status"] == "completed":
            words = [w for sentence in self._words(job) for w in sentence]
            public |= {
                "text": " ".join(w["text"] for w in words),
                "words": words,
                "audio_duration": words[-1]["end"] // 1000 if words else 0,
                "confidence": 0.98,
            }
        if job["status"] == "error":
            public["error"] = job["fail"]
        return public

    async def _job(self, request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        _, refused = await self._admit(request)
        if refused:
            return None, refused
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return None, aai_error(404, "Transcript not found").response()
        return job, None

    async def _poll(self, request: web.Request) -> web.Response:
        job, refused = await self._job(request)
        if refused or job is None:
            return refused  # type: ignore[return-value]
        if job["status"] == "queued":
            job["status"] = "processing"
        elif job["status"] == "processing":
            job["status"] = "error" if job["fail"] else "completed"
        return json_response(self._public(job))

    async def _sentences(self, request: web.Request) -> web.Response:
        job, refused = await self._job(request)
        if refused or job is None:
            return refused  # type: ignore[return-value]
        if job["status"] != "completed":
            return aai_error(400, "Transcript is not completed").response()
        listed = [
            {
                "text": " ".join(w["text"] for w in words),
                "start": words[0]["start"],
                "end": words[-1]["end"],
                "confidence": 0.98,
                "words": words,
            }
            for words in self._words(job)
        ]
        return json_response({"id": job["id"], "sentences": listed, "confidence": 0.98})

    async def _subtitles(self, request: web.Request) -> web.Response:
        job, refused = await self._job(request)
        if refused or job is None:
            return refused  # type: ignore[return-value]
        kind = request.match_info["format"]
        separator = "," if kind == "srt" else "."
        cues = []
        for index, words in enumerate(self._words(job), start=1):
            span = (
                f"{_clock(words[0]['start'], separator)} --> {_clock(words[-1]['end'], separator)}"
            )
            text = " ".join(w["text"] for w in words)
            cues.append(f"{index}\n{span}\n{text}\n" if kind == "srt" else f"{span}\n{text}\n")
        body = "\n".join(cues)
        if kind == "vtt":
            body = "WEBVTT\n\n" + body
        return web.Response(text=body, content_type="text/plain")


_emulator: AssemblyAIEmulator | None = None


def assemblyai_emulator_get() -> AssemblyAIEmulator:
    global _emulator
    if _emulator is None:
        _emulator = AssemblyAIEmulator()
        _emulator.start()
    return _emulator
