"""An OpenAI Realtime API upstream over a real WebSocket, as OpenAI's API reference describes it.

Serves `GET /v1/realtime?model=...` (OpenAI: `Authorization: Bearer KEY`) and
`/openai/realtime?api-version=...&deployment=...` (Azure OpenAI: `api-key: KEY`), speaking the
GA event names, or the beta's when the connection sends `OpenAI-Beta: realtime=v1`.

What it does with each client event:
- on connect: `session.created`
- `session.update`: merges the session, `session.updated`
- `input_audio_buffer.append` / `.commit` / `.clear`: buffers PCM, commits it as a user item
  (`input_audio_buffer.committed`, then the item's creation events); with turn detection set on
  the session (server VAD), the commit starts a response by itself, as the end of speech does
- `conversation.item.create`: adds the item (`conversation.item.added` + `.done`; beta:
  `conversation.item.created`)
- `response.create`: `response.created`, the output item and content part, the reply's words
  as `response.output_text.delta` (or, for audio, `response.output_audio_transcript.delta` and
  `response.output_audio.delta` with base64 PCM16), the `.done` events, then `response.done` with
  usage (input/output, text/audio, cached) — a second `response.create` while one runs is an
  `error` (`conversation_already_has_active_response`)
- `response.cancel`: the running response stops and ends with status `cancelled`, its usage so far
- anything else, or a frame that is not JSON: an `error` event (`invalid_request_error`; the
  session goes on)

WebRTC calls (`RealtimeCalls`, served by OpenAI's HTTP emulator, tests/emulators/openai_api.py,
on the same host as `POST /v1/realtime/calls`): each answered offer mints a call id (`rtc_...`,
in `Location`) with the offer's session; `GET /v1/realtime?call_id=...` with the API key opens
the call's sideband WebSocket (404 for an unknown or ended call), which speaks as above on the
call's conversation; `inject` plays an event the WebRTC peer sends on its data channel (its
output reaches the sideband too); `POST /v1/realtime/calls/{call_id}/hangup` ends the call
(200; 404 unknown) and closes its sideband (1000).

Counting rules (exact, so tests can assert costs): a text item costs ceil(chars / 4) tokens, its
instructions too; committed audio costs one token per 4,800 bytes (100 ms of PCM16 at 24 kHz),
rounded up; input tokens already sent in an earlier response of the session are reported as
cached; each output word is one text token and each audio delta (4,800 bytes) one audio token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import threading
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import WSMsgType, web
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests.emulators.websocket_server import WebSocketEmulator

AUDIO_BYTES_PER_TOKEN = 4800
REPLY = "Hello from the realtime emulator."


@dataclass
class Connection:
    """One session the emulator served: how it was opened and what it received."""

    path: str
    headers: dict[str, str]
    beta: bool
    model: str
    events: list[dict[str, Any]] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)  # frames that were not JSON
    close_code: int | None = None  # the code the client closed with
    closed: threading.Event = field(default_factory=threading.Event)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event.get("type") == kind]


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


class _Session:
    def __init__(self, emulator: RealtimeEmulator, ws: ServerConnection, conn: Connection) -> None:
        self.emulator = emulator
        self.ws = ws
        self.conn = conn
        self.beta = conn.beta
        self.session: dict[str, Any] = {
            "id": _id("sess"),
            "object": "realtime.session",
            "model": conn.model,
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
        }
        if self.beta:
            self.session["modalities"] = ["text", "audio"]
        else:
            self.session.update(
                {"type": "realtime", "output_modalities": ["audio"], "max_output_tokens": "inf"}
            )
        self.items: list[dict[str, Any]] = []
        self.audio_bytes: dict[str, int] = {}  # committed audio items' sizes
        self.audio = bytearray()
        self.cached_text = 0
        self.cached_audio = 0
        self.running: asyncio.Task[None] | None = None
        self.cancelled = False

    async def emit(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"event_id": _id("event"), **event}))

    async def error(self, message: str, *, code: str | None, event_id: str | None) -> None:
        await self.emit(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": code,
                    "message": message,
                    "param": None,
                    "event_id": event_id,
                },
            }
        )

    async def item_added(self, item: dict[str, Any]) -> None:
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        if self.beta:
            await self.emit(
                {"type": "conversation.item.created", "previous_item_id": previous, "item": item}
            )
        else:
            await self.emit(
                {"type": "conversation.item.added", "previous_item_id": previous, "item": item}
            )
            await self.emit(
                {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
            )

    async def serve(self) -> None:
        await self.emit({"type": "session.created", "session": self.session})
        if self.emulator.close_after_created is not None:
            await self.ws.close(code=self.emulator.close_after_created, reason="emulated close")
            return
        async for raw in self.ws:
            try:
                event = json.loads(raw)
            except ValueError:  # the session goes on: the client gets an error event
                self.conn.malformed.append(raw)
                await self.error(
                    "The event could not be parsed as JSON.", code="invalid_json", event_id=None
                )
                continue
            self.conn.events.append(event)
            await self.handle(event)

    async def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        event_id = event.get("event_id")
        if kind == "session.update":
            self.session.update(event.get("session") or {})
            await self.emit({"type": "session.updated", "session": self.session})
        elif kind == "input_audio_buffer.append":
            self.audio += base64.b64decode(event.get("audio") or "")
        elif kind == "input_audio_buffer.clear":
            self.audio.clear()
            await self.emit({"type": "input_audio_buffer.cleared"})
        elif kind == "input_audio_buffer.commit":
            item_id = _id("item")
            item = {
                "id": item_id,
                "object": "realtime.item",
                "type": "message",
                "role": "user",
                "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}],
            }
            self.audio_bytes[item_id] = len(self.audio)
            self.audio.clear()
            previous = self.items[-1]["id"] if self.items else None
            await self.emit(
                {
                    "type": "input_audio_buffer.committed",
                    "previous_item_id": previous,
                    "item_id": item_id,
                }
            )
            await self.item_added(item)
            if self._turn_detection() and (self.running is None or self.running.done()):
                # Server VAD: the end of the user's turn starts a response by itself.
                self.cancelled = False
                self.running = asyncio.ensure_future(self.respond({}))
        elif kind == "conversation.item.create":
            item = dict(event.get("item") or {})
            item.setdefault("id", _id("item"))
            item.setdefault("object", "realtime.item")
            item.setdefault("status", "completed")
            await self.item_added(item)
        elif kind == "response.create":
            if self.running is not None and not self.running.done():
                await self.error(
                    "Conversation already has an active response in progress.",
                    code="conversation_already_has_active_response",
                    event_id=event_id,
                )
                return
            self.cancelled = False
            self.running = asyncio.ensure_future(self.respond(event.get("response") or {}))
        elif kind == "response.cancel":
            self.cancelled = True
        else:
            await self.error(f"Invalid value: '{kind}'.", code="invalid_value", event_id=event_id)

    def _turn_detection(self) -> bool:
        audio = self.session.get("audio") or {}
        detected = (
            (audio.get("input") or {}).get("turn_detection") if isinstance(audio, dict) else None
        )
        return bool(detected or self.session.get("turn_detection"))

    def _input_tokens(self) -> tuple[int, int]:
        text = _text_tokens(str(self.session.get("instructions") or ""))
        audio = 0
        for item in self.items:
            audio += math.ceil(self.audio_bytes.get(item["id"], 0) / AUDIO_BYTES_PER_TOKEN)
            for part in item.get("content") or []:
                if isinstance(part, dict):
                    text += _text_tokens(str(part.get("text") or part.get("transcript") or ""))
        return text, audio

    async def respond(self, options: dict[str, Any]) -> None:
        response_id = _id("resp")
        modalities = (
            options.get("output_modalities")
            or options.get("modalities")
            or self.session.get("output_modalities")
            or self.session.get("modalities")
            or ["text"]
        )
        audio = "audio" in modalities
        created = {
            "id": response_id,
            "object": "realtime.response",
            "status": "in_progress",
            "output": [],
            "usage": None,
        }
        await self.emit({"type": "response.created", "response": created})
        item_id = _id("item")
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        where = {"response_id": response_id, "item_id": item_id, "output_index": 0}
        await self.emit({"type": "response.output_item.added", **where, "item": item})
        part_type = (
            ("audio" if self.beta else "output_audio")
            if audio
            else ("text" if self.beta else "output_text")
        )
        await self.emit(
            {
                "type": "response.content_part.added",
                **where,
                "content_index": 0,
                "part": {"type": part_type},
            }
        )
        text_tokens = audio_tokens = 0
        sent: list[str] = []
        words = self.emulator.reply.split(" ")
        for number, word in enumerate(words):
            if self.cancelled:
                break
            delta = word if number == 0 else f" {word}"
            sent.append(delta)
            text_tokens += 1
            part = {**where, "content_index": 0, "delta": delta}
            if audio:
                transcript = (
                    "response.audio_transcript.delta"
                    if self.beta
                    else "response.output_audio_transcript.delta"
                )
                await self.emit({"type": transcript, **part})
                pcm = bytes(AUDIO_BYTES_PER_TOKEN)  # 100 ms of silence
                kind = "response.audio.delta" if self.beta else "response.output_audio.delta"
                await self.emit({"type": kind, **part, "delta": base64.b64encode(pcm).decode()})
                audio_tokens += 1
            else:
                kind = "response.text.delta" if self.beta else "response.output_text.delta"
                await self.emit({"type": kind, **part})
            if self.emulator.delta_delay:
                await asyncio.sleep(self.emulator.delta_delay)
        text = "".join(sent)
        status = "cancelled" if self.cancelled else "completed"
        if status == "completed":
            if audio:
                done = "response.audio.done" if self.beta else "response.output_audio.done"
                await self.emit({"type": done, **where, "content_index": 0})
            else:
                done = "response.text.done" if self.beta else "response.output_text.done"
                await self.emit({"type": done, **where, "content_index": 0, "text": text})
        item["status"] = "completed" if status == "completed" else "incomplete"
        key = "transcript" if audio else "text"
        item["content"] = [{"type": part_type, key: text}]
        await self.emit({"type": "response.output_item.done", **where, "item": item})
        in_text, in_audio = self._input_tokens()
        cached_text = min(self.cached_text, in_text)
        cached_audio = min(self.cached_audio, in_audio)
        self.items.append(item)  # the answer becomes part of the conversation
        self.cached_text, self.cached_audio = in_text, in_audio
        usage = {
            "total_tokens": in_text + in_audio + text_tokens + audio_tokens,
            "input_tokens": in_text + in_audio,
            "output_tokens": text_tokens + audio_tokens,
            "input_token_details": {
                "text_tokens": in_text,
                "audio_tokens": in_audio,
                "image_tokens": 0,
                "cached_tokens": cached_text + cached_audio,
                "cached_tokens_details": {
                    "text_tokens": cached_text,
                    "audio_tokens": cached_audio,
                    "image_tokens": 0,
                },
            },
            "output_token_details": {"text_tokens": text_tokens, "audio_tokens": audio_tokens},
        }
        self.emulator.usages.append(usage)
        await self.emit(
            {
                "type": "response.done",
                "response": {**created, "status": status, "output": [item], "usage": usage},
            }
        )


class RealtimeEmulator(WebSocketEmulator):
    thread_name = "realtime-emulator"

    def __init__(self, *, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.reset()

    def reset(self) -> None:
        self.connections: list[Connection] = []
        self.usages: list[dict[str, Any]] = []
        self.reply = REPLY
        self.delta_delay = 0.0  # seconds between output deltas
        self.refuse_status: int | None = None  # answer every handshake with this status
        self.close_after_created: int | None = None  # close with this code after session.created

    def _authorized(self, request: Request, path: str) -> bool:
        if path.startswith("/openai/"):
            return request.headers.get("api-key") == self.api_key
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        parts = urlsplit(request.path)
        if parts.path not in ("/v1/realtime", "/openai/realtime"):
            return ws.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if self.refuse_status is not None:
            return ws.respond(HTTPStatus(self.refuse_status), "refused\n")
        if not self._authorized(request, parts.path):
            return Response(
                401,
                "Unauthorized",
                Headers({"Content-Type": "application/json"}),
                b'{"error": {"message": "Incorrect API key provided", "type": '
                b'"invalid_request_error", "code": "invalid_api_key"}}',
            )
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        parts = urlsplit(request.path)
        query = parse_qs(parts.query)
        conn = Connection(
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.raw_items()},
            beta=request.headers.get("OpenAI-Beta", "").replace(" ", "") == "realtime=v1",
            model=(query.get("model") or query.get("deployment") or [""])[0],
        )
        self.connections.append(conn)
        session = _Session(self, ws, conn)
        try:
            await session.serve()
        except Exception:  # the client went away mid-send
            pass
        finally:
            if session.running is not None:
                session.cancelled = True
                await asyncio.gather(session.running, return_exceptions=True)
            received = ws.protocol.close_rcvd
            conn.close_code = received.code if received is not None else None
            conn.closed.set()


class _AiohttpSocket:
    """An aiohttp WebSocket as `_Session` uses a websockets one: send, iterate, close."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        if not self.ws.closed:
            await self.ws.send_str(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code=code, message=reason.encode())

    def __aiter__(self):  # type: ignore[no-untyped-def]
        return self._texts()

    async def _texts(self):  # type: ignore[no-untyped-def]
        async for message in self.ws:
            if message.type == WSMsgType.TEXT:
                yield message.data


@dataclass
class Call:
    call_id: str
    session: dict[str, Any]
    ended: bool = False
    conversation: _Session | None = None  # the call's session, once a sideband opened it
    sidebands: list[Connection] = field(default_factory=list)


class RealtimeCalls:
    """The WebRTC calls OpenAI's HTTP emulator answered, and their sideband WebSockets."""

    def __init__(self, *, api_key: str) -> None:
        # The Realtime behaviour (reply, delays, usages) of the calls' conversations.
        self.realtime = RealtimeEmulator(api_key=api_key)
        self.calls: dict[str, Call] = {}
        self.loop: asyncio.AbstractEventLoop | None = None

    def clear(self) -> None:
        self.realtime.reset()
        self.calls.clear()

    def mint(self, session: dict[str, Any]) -> str:
        call_id = f"rtc_{uuid.uuid4().hex[:24]}"
        self.calls[call_id] = Call(call_id=call_id, session=session)
        return call_id

    async def sideband(self, request: web.Request) -> web.StreamResponse:
        call = self.calls.get(request.query.get("call_id", ""))
        if call is None or call.ended:
            return web.json_response(
                {"error": {"message": "Call not found.", "type": "invalid_request_error"}},
                status=404,
            )
        self.loop = asyncio.get_running_loop()
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        conn = Connection(
            path=request.path_qs,
            headers={k.lower(): v for k, v in request.headers.items()},
            beta=request.headers.get("OpenAI-Beta", "").replace(" ", "") == "realtime=v1",
            model=str(call.session.get("model") or ""),
        )
        call.sidebands.append(conn)
        self.realtime.connections.append(conn)
        session = call.conversation
        if session is None:
            session = _Session(self.realtime, _AiohttpSocket(ws), conn)  # type: ignore[arg-type]
            session.session.update(call.session)
            call.conversation = session
        else:  # the call goes on: this sideband takes over its events
            session.ws, session.conn = _AiohttpSocket(ws), conn  # type: ignore[assignment]
        try:
            await session.serve()
        except Exception:  # the client went away mid-send
            pass
        conn.close_code = ws.close_code
        conn.closed.set()
        return ws

    async def hangup(self, call_id: str) -> web.Response:
        call = self.calls.get(call_id)
        if call is None or call.ended:
            return web.json_response(
                {"error": {"message": "Call not found.", "type": "invalid_request_error"}},
                status=404,
            )
        call.ended = True
        session = call.conversation
        if session is not None:
            if session.running is not None:
                session.cancelled = True
                await asyncio.gather(session.running, return_exceptions=True)
            await session.ws.close(code=1000, reason="call ended")
        return web.Response(status=200)

    def inject(self, call_id: str, event: dict[str, Any]) -> None:
        """An event from the call's WebRTC peer (its data channel), from any thread."""
        call = self.calls[call_id]
        assert call.conversation is not None and self.loop is not None
        asyncio.run_coroutine_threadsafe(call.conversation.handle(event), self.loop).result(10)
