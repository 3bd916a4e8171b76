"""Gemini's Live API over a real WebSocket, as Google's Live API reference describes it.

Serves the Gemini API's `/ws/google.ai.generativelanguage.v1beta.GenerativeService.
BidiGenerateContent` (the key in `x-goog-api-key` or `?key=`) and Vertex AI's
`/ws/google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent` (`Authorization: Bearer`).

Each message from the client is a JSON object with exactly one of `setup` (the first message,
answered `setupComplete`; anything else first closes with 1007), `clientContent`
(`turns` added to the history; `turnComplete: true` makes the model answer), `realtimeInput`
(`audio` blobs; `activityStart`/`activityEnd` only with `automaticActivityDetection.disabled`,
the end making the model answer; `audioStreamEnd` with automatic detection, taken as the end of
speech) and `toolResponse`. A message while the model answers interrupts it
(`serverContent.interrupted`, then `turnComplete`).

Function calling: with `tool_call` set to (name, args) and a function of that name among
`setup.tools[].functionDeclarations`, a turn's answer is first a `toolCall` (`functionCalls`
with that call: an `id` on the Gemini API path, none on Vertex AI's, whose responses are matched
by name) carrying the turn's `usageMetadata` so far (per `usage_mode`); the turn then waits for
the `toolResponse` whose `functionResponses` answer it (an unknown id or name closes with 1007),
reads each `response` as prompt text and goes on with the reply as usual.

An answer: the reply's words as `serverContent.modelTurn.parts` (`text`, or `inlineData`
24 kHz PCM16 with `outputTranscription` when asked for), `generationComplete`, then
`turnComplete` with `usageMetadata` in the same message (`usage_mode` "separate": in a message
of its own after it; "none": never).

Counting (exact, for tests): text ceil(chars / 4) tokens (the system instruction included);
audio 32 tokens a second, rounded up per turn; each output word one text token, or for audio
one 250 ms chunk of silence, 8 audio tokens; prompt tokens of earlier turns are reported cached.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tests.emulators.websocket_server import WebSocketEmulator

GEMINI_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
VERTEX_PATH = "/ws/google.cloud.aiplatform.v1.LlmBidiService/BidiGenerateContent"
REPLY = "Hello from the Live API emulator."
AUDIO_TOKENS_PER_SECOND = 32
OUTPUT_CHUNK = bytes(12000)  # 250 ms of 24 kHz PCM16
OUTPUT_CHUNK_TOKENS = 8


@dataclass
class LiveConnection:
    path: str
    headers: dict[str, str]
    messages: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    closed: threading.Event = field(default_factory=threading.Event)

    @property
    def setup(self) -> dict[str, Any]:
        return self.messages[0]["setup"]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [message[kind] for message in self.messages if kind in message]


def _tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


class _Session:
    def __init__(self, emulator: GeminiLiveEmulator, ws: ServerConnection, conn: LiveConnection):
        self.emulator = emulator
        self.ws = ws
        self.conn = conn
        self.setup: dict[str, Any] = {}
        self.history_tokens = {"TEXT": 0, "AUDIO": 0}  # what earlier turns read
        self.pending_text = 0
        self.audio = bytearray()
        self.audio_rate = 16000
        self.running: asyncio.Task[None] | None = None
        self.stop = False
        self.pending_calls: list[dict[str, Any]] = []  # calls waiting for their toolResponse
        self.calls_made = 0

    async def out(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    def _automatic(self) -> bool:
        config = self.setup.get("realtimeInputConfig") or {}
        return not (config.get("automaticActivityDetection") or {}).get("disabled")

    async def serve(self) -> None:
        first = True
        async for raw in self.ws:
            message = json.loads(raw)
            self.conn.messages.append(message)
            if len(message) != 1:
                await self.ws.close(1007, "Request contains an invalid argument.")
                return
            if first:
                if "setup" not in message:
                    await self.ws.close(1007, "The first message must be setup.")
                    return
                first = False
                self.setup = message["setup"]
                instruction = self.setup.get("systemInstruction") or {}
                for part in instruction.get("parts") or ():
                    self.pending_text += _tokens(str(part.get("text") or ""))
                if self.emulator.close_after_setup is not None:
                    await self.ws.close(*self.emulator.close_after_setup)
                    return
                await self.out({"setupComplete": {}})
                continue
            await self.handle(message)

    async def interrupt(self) -> None:
        if self.running is not None and not self.running.done():
            self.stop = True
            await asyncio.gather(self.running, return_exceptions=True)

    async def handle(self, message: dict[str, Any]) -> None:
        if "clientContent" in message:
            await self.interrupt()
            content = message["clientContent"]
            for turn in content.get("turns") or ():
                for part in turn.get("parts") or ():
                    self.pending_text += _tokens(str(part.get("text") or ""))
            if content.get("turnComplete"):
                self.answer()
        elif "realtimeInput" in message:
            data = message["realtimeInput"]
            if ("activityStart" in data or "activityEnd" in data) and self._automatic():
                await self.ws.close(
                    1007, "activityStart/activityEnd need automatic activity detection disabled."
                )
                return
            if "activityStart" in data:
                await self.interrupt()
            if "audio" in data:
                blob = data["audio"]
                mime = str(blob.get("mimeType") or "")
                if "rate=" in mime:
                    self.audio_rate = int(mime.split("rate=")[1].split(";")[0])
                self.audio += base64.b64decode(blob.get("data") or "")
            if "activityEnd" in data or ("audioStreamEnd" in data and self._automatic()):
                self.answer()
        elif "toolResponse" in message:
            answers = message["toolResponse"].get("functionResponses") or []
            for answer in answers:
                match = [
                    call
                    for call in self.pending_calls
                    if call.get("id", call["name"]) == answer.get("id", answer.get("name"))
                    and call["name"] == answer.get("name")
                ]
                if not match or not isinstance(answer.get("response"), dict):
                    await self.ws.close(1007, "Request contains an invalid argument.")
                    return
                self.pending_calls.remove(match[0])
                self.pending_text += _tokens(json.dumps(answer["response"]))
            if answers and not self.pending_calls:
                self.answer(calls=False)
        else:
            await self.ws.close(1007, "Unknown message.")

    def _declared(self, name: str) -> bool:
        for tool in self.setup.get("tools") or ():
            for declaration in tool.get("functionDeclarations") or ():
                if declaration.get("name") == name:
                    return True
        return False

    def answer(self, *, calls: bool = True) -> None:
        seconds = len(self.audio) / (2 * self.audio_rate)
        audio_tokens = math.ceil(seconds * AUDIO_TOKENS_PER_SECOND)
        self.audio.clear()
        prompt = {
            "TEXT": self.history_tokens["TEXT"] + self.pending_text,
            "AUDIO": self.history_tokens["AUDIO"] + audio_tokens,
        }
        cached = dict(self.history_tokens)
        self.pending_text = 0
        self.stop = False
        wanted = self.emulator.tool_call
        if calls and wanted is not None and self._declared(wanted[0]):
            self.running = asyncio.ensure_future(self.call(prompt, cached, *wanted))
            return
        self.running = asyncio.ensure_future(self.generate(prompt, cached))

    def _usage(
        self, prompt: dict[str, int], cached: dict[str, int], out_tokens: int, modality: str
    ) -> dict[str, Any]:
        prompt_count = prompt["TEXT"] + prompt["AUDIO"]
        return {
            "promptTokenCount": prompt_count,
            "cachedContentTokenCount": cached["TEXT"] + cached["AUDIO"],
            "responseTokenCount": out_tokens,
            "totalTokenCount": prompt_count + out_tokens,
            "promptTokensDetails": [
                {"modality": name, "tokenCount": count} for name, count in prompt.items() if count
            ],
            "cacheTokensDetails": [
                {"modality": name, "tokenCount": count} for name, count in cached.items() if count
            ],
            "responseTokensDetails": [{"modality": modality, "tokenCount": out_tokens}],
        }

    async def call(
        self, prompt: dict[str, int], cached: dict[str, int], name: str, args: dict[str, Any]
    ) -> None:
        """The model calls a function: the turn pauses until its toolResponse."""
        self.calls_made += 1
        call: dict[str, Any] = {"name": name, "args": args}
        if self.conn.path.startswith(GEMINI_PATH):  # Vertex AI's calls carry no id
            call = {"id": f"function-call-{self.calls_made}", **call}
        self.pending_calls.append(call)
        out_tokens = _tokens(json.dumps(args))
        usage = self._usage(prompt, cached, out_tokens, "TEXT")
        self.emulator.usages.append(usage)
        self.history_tokens = {"TEXT": prompt["TEXT"] + out_tokens, "AUDIO": prompt["AUDIO"]}
        message: dict[str, Any] = {"toolCall": {"functionCalls": [call]}}
        if self.emulator.usage_mode == "same":
            message["usageMetadata"] = usage
        await self.out(message)
        if self.emulator.usage_mode == "separate":
            await self.out({"usageMetadata": usage})

    async def generate(self, prompt: dict[str, int], cached: dict[str, int]) -> None:
        audio = "AUDIO" in (self.setup.get("generationConfig") or {}).get(
            "responseModalities", ["AUDIO"]
        )
        transcribe = "outputAudioTranscription" in self.setup
        limit = (self.setup.get("generationConfig") or {}).get("maxOutputTokens")
        words = self.emulator.reply.split(" ")
        said: list[str] = []
        out_tokens = 0
        interrupted = False
        for number, word in enumerate(words):
            if self.stop:
                interrupted = True
                break
            if limit is not None and out_tokens >= limit:
                break
            delta = word if number == 0 else f" {word}"
            said.append(delta)
            if audio:
                chunk = base64.b64encode(OUTPUT_CHUNK).decode()
                content: dict[str, Any] = {
                    "modelTurn": {
                        "role": "model",
                        "parts": [
                            {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": chunk}}
                        ],
                    }
                }
                if transcribe:
                    content["outputTranscription"] = {"text": delta}
                out_tokens += OUTPUT_CHUNK_TOKENS
            else:
                content = {"modelTurn": {"role": "model", "parts": [{"text": delta}]}}
                out_tokens += 1
            await self.out({"serverContent": content})
            if self.emulator.delta_delay:
                await asyncio.sleep(self.emulator.delta_delay)
        modality = "AUDIO" if audio else "TEXT"
        usage = self._usage(prompt, cached, out_tokens, modality)
        self.emulator.usages.append(usage)
        # The answer is part of the conversation the next turn reads.
        self.history_tokens = {
            "TEXT": prompt["TEXT"] + (_tokens("".join(said)) if not audio else 0),
            "AUDIO": prompt["AUDIO"] + (out_tokens if audio else 0),
        }
        if interrupted:
            await self.out({"serverContent": {"interrupted": True}})
        else:
            await self.out({"serverContent": {"generationComplete": True}})
        done: dict[str, Any] = {"serverContent": {"turnComplete": True}}
        mode = self.emulator.usage_mode
        if mode == "same":
            done["usageMetadata"] = usage
        await self.out(done)
        if mode == "separate":
            await self.out({"usageMetadata": usage})


class GeminiLiveEmulator(WebSocketEmulator):
    thread_name = "gemini-live-emulator"

    def __init__(self, *, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.reset()

    def reset(self) -> None:
        self.connections: list[LiveConnection] = []
        self.usages: list[dict[str, Any]] = []
        self.reply = REPLY
        self.delta_delay = 0.0
        self.usage_mode = "same"  # "same", "separate" or "none"
        self.close_after_setup: tuple[int, str] | None = None  # (code, reason) after setup
        self.tool_call: tuple[str, dict[str, Any]] | None = None  # (name, args) to call

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path == GEMINI_PATH:
            key = (
                request.headers.get("x-goog-api-key")
                or (parse_qs(parts.query).get("key") or [""])[0]
            )
            allowed = key == self.api_key
        elif parts.path == VERTEX_PATH:
            allowed = request.headers.get("Authorization") == f"Bearer {self.api_key}"
        else:
            return ws.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if not allowed:
            return ws.respond(HTTPStatus.UNAUTHORIZED, "API key not valid.\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        conn = LiveConnection(
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.raw_items()},
        )
        self.connections.append(conn)
        session = _Session(self, ws, conn)
        try:
            await session.serve()
        except Exception:  # the client went away mid-send
            pass
        finally:
            if session.running is not None:
                await asyncio.gather(session.running, return_exceptions=True)
            received = ws.protocol.close_rcvd
            conn.close_code = received.code if received is not None else None
            conn.closed.set()
