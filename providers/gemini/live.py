"""OpenAI's Realtime protocol on Gemini's Live API (`BidiGenerateContent` over a WebSocket).

`LiveConnection` wraps the Live API WebSocket and looks, to the Realtime relay
(gateway/realtime/session.py), like an OpenAI Realtime upstream: `send` takes OpenAI client
events, iterating it yields OpenAI server events (JSON text), `close`/`close_code` as websockets'.

The Live API takes its whole configuration once, in its first message (`setup`), so Ogem answers
`session.created` itself and keeps merging `session.update` until the first event that needs the
model (an item, audio, `response.create`); then `setup` goes out. A later `session.update` that
changes what `setup` fixed (instructions, modalities, turn detection, output limit) gets an
`error` event (`session_update_not_supported`); other fields are accepted and ignored.

Client events:
- `conversation.item.create` (user/system text: a user turn; assistant text: a model turn) is
  kept and answered with the item's creation events; sent as `clientContent.turns` when a
  response is asked for (`turnComplete: true`).
- `input_audio_buffer.append` -> `realtimeInput.audio` (`audio/pcm;rate=24000`, OpenAI's PCM16).
  Without turn detection (Ogem's default here), the first append of a turn sends
  `realtimeInput.activityStart` and `response.create` sends `activityEnd`: the model answers
  then, as OpenAI does after a commit and `response.create`. With `turn_detection` set, Gemini's
  automatic activity detection is on, a commit sends `audioStreamEnd`, and Gemini starts
  responses by itself (relayed as responses the upstream created).
- `input_audio_buffer.commit` / `.clear`: answered locally (`committed` + the item, `cleared`).
- `response.create` starts a response (`conversation_already_has_active_response` while one
  runs); `response.cancel` stops relaying it: the Live API cannot stop a turn, so Ogem waits for
  its end and its usage, then reports it `cancelled`.

Server messages: `serverContent.modelTurn` text parts -> `response.output_text.delta`; audio
(`inlineData`, 24 kHz PCM16) -> `response.output_audio.delta`; `outputTranscription` ->
`response.output_audio_transcript.delta`; `turnComplete` (with `usageMetadata`, which may come
in the same message or just after) -> the `.done` events and `response.done` with the usage
in OpenAI's shape; `interrupted` -> the response ends `cancelled`.

Function tools: the session's `tools` (OpenAI's flat `{"type": "function", "name", "description",
"parameters"}`) go into `setup.tools[].functionDeclarations` (the JSON Schema converted as for
chat completions; none under `tool_choice: "none"`). A `toolCall` ends the running response with
one `function_call` output item per call (`response.output_item.added`,
`response.function_call_arguments.delta` and `.done`, `response.output_item.done`), then
`response.done` once the usage is known; the call's `call_id` is Gemini's call `id` (Vertex AI
gives none: Ogem makes one and answers by name). A client `function_call_output` item is kept
and sent as `toolResponse.functionResponses` with the next `response.create` (its `output`, a
JSON object as it is, else `{"output": text}`), when Gemini goes on with the turn.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from providers.errors import InvalidRequestError
from providers.gemini.translate import schema_to_gemini

logger = logging.getLogger(__name__)

INPUT_AUDIO_MIME = "audio/pcm;rate=24000"
# How long after `turnComplete` a response waits for its `usageMetadata` before it is reported
# without usage (the relay then estimates it from what it relayed).
USAGE_GRACE_SECONDS = 1.0

# GA event and part names, then the beta's.
_NAMES = {
    False: {
        "item_added": "conversation.item.added",
        "text_delta": "response.output_text.delta",
        "text_done": "response.output_text.done",
        "audio_delta": "response.output_audio.delta",
        "audio_done": "response.output_audio.done",
        "transcript_delta": "response.output_audio_transcript.delta",
        "transcript_done": "response.output_audio_transcript.done",
        "text_part": "output_text",
        "audio_part": "output_audio",
    },
    True: {
        "item_added": "conversation.item.created",
        "text_delta": "response.text.delta",
        "text_done": "response.text.done",
        "audio_delta": "response.audio.delta",
        "audio_done": "response.audio.done",
        "transcript_delta": "response.audio_transcript.delta",
        "transcript_done": "response.audio_transcript.done",
        "text_part": "text",
        "audio_part": "audio",
    },
}


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _by_modality(details: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in details if isinstance(details, list) else ():
        if isinstance(entry, dict):
            modality = str(entry.get("modality") or "").upper()
            counts[modality] = counts.get(modality, 0) + _count(entry.get("tokenCount"))
    return counts


def usage_to_openai(usage: dict[str, Any]) -> dict[str, Any]:
    """Live API `usageMetadata` as a Realtime `response.usage`: thinking tokens count as
    output; audio and cached tokens kept apart (by modality) so they are priced apart."""
    prompt = _count(usage.get("promptTokenCount"))
    output = _count(usage.get("responseTokenCount") or usage.get("candidatesTokenCount"))
    output += _count(usage.get("thoughtsTokenCount"))
    cached = min(_count(usage.get("cachedContentTokenCount")), prompt)
    prompt_details = _by_modality(usage.get("promptTokensDetails"))
    cache_details = _by_modality(usage.get("cacheTokensDetails"))
    output_details = _by_modality(
        usage.get("responseTokensDetails") or usage.get("candidatesTokensDetails")
    )
    audio_out = min(output_details.get("AUDIO", 0), output)
    audio_in = min(prompt_details.get("AUDIO", 0), prompt)
    audio_cached = min(cache_details.get("AUDIO", 0), cached)
    return {
        "total_tokens": prompt + output,
        "input_tokens": prompt,
        "output_tokens": output,
        "input_token_details": {
            "text_tokens": prompt - audio_in,
            "audio_tokens": audio_in,
            "image_tokens": 0,
            "cached_tokens": cached,
            "cached_tokens_details": {
                "text_tokens": cached - audio_cached,
                "audio_tokens": audio_cached,
                "image_tokens": 0,
            },
        },
        "output_token_details": {"text_tokens": output - audio_out, "audio_tokens": audio_out},
    }


def _turn_detection(session: dict[str, Any]) -> bool:
    audio = session.get("audio")
    if isinstance(audio, dict) and isinstance(audio.get("input"), dict):
        if "turn_detection" in audio["input"]:
            return bool(audio["input"]["turn_detection"])
    return bool(session.get("turn_detection"))


def _modalities(session: dict[str, Any]) -> list[str]:
    named = session.get("output_modalities") or session.get("modalities") or ["audio"]
    return ["AUDIO"] if "audio" in [str(m).lower() for m in named] else ["TEXT"]


def _max_output(session: dict[str, Any]) -> int | None:
    for name in ("max_output_tokens", "max_response_output_tokens"):
        value = session.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


# What `setup` fixes: changing these once it went out is refused.
_FIXED = ("instructions", "output_modalities", "modalities", "max_output_tokens", "tools")


def _declarations(session: dict[str, Any]) -> list[dict[str, Any]]:
    """The session's function tools as Live API `functionDeclarations` (none under
    `tool_choice: "none"`: the Live API's setup has no tool choice of its own). Raises
    InvalidRequestError for a tool that is not a named function."""
    tools = session.get("tools") or []
    if session.get("tool_choice") == "none" or not isinstance(tools, list):
        return []
    declarations = []
    for tool in tools:
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise InvalidRequestError(
                "Only function tools are translated to the Gemini Live API.", param="tools"
            )
        if not isinstance(tool.get("name"), str) or not tool["name"]:
            raise InvalidRequestError("A function tool needs a `name`.", param="tools")
        declaration: dict[str, Any] = {"name": tool["name"]}
        if tool.get("description"):
            declaration["description"] = str(tool["description"])
        parameters = schema_to_gemini(tool.get("parameters") or {})
        # Gemini refuses an OBJECT schema without properties: a function without parameters
        # leaves it out.
        if parameters.get("properties"):
            declaration["parameters"] = parameters
        declarations.append(declaration)
    return declarations


def setup_message(*, model: str, session: dict[str, Any]) -> dict[str, Any]:
    """The Live API `setup` for an OpenAI session configuration."""
    generation: dict[str, Any] = {"responseModalities": _modalities(session)}
    if (limit := _max_output(session)) is not None:
        generation["maxOutputTokens"] = limit
    if isinstance(session.get("temperature"), int | float):
        generation["temperature"] = session["temperature"]
    setup: dict[str, Any] = {"model": model, "generationConfig": generation}
    if session.get("instructions"):
        setup["systemInstruction"] = {"parts": [{"text": str(session["instructions"])}]}
    if generation["responseModalities"] == ["AUDIO"]:
        setup["outputAudioTranscription"] = {}  # OpenAI's audio responses carry a transcript
    if not _turn_detection(session):
        setup["realtimeInputConfig"] = {"automaticActivityDetection": {"disabled": True}}
    if declarations := _declarations(session):
        setup["tools"] = [{"functionDeclarations": declarations}]
    return {"setup": setup}


def _item_text(item: dict[str, Any]) -> str:
    parts = []
    for part in item.get("content") or ():
        if isinstance(part, dict):
            text = part.get("text") if "text" in part else part.get("transcript")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


@dataclass
class _Call:
    """A function call of the model: its OpenAI item, and what answers it upstream."""

    item_id: str
    call_id: str
    name: str
    gemini_id: str | None  # the Live API's call id (the Gemini API's; Vertex AI gives none)
    arguments: str


@dataclass
class _Response:
    id: str
    item_id: str
    audio: bool
    calls: list[_Call] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    turn_complete: bool = False
    cancelled: bool = False
    finished: bool = False
    started_parts: bool = False
    grace: asyncio.TimerHandle | None = None


class LiveConnection:
    """A Live API session that speaks OpenAI's Realtime protocol to the relay."""

    def __init__(self, ws: ClientConnection, *, model: str, upstream_model: str, beta: bool):
        self.ws = ws
        self.model = model  # the `setup.model` resource name
        self.beta = beta
        self.names = _NAMES[beta]
        self.session: dict[str, Any] = {
            "id": _id("sess"),
            "object": "realtime.session",
            "model": upstream_model,
            "instructions": "",
            "tools": [],
        }
        if beta:
            self.session["modalities"] = ["text", "audio"]
        else:
            self.session.update({"type": "realtime", "output_modalities": ["audio"]})
        self._setup_sent = False
        self._turns: list[dict[str, Any]] = []  # items not yet sent upstream
        self._items: list[str] = []  # item ids, for previous_item_id
        self._audio_open = False  # manual activity: activityStart sent, no activityEnd yet
        self._calls: dict[str, _Call] = {}  # call_id -> the call, until it is answered
        self._tool_responses: list[dict[str, Any]] = []  # answers not yet sent upstream
        self._response: _Response | None = None
        self._out: asyncio.Queue[str | None] = asyncio.Queue()
        self._out.put_nowait(self._event({"type": "session.created", "session": self.session}))
        self._reader = asyncio.ensure_future(self._read())

    # ---- what the relay sees of a websockets connection -------------------------------------

    @property
    def close_code(self) -> int | None:
        return self.ws.close_code

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._reader.cancel()
        await self.ws.close(code=code, reason=reason)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._events()

    async def _events(self) -> AsyncIterator[str]:
        while True:
            event = await self._out.get()
            if event is None:
                return
            yield event

    async def recv(self) -> str:
        event = await self._out.get()
        if event is None:
            raise ConnectionClosed(self.ws.protocol.close_rcvd, self.ws.protocol.close_sent)
        return event

    # ---- OpenAI client events -> the Live API ------------------------------------------------

    def _event(self, event: dict[str, Any]) -> str:
        # `type` first, as OpenAI writes it: the relay reads it off the frame's start.
        return orjson.dumps({"type": event["type"], "event_id": _id("event"), **event}).decode()

    def _emit(self, event: dict[str, Any]) -> None:
        self._out.put_nowait(self._event(event))

    def _error(self, message: str, *, code: str, event_id: str | None) -> None:
        error = {
            "type": "invalid_request_error",
            "code": code,
            "message": message,
            "param": None,
            "event_id": event_id,
        }
        self._emit({"type": "error", "error": error})

    async def _upstream(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def _setup(self) -> None:
        if not self._setup_sent:
            self._setup_sent = True
            await self._upstream(setup_message(model=self.model, session=self.session))

    async def send(self, text: str) -> None:
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            # The relay forwards audio appends unparsed (gateway/realtime/frames.py).
            self._error("The event is not valid JSON.", code="invalid_json", event_id=None)
            return
        if not isinstance(event, dict):
            self._error("An event is a JSON object.", code="invalid_event", event_id=None)
            return
        kind = event.get("type")
        event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        if kind == "session.update":
            self._session_update(event.get("session"), event_id=event_id)
        elif kind == "conversation.item.create":
            await self._item_create(event.get("item"), event_id=event_id)
        elif kind == "input_audio_buffer.append":
            await self._audio_append(event.get("audio"))
        elif kind == "input_audio_buffer.commit":
            await self._audio_commit()
        elif kind == "input_audio_buffer.clear":
            self._emit({"type": "input_audio_buffer.cleared"})
        elif kind == "response.create":
            await self._response_create(event_id=event_id)
        elif kind == "response.cancel":
            if self._response is not None:
                self._response.cancelled = True
        else:
            self._error(
                f"Ogem does not translate `{kind}` to the Gemini Live API.",
                code="unsupported_event",
                event_id=event_id,
            )

    def _session_update(self, update: Any, *, event_id: str | None) -> None:
        if not isinstance(update, dict):
            self._error("`session` must be an object.", code="invalid_value", event_id=event_id)
            return
        if self._setup_sent:
            changed = [
                name for name in _FIXED if name in update and update[name] != self.session.get(name)
            ]
            if changed or _turn_detection({**self.session, **update}) != _turn_detection(
                self.session
            ):
                self._error(
                    "The Gemini Live API takes its session configuration once, before the "
                    "conversation starts: "
                    f"{', '.join(changed) or 'turn_detection'} cannot change now.",
                    code="session_update_not_supported",
                    event_id=event_id,
                )
                return
        merged = {**self.session, **update}
        try:
            _declarations(merged)
        except InvalidRequestError as error:
            self._error(error.message, code="invalid_value", event_id=event_id)
            return
        self.session.update({k: v for k, v in update.items() if k not in ("id", "object")})
        self._emit({"type": "session.updated", "session": self.session})

    def _item_added(self, item: dict[str, Any]) -> None:
        previous = self._items[-1] if self._items else None
        self._items.append(str(item["id"]))
        self._emit({"type": self.names["item_added"], "previous_item_id": previous, "item": item})
        if not self.beta:
            self._emit(
                {"type": "conversation.item.done", "previous_item_id": previous, "item": item}
            )

    async def _item_create(self, item: Any, *, event_id: str | None) -> None:
        if isinstance(item, dict) and item.get("type") == "function_call_output":
            await self._call_output(item, event_id=event_id)
            return
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            self._error(
                "Only message items are translated to the Gemini Live API.",
                code="unsupported_item",
                event_id=event_id,
            )
            return
        item = {"id": _id("item"), "object": "realtime.item", "status": "completed", **item}
        role = "model" if item.get("role") == "assistant" else "user"
        self._turns.append({"role": role, "parts": [{"text": _item_text(item)}]})
        await self._setup()
        self._item_added(item)

    async def _call_output(self, item: dict[str, Any], *, event_id: str | None) -> None:
        """A function's result: kept for the next response.create (as OpenAI waits for one)."""
        call = self._calls.pop(str(item.get("call_id") or ""), None)
        if call is None:
            self._error(
                f"No function call of this session has the call_id {item.get('call_id')!r}.",
                code="invalid_value",
                event_id=event_id,
            )
            return
        output = item.get("output")
        text = output if isinstance(output, str) else orjson.dumps(output).decode()
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        # `response` is an object: a JSON object goes as it is, anything else under "output",
        # the key Gemini reads a function's output from.
        answer: dict[str, Any] = {
            "name": call.name,
            "response": parsed if isinstance(parsed, dict) else {"output": text},
        }
        if call.gemini_id is not None:
            answer = {"id": call.gemini_id, **answer}
        self._tool_responses.append(answer)
        item = {
            "id": _id("item"),
            "object": "realtime.item",
            "status": "completed",
            **item,
            "output": text,
        }
        self._item_added(item)

    async def _audio_append(self, audio: Any) -> None:
        if not isinstance(audio, str):
            return
        await self._setup()
        if not _turn_detection(self.session) and not self._audio_open:
            self._audio_open = True
            await self._upstream({"realtimeInput": {"activityStart": {}}})
        await self._upstream(
            {"realtimeInput": {"audio": {"mimeType": INPUT_AUDIO_MIME, "data": audio}}}
        )

    async def _audio_commit(self) -> None:
        item_id = _id("item")
        previous = self._items[-1] if self._items else None
        self._emit(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": previous,
                "item_id": item_id,
            }
        )
        self._item_added(
            {
                "id": item_id,
                "object": "realtime.item",
                "type": "message",
                "role": "user",
                "status": "completed",
                "content": [{"type": "input_audio", "transcript": None}],
            }
        )
        if _turn_detection(self.session):
            await self._upstream({"realtimeInput": {"audioStreamEnd": True}})

    async def _response_create(self, *, event_id: str | None) -> None:
        if self._response is not None and not self._response.finished:
            self._error(
                "Conversation already has an active response in progress.",
                code="conversation_already_has_active_response",
                event_id=event_id,
            )
            return
        await self._setup()
        self._response_start()
        if self._tool_responses:
            # The model goes on with the turn its calls paused once it has their results.
            if self._turns:
                await self._upstream({"clientContent": {"turns": self._turns}})
                self._turns = []
            responses, self._tool_responses = self._tool_responses, []
            await self._upstream({"toolResponse": {"functionResponses": responses}})
        elif self._audio_open:
            if self._turns:  # text items first, without ending the turn: the audio ends it
                await self._upstream({"clientContent": {"turns": self._turns}})
            self._turns = []
            self._audio_open = False
            await self._upstream({"realtimeInput": {"activityEnd": {}}})
        else:
            await self._upstream({"clientContent": {"turns": self._turns, "turnComplete": True}})
            self._turns = []

    # ---- the Live API -> OpenAI server events -----------------------------------------------

    def _response_start(self) -> _Response:
        response = _Response(
            id=_id("resp"), item_id=_id("item"), audio=_modalities(self.session) == ["AUDIO"]
        )
        self._response = response
        self._emit(
            {
                "type": "response.created",
                "response": {
                    "id": response.id,
                    "object": "realtime.response",
                    "status": "in_progress",
                    "output": [],
                    "usage": None,
                },
            }
        )
        return response

    def _where(self, response: _Response) -> dict[str, Any]:
        return {"response_id": response.id, "item_id": response.item_id, "output_index": 0}

    def _item(self, response: _Response, status: str) -> dict[str, Any]:
        if response.audio:
            content = {"type": self.names["audio_part"], "transcript": "".join(response.transcript)}
        else:
            content = {"type": self.names["text_part"], "text": "".join(response.text)}
        return {
            "id": response.item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": [content] if status != "in_progress" else [],
        }

    def _parts_start(self, response: _Response) -> None:
        if response.started_parts:
            return
        response.started_parts = True
        where = self._where(response)
        self._emit(
            {
                "type": "response.output_item.added",
                **where,
                "item": self._item(response, "in_progress"),
            }
        )
        part = self.names["audio_part"] if response.audio else self.names["text_part"]
        self._emit(
            {
                "type": "response.content_part.added",
                **where,
                "content_index": 0,
                "part": {"type": part},
            }
        )

    def _delta(self, response: _Response, kind: str, delta: str) -> None:
        if response.cancelled:
            return
        self._parts_start(response)
        self._emit(
            {"type": self.names[kind], **self._where(response), "content_index": 0, "delta": delta}
        )

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                try:
                    message = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(message, dict):
                    self._server_message(message)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("gemini live: reading the upstream failed")
        finally:
            self._upstream_closed()

    def _upstream_closed(self) -> None:
        response = self._response
        if response is not None and not response.finished and response.usage is not None:
            self._finish(response)
        received = self.ws.protocol.close_rcvd
        if received is not None and received.code not in (1000, 1005) and received.reason:
            # The Live API says why it closes in the close frame's reason only.
            self._emit(
                {
                    "type": "error",
                    "error": {
                        "type": "server_error",
                        "code": "upstream_closed",
                        "message": f"The Gemini Live API closed the session: {received.reason}",
                        "param": None,
                        "event_id": None,
                    },
                }
            )
        self._out.put_nowait(None)

    def _server_message(self, message: dict[str, Any]) -> None:
        content = message.get("serverContent")
        usage = message.get("usageMetadata")
        tool_call = message.get("toolCall")
        response = self._response
        if isinstance(tool_call, dict):
            if response is None or response.finished:
                response = self._response_start()  # a call the model made by itself
            self._tool_call(response, tool_call)
        if isinstance(content, dict):
            if response is None or response.finished:
                if not (content.get("modelTurn") or content.get("outputTranscription")):
                    content = {}  # a bare turnComplete/interrupted with nothing running
                else:  # the model started by itself (automatic activity detection)
                    response = self._response_start()
            if content and response is not None:
                self._content(response, content)
        if isinstance(usage, dict) and response is not None and not response.finished:
            response.usage = usage
            if response.turn_complete:
                self._finish(response)

    def _content(self, response: _Response, content: dict[str, Any]) -> None:
        turn = content.get("modelTurn")
        for part in turn.get("parts") or () if isinstance(turn, dict) else ():
            if not isinstance(part, dict) or part.get("thought"):
                continue
            if isinstance(part.get("text"), str):
                response.text.append(part["text"])
                self._delta(response, "text_delta", part["text"])
            inline = part.get("inlineData")
            if isinstance(inline, dict) and isinstance(inline.get("data"), str):
                self._delta(response, "audio_delta", inline["data"])
        transcription = content.get("outputTranscription")
        if isinstance(transcription, dict) and isinstance(transcription.get("text"), str):
            response.transcript.append(transcription["text"])
            self._delta(response, "transcript_delta", transcription["text"])
        if content.get("interrupted"):
            response.cancelled = True
        if content.get("turnComplete"):
            response.turn_complete = True
            if response.usage is not None:
                self._finish(response)
            else:
                loop = asyncio.get_running_loop()
                response.grace = loop.call_later(USAGE_GRACE_SECONDS, self._finish, response)

    def _tool_call(self, response: _Response, tool_call: dict[str, Any]) -> None:
        """The model's function calls: each an output item with its arguments; they end the
        response (as OpenAI's do), reported once its usage is known."""
        for call in tool_call.get("functionCalls") or ():
            if not isinstance(call, dict) or response.cancelled:
                continue
            gemini_id = call.get("id") if isinstance(call.get("id"), str) else None
            args = call.get("args") if isinstance(call.get("args"), dict) else {}
            entry = _Call(
                item_id=_id("item"),
                call_id=gemini_id or _id("call"),
                name=str(call.get("name") or ""),
                gemini_id=gemini_id,
                arguments=orjson.dumps(args).decode(),
            )
            response.calls.append(entry)
            self._calls[entry.call_id] = entry
            where = {
                "response_id": response.id,
                "item_id": entry.item_id,
                "output_index": self._call_index(response, entry),
            }
            self._emit(
                {
                    "type": "response.output_item.added",
                    "response_id": response.id,
                    "output_index": where["output_index"],
                    "item": self._call_item(entry, "in_progress"),
                }
            )
            self._emit(
                {
                    "type": "response.function_call_arguments.delta",
                    **where,
                    "call_id": entry.call_id,
                    "delta": entry.arguments,
                }
            )
            self._emit(
                {
                    "type": "response.function_call_arguments.done",
                    **where,
                    "call_id": entry.call_id,
                    "name": entry.name,
                    "arguments": entry.arguments,
                }
            )
            self._emit(
                {
                    "type": "response.output_item.done",
                    "response_id": response.id,
                    "output_index": where["output_index"],
                    "item": self._call_item(entry, "completed"),
                }
            )
            self._items.append(entry.item_id)
        if not response.turn_complete:
            # The turn waits for the results: the response is over once its usage is known.
            response.turn_complete = True
            if response.usage is not None:
                self._finish(response)
            else:
                loop = asyncio.get_running_loop()
                response.grace = loop.call_later(USAGE_GRACE_SECONDS, self._finish, response)

    def _call_index(self, response: _Response, call: _Call) -> int:
        return (1 if response.started_parts else 0) + response.calls.index(call)

    def _call_item(self, call: _Call, status: str) -> dict[str, Any]:
        return {
            "id": call.item_id,
            "object": "realtime.item",
            "type": "function_call",
            "status": status,
            "name": call.name,
            "call_id": call.call_id,
            "arguments": call.arguments if status == "completed" else "",
        }

    def _finish(self, response: _Response) -> None:
        if response.finished:
            return
        response.finished = True
        if response.grace is not None:
            response.grace.cancel()
        status = "cancelled" if response.cancelled else "completed"
        where = self._where(response)
        if response.started_parts:
            if status == "completed":
                if response.audio:
                    self._emit({"type": self.names["audio_done"], **where, "content_index": 0})
                    self._emit(
                        {
                            "type": self.names["transcript_done"],
                            **where,
                            "content_index": 0,
                            "transcript": "".join(response.transcript),
                        }
                    )
                else:
                    self._emit(
                        {
                            "type": self.names["text_done"],
                            **where,
                            "content_index": 0,
                            "text": "".join(response.text),
                        }
                    )
            item = self._item(response, "completed" if status == "completed" else "incomplete")
            self._emit({"type": "response.output_item.done", **where, "item": item})
            self._items.append(response.item_id)
            output = [item]
        else:
            output = []
        output += [self._call_item(call, "completed") for call in response.calls]
        self._emit(
            {
                "type": "response.done",
                "response": {
                    "id": response.id,
                    "object": "realtime.response",
                    "status": status,
                    "output": output,
                    # None when the Live API never reported it: the relay estimates it.
                    "usage": usage_to_openai(response.usage) if response.usage else None,
                },
            }
        )
