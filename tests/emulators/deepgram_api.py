"""A local emulator of Deepgram's pre-recorded transcription API, written from its reference:
`POST /v1/listen` with the audio as the raw body and options as query parameters, `Authorization:
Token <key>`, errors as `{"err_code", "err_msg", "request_id"}`, answers with `metadata` and
`results.channels[].alternatives[]` (transcript, confidence, words) plus `results.utterances`
when `utterances=true`.

The "audio" tests send is UTF-8 text standing for speech: each word lasts 0.5 s and every
sentence is an utterance, so expected timings are easy to compute.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.emulators.scripted import Fault, ScriptedEmulator, json_response

API_KEY = "dg-emulator-key"
QUERY = {
    "model",
    "smart_format",
    "punctuate",
    "language",
    "detect_language",
    "utterances",
    "keyterm",
    "diarize",
}
WORD_SECONDS = 0.5


def dg_error(status: int, code: str, message: str, **headers: str) -> Fault:
    return Fault(status, {"err_code": code, "err_msg": message, "request_id": "req-dg"}, headers)


def sentences(text: str) -> list[list[str]]:
    out: list[list[str]] = []
    for sentence in text.replace("?", ".").split("."):
        words = sentence.split()
        if words:
            out.append(words)
    return out


def listen_result(text: str, *, utterances: bool, language: str) -> dict[str, Any]:
    words: list[dict[str, Any]] = []
    spoken: list[dict[str, Any]] = []
    clock = 0.0
    for index, sentence in enumerate(sentences(text)):
        first = len(words)
        for position, word in enumerate(sentence):
            last = position == len(sentence) - 1
            words.append(
                {
                    "word": word.lower(),
                    "start": clock,
                    "end": clock + WORD_SECONDS,
                    "confidence": 0.99,
                    "punctuated_word": word + ("." if last else ""),
                }
            )
            clock += WORD_SECONDS
        spoken.append(
            {
                "start": words[first]["start"],
                "end": words[-1]["end"],
                "confidence": 0.99,
                "channel": 0,
                "transcript": " ".join(w["punctuated_word"] for w in words[first:]),
                "words": words[first:],
                "id": f"utt-{index}",
            }
        )
    channel: dict[str, Any] = {
        "alternatives": [
            {
                "transcript": " ".join(w["punctuated_word"] for w in words),
                "confidence": 0.99,
                "words": words,
            }
        ]
    }
    if language:
        channel["detected_language"] = language
    results: dict[str, Any] = {"channels": [channel]}
    if utterances:
        results["utterances"] = spoken
    return {
        "metadata": {
            "request_id": "req-dg",
            "duration": clock,
            "channels": 1,
            "models": ["emulated"],
        },
        "results": results,
    }


class DeepgramEmulator(ScriptedEmulator):
    name = "deepgram-emulator"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/listen", self._listen)

    async def _listen(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        if request.headers.get("Authorization") != f"Token {API_KEY}":
            return dg_error(401, "INVALID_AUTH", "Invalid credentials.").response()
        unknown = sorted(set(received.query) - QUERY)
        if unknown:
            return dg_error(400, "Bad Request", f"Unknown parameter: {unknown[0]}").response()
        if not received.query.get("model"):
            return dg_error(400, "Bad Request", "model is required").response()
        if request.content_type == "application/json" or not received.raw:
            return dg_error(
                400, "Bad Request", "failed to process audio: corrupt or unsupported data"
            ).response()
        reply = self.next_reply()
        if isinstance(reply, Fault):
            return reply.response()
        language = received.query.get("language", "")
        detected = "en" if received.query.get("detect_language") == "true" else ""
        return json_response(
            listen_result(
                received.raw.decode("utf-8", errors="replace"),
                utterances=received.query.get("utterances") == "true",
                language=detected if not language else "",
            )
        )


_emulator: DeepgramEmulator | None = None


def deepgram_emulator_get() -> DeepgramEmulator:
    global _emulator
    if _emulator is None:
        _emulator = DeepgramEmulator()
        _emulator.start()
    return _emulator
