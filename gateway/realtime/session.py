"""`/v1/realtime`: one client WebSocket relayed to one upstream WebSocket, governed per response.

The handshake is authenticated (gateway/realtime/handshake.py), the session admitted (its
concurrent-session slots taken, every budget checked: gateway.governance.session_admit) and its
upstream opened (gateway/realtime/upstream.py) before the client's WebSocket is accepted; a
refusal is an HTTP answer with OpenAI's error body when the server can send one, else a close.

Frames pass through as they came (text stays the same string): Ogem reads each event's `type`
and only these events' contents:

- client `response.create`: admitted like a /v1 request (rate limits, tokens, budget reservation
  of its worst case: gateway.governance.governance_admit) before it is forwarded; refused, the
  client gets an `error` event instead (and, for a budget, the session ends).
- upstream `response.created` / `response.done`: link a response to its admission, then settle it
  with the usage `response.done` reports (text, audio and cached tokens priced apart), exactly
  once: a RequestLog per response. A response the upstream started by itself (server VAD) is
  admitted when it is created.
- client events that add to the conversation grow the bound of the next response's prompt.

A malformed client event (not JSON, not an object with a `type`, a binary frame, too large) is
answered with the protocol's `error` event and not forwarded; the session goes on. Either side
closing closes the other; idle and maximum-duration timeouts close both. Responses still running
when the session ends are cancelled upstream and given `OGEM_REALTIME_DRAIN` seconds to report
their usage; what never reports is recorded from what was relayed (marked estimated).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
import websockets
from django.conf import settings
from django.db.utils import InterfaceError, OperationalError

from billing.pricing import cost_from_price, deployment_price
from gateway.auth import caller_by_key_id
from gateway.config import config_current
from gateway.context import Caller, RequestContext
from gateway.errors import BudgetExceededError, GatewayError, NotFoundError, RateLimitError
from gateway.governance import (
    Admission,
    SessionHold,
    governance_admit,
    governance_settle,
    session_admit,
    session_release,
)
from gateway.guardrails.stage import (
    GuardPlan,
    guard_decisions_take,
    guard_plan,
    guard_realtime_item,
)
from gateway.realtime.call_records import call_end
from gateway.realtime.frames import delta_read, event_type
from gateway.realtime.handshake import Opening, opening_resolve
from gateway.realtime.slots import call_sideband_slot, session_slots
from gateway.realtime.upstream import upstream_open, upstream_open_call
from gateway.realtime.usage import AUDIO_BYTES_PER_TOKEN, usage_estimate, usage_from_realtime
from gateway.tracing import (
    SessionTrace,
    SpanRecord,
    realtime_response_end,
    realtime_response_start,
    realtime_trace_begin,
    realtime_trace_end,
    trace_context_parse,
    trace_id_new,
    trace_refused,
    tracing_active,
)
from ogem_site.asgi_types import Receive, Scope, Send
from ogem_site.broadcast import KEYS, BroadcastTopic, broadcast_listen, broadcast_topic_register
from ogem_site.metrics import REALTIME_SESSIONS, REALTIME_SESSIONS_ENDED
from ogem_site.supervision import draining
from providers.base import Deployment, Endpoint
from providers.realtime import RealtimeUpstream
from providers.registry import adapter_get

logger = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001  # idle or maximum duration reached
CLOSE_POLICY = 1008  # the key was revoked, the budget ran out
CLOSE_INTERNAL = 1011  # the upstream failed
CLOSE_RESTART = 1012  # Ogem is stopping: reconnect (to another instance)
_PASSED_CODES = frozenset({1000, 1001, 1008, 1011, 1012, 1013})
# How often a process with open sessions looks whether `serve` is stopping.
DRAIN_POLL_SECONDS = 1.0

# Output events whose `delta` is relayed text or audio (GA names, then the beta's).
_TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.output_audio_transcript.delta",
        "response.text.delta",
        "response.audio_transcript.delta",
        "response.function_call_arguments.delta",
    }
)
_AUDIO_DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})
# Upstream events Ogem parses (audio deltas, kilobytes each, are read off the frame; the rest
# pass unread, gateway/realtime/frames.py).
_PARSED_UPSTREAM = _TEXT_DELTAS | {"response.created", "response.done", "error"}
_GOVERNED_UPSTREAM = _PARSED_UPSTREAM | _TEXT_DELTAS | _AUDIO_DELTAS


def _sendable(code: int | None) -> bool:
    return code is not None and (code in _PASSED_CODES or 3000 <= code <= 4999)


def _passed_code(code: int | None) -> int:
    """An upstream's close code as the client may receive it: 1005 (none given) is a normal
    close, 1006 (the connection dropped) and codes a server does not send are 1011."""
    if _sendable(code):
        return code  # type: ignore[return-value]
    return CLOSE_NORMAL if code in (None, 1005) else CLOSE_INTERNAL


@dataclass(slots=True)
class _Turn:
    """One response: its admission, and what was relayed of it."""

    ctx: RequestContext
    admission: Admission
    event_id: str | None = None  # the client's response.create event, for upstream errors
    response_id: str | None = None
    text_bytes: int = 0
    audio_chars: int = 0
    settled: bool = False
    span: SpanRecord | None = None  # its span, when the session is traced


@dataclass(eq=False)
class RealtimeSession:
    opening: Opening
    deployment: Deployment
    upstream: RealtimeUpstream
    receive: Receive
    send: Send
    hold: SessionHold
    session_id: str = field(default_factory=lambda: f"rt_{uuid.uuid4().hex}")
    guard: GuardPlan | None = None  # the session's guardrails (pre/during call on item text)
    started: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    # The prompt tokens the next response can be billed for: the conversation so far.
    context_tokens: int = 0
    responses: int = 0
    cost: Decimal = Decimal(0)
    close_reason: str = ""
    client_open: bool = True
    _admitted: deque[_Turn] = field(default_factory=deque)
    _running: dict[str, _Turn] = field(default_factory=dict)
    _turn_number: int = 0
    _send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _ending: asyncio.Event = field(default_factory=asyncio.Event)
    _ending_code: int = CLOSE_NORMAL
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _recheck: asyncio.Task[None] | None = None
    trace: SessionTrace | None = None  # the session's, when traced (gateway/tracing.py)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)

    @property
    def caller(self) -> Caller:
        return self.opening.caller

    # ---- the client side ------------------------------------------------------------------

    async def client_send(self, text: str) -> None:
        if not self.client_open:
            return
        lock = self._send_lock  # acquired and released by hand: once a frame, no `async with`
        await lock.acquire()
        try:
            if self.client_open:
                await self.send({"type": "websocket.send", "text": text})
        finally:
            lock.release()

    async def client_error(
        self, error: GatewayError, *, event_id: str | None = None, code: str | None = None
    ) -> None:
        """The protocol's `error` event, OpenAI's error object in it."""
        body = error.to_body()["error"]
        if code is not None:
            body["code"] = code
        body["event_id"] = event_id
        event = {"type": "error", "event_id": f"event_{uuid.uuid4().hex[:24]}", "error": body}
        await self.client_send(orjson.dumps(event).decode())

    async def client_close(self, code: int) -> None:
        async with self._send_lock:
            if self.client_open:
                self.client_open = False
                await self.send({"type": "websocket.close", "code": code})

    def end(self, reason: str, code: int) -> None:
        """Ask the session to end (once: the first reason is kept)."""
        if not self._ending.is_set():
            self.close_reason = reason
            self._ending_code = code
            self._ending.set()

    async def from_client(self) -> None:
        limit = settings.OGEM_REALTIME_MAX_MESSAGE_BYTES
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                self.client_open = False
                code = message.get("code")
                self.end("client closed", code if _sendable(code) else CLOSE_NORMAL)
                return
            if kind != "websocket.receive":
                continue
            self.last_activity = time.monotonic()
            text = message.get("text")
            if text is None:
                await self.client_error(
                    GatewayError(
                        "Binary frames are not part of the Realtime API: send JSON events as text.",
                        code="invalid_event",
                        status=400,
                    ),
                    code="invalid_event",
                )
                continue
            if len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit):
                await self.client_error(
                    _invalid(f"The event is larger than {limit} bytes.", code="message_too_large")
                )
                continue
            if text.endswith("}") and event_type(text) == "input_audio_buffer.append":
                # The frame a voice session sends most, kilobytes of base64: forwarded unparsed
                # (a malformed one inside gets the upstream's own error event); its size bounds
                # the audio it adds to the next response's prompt.
                self.context_tokens += (len(text) * 3 // 4) // AUDIO_BYTES_PER_TOKEN + 1
                try:
                    await self.upstream.send(text)
                except websockets.ConnectionClosed:
                    return
                continue
            try:
                event = orjson.loads(text)
            except orjson.JSONDecodeError:
                await self.client_error(
                    _invalid("The event is not valid JSON.", code="invalid_json")
                )
                continue
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                await self.client_error(
                    _invalid("An event is a JSON object with a string `type`.", param="type")
                )
                continue
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            kind = event["type"]
            if kind == "response.create":
                if not await self.response_admit(event, event_id=event_id):
                    continue
            elif kind == "input_audio_buffer.append":
                audio = event.get("audio")
                if isinstance(audio, str):
                    self.context_tokens += (len(audio) * 3 // 4) // AUDIO_BYTES_PER_TOKEN + 1
            elif kind in ("conversation.item.create", "session.update"):
                if kind == "conversation.item.create" and self.guard is not None:
                    try:
                        guarded = await guard_realtime_item(self.guard, event)
                    except GatewayError as error:  # a block: the item never goes upstream
                        await self.client_error(error, event_id=event_id)
                        continue
                    if guarded is not event:
                        text = orjson.dumps(guarded).decode()
                # Text counts at most a token a byte (instructions, tools, items).
                self.context_tokens += len(text)
            try:
                await self.upstream.send(text)
            except websockets.ConnectionClosed:
                return  # from_upstream sees the close and ends the session

    async def response_admit(self, event: dict[str, Any], *, event_id: str | None) -> bool:
        """Admit a client's response.create; on refusal answer with an `error` event."""
        response = event.get("response")
        max_tokens = None
        if isinstance(response, dict):
            for name in ("max_output_tokens", "max_response_output_tokens"):
                value = response.get(name)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    max_tokens = value
        try:
            turn = await self.turn_admit(max_tokens=max_tokens)
        except GatewayError as error:
            await self.refused(error, event_id=event_id)
            return False
        turn.event_id = event_id
        self._admitted.append(turn)
        return True

    async def refused(self, error: GatewayError, *, event_id: str | None) -> None:
        await self.client_error(error, event_id=event_id)
        if isinstance(error, BudgetExceededError):
            self.end("budget exceeded", CLOSE_POLICY)

    async def turn_admit(self, *, max_tokens: int | None) -> _Turn:
        self._turn_number += 1
        ctx = RequestContext(
            request_id=f"{self.session_id}-{self._turn_number}",
            endpoint=Endpoint.REALTIME,
            caller=self.caller,
        )
        ctx.model = self.opening.model
        ctx.stream = True
        ctx.deployment = self.deployment
        ctx.candidates = (self.deployment,)
        ctx.max_tokens = max_tokens
        ctx.prompt_tokens_bound = max(self.context_tokens, 1)
        ctx.estimated_prompt_tokens = self.context_tokens
        if self.guard is not None:
            ctx.guard = guard_decisions_take(self.guard)  # recorded with this response
        span = None
        if self.trace is not None:
            span = realtime_response_start(self.trace, self.deployment)
        try:
            admission = await governance_admit(ctx)
        except BaseException as error:
            if span is not None and self.trace is not None:
                realtime_response_end(
                    self.trace, span, ctx, status="refused", response_id=None, error=error
                )
            raise
        return _Turn(ctx=ctx, admission=admission, span=span)

    # ---- the upstream side ----------------------------------------------------------------

    async def from_upstream(self) -> None:
        try:
            async for message in self.upstream:
                self.last_activity = time.monotonic()
                if isinstance(message, bytes):  # not in the protocol: relayed as it came
                    if self.client_open:
                        async with self._send_lock:
                            if self.client_open:
                                await self.send({"type": "websocket.send", "bytes": message})
                    continue
                kind = event_type(message)
                if kind is None or kind in _GOVERNED_UPSTREAM:
                    await self.upstream_event(message, kind)
                await self.client_send(message)
        except websockets.ConnectionClosed:
            pass
        code = self.upstream.close_code
        self.end("upstream closed", _passed_code(code))

    async def upstream_event(self, text: str, kind: str | None) -> None:
        """Read what governance needs of an upstream event whose `type` (`kind`, None when the
        frame's start did not show it: gateway/realtime/frames.py) Ogem governs: an audio
        delta's response and length are read off the flat frame (kilobytes of base64 a JSON
        parse would read whole); text deltas (a few bytes), a response's creation and end and
        an error are parsed. Other events never get here: they pass unread."""
        if kind in _AUDIO_DELTAS:
            if not self._running:
                return  # no response of this session is running: nothing to count
            read = delta_read(text)
            if read is not None:
                turn = self._running.get(read[0])
                if turn is not None:
                    turn.audio_chars += read[1]
                return
        elif kind is not None and kind not in _PARSED_UPSTREAM:
            return  # an event Ogem does not govern: relayed unread
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        kind = event.get("type")
        if kind in _AUDIO_DELTAS or kind in _TEXT_DELTAS:
            turn = self._running.get(str(event.get("response_id")))
            delta = event.get("delta")
            if turn is not None and isinstance(delta, str):
                if kind in _AUDIO_DELTAS:
                    turn.audio_chars += len(delta)
                else:
                    turn.text_bytes += len(delta)
        elif kind == "response.created":
            await self.response_created(event)
        elif kind == "response.done":
            await self.response_done(event)
        elif kind == "error":
            await self.upstream_error(event)

    async def response_created(self, event: dict[str, Any]) -> None:
        response = event.get("response")
        response_id = str(response.get("id")) if isinstance(response, dict) else ""
        if self._admitted:
            turn = self._admitted.popleft()
        else:  # started by the upstream itself (server VAD): admitted now
            try:
                turn = await self.turn_admit(max_tokens=None)
            except GatewayError as error:
                await self._upstream_send({"type": "response.cancel", "response_id": response_id})
                await self.refused(error, event_id=None)
                return
        turn.response_id = response_id
        self._running[response_id] = turn
        self._idle.clear()

    async def response_done(self, event: dict[str, Any]) -> None:
        response = event.get("response")
        if not isinstance(response, dict):
            return
        turn = self._running.pop(str(response.get("id")), None)
        if turn is None:
            return  # a response refused at creation (cancelled by Ogem): nothing was admitted
        usage = response.get("usage")
        status = str(response.get("status") or "")
        if isinstance(usage, dict):
            usage_from_realtime(usage, into=turn.ctx.usage)
        else:  # an upstream that did not report it (a Live API turn without usageMetadata)
            usage_estimate(
                into=turn.ctx.usage,
                prompt_tokens=turn.ctx.estimated_prompt_tokens,
                text_bytes=turn.text_bytes,
                audio_chars=turn.audio_chars,
            )
        self.context_tokens = turn.ctx.usage.prompt_tokens + turn.ctx.usage.completion_tokens
        await self.turn_settle(turn, status=status)
        if not self._running:
            self._idle.set()

    async def upstream_error(self, event: dict[str, Any]) -> None:
        """An upstream `error` about a response.create Ogem admitted: that response will never
        be created, so its admission is settled (as a refused request) now."""
        error = event.get("error")
        event_id = error.get("event_id") if isinstance(error, dict) else None
        if not event_id:
            return
        for turn in self._admitted:
            if turn.event_id == event_id:
                self._admitted.remove(turn)
                turn.ctx.status_code = 400
                await self.turn_settle(turn, status="failed")
                return

    async def turn_settle(self, turn: _Turn, *, status: str) -> None:
        if turn.settled:
            return
        turn.settled = True
        ctx = turn.ctx
        if status == "cancelled" or not self.client_open:
            ctx.cancelled = True
        if status == "failed" and ctx.status_code == 200:
            ctx.status_code = 502
        await governance_settle(ctx, turn.admission)
        if turn.span is not None and self.trace is not None:
            realtime_response_end(
                self.trace, turn.span, ctx, status=status, response_id=turn.response_id
            )
        self.responses += 1
        price = deployment_price(deployment=self.deployment)
        if price is not None:
            self.cost += cost_from_price(price=price, usage=ctx.usage)

    async def _upstream_send(self, event: dict[str, Any]) -> None:
        try:
            await self.upstream.send(orjson.dumps(event).decode())
        except websockets.ConnectionClosed:
            pass

    # ---- the session's life -----------------------------------------------------------------

    async def watch(self) -> None:
        """End the session when it idles, reaches its maximum duration or its key expires."""
        idle = settings.OGEM_REALTIME_IDLE_TIMEOUT
        longest = settings.OGEM_REALTIME_MAX_SECONDS
        while True:
            now = time.monotonic()
            idle_left = self.last_activity + idle - now
            max_left = self.started + longest - now
            expires = self.caller.expires_at
            if expires is not None:  # the key's own expiry ends its sessions too
                key_left = expires - time.time()
                if key_left <= 0:
                    await self.key_refused(expired=True)
                    return
                max_left = min(max_left, key_left)
            if max_left <= 0:
                await self.client_error(
                    _invalid(f"The session reached its maximum duration of {longest} s."),
                    code="session_expired",
                )
                self.end("maximum duration", CLOSE_GOING_AWAY)
                return
            if idle_left <= 0:
                await self.client_error(
                    _invalid(f"The session was idle for {idle} s."), code="session_idle"
                )
                self.end("idle", CLOSE_GOING_AWAY)
                return
            await asyncio.sleep(min(idle_left, max_left))

    def key_changed(self) -> None:
        """The key (or its team or organization) changed: read it again (any thread)."""
        self.loop.call_soon_threadsafe(self._recheck_start)

    def _recheck_start(self) -> None:
        if self._recheck is None or self._recheck.done():
            self._recheck = self.loop.create_task(self._key_recheck())

    async def _key_recheck(self) -> None:
        key_id = self.caller.key_id
        if key_id is None:
            return
        try:
            caller = await caller_by_key_id(key_id=key_id)
        except Exception:  # the database is away: the next change or the next session decides
            logger.warning("realtime session %s: could not read its key again", self.session_id)
            return
        if caller is None:
            await self.key_refused(expired=False)
            return
        self.opening = dataclasses.replace(self.opening, caller=caller)

    async def key_refused(self, *, expired: bool) -> None:
        what = "has expired" if expired else "was revoked"
        await self.client_error(
            GatewayError(
                f"The API key of this session {what}.", code="invalid_api_key", status=401
            ),
            code="invalid_api_key",
        )
        self.end("key expired" if expired else "key revoked", CLOSE_POLICY)

    async def run(self) -> None:
        if self.opening.session:
            # A client secret's configuration applies before the client's first event.
            await self._upstream_send({"type": "session.update", "session": self.opening.session})
        tasks = [
            asyncio.ensure_future(self.from_client()),
            asyncio.ensure_future(self.from_upstream()),
            asyncio.ensure_future(self.watch()),
        ]
        for task in tasks:
            # A side that stops on an unexpected error ends the session too (a normal end has
            # given its reason already: the first one is kept).
            task.add_done_callback(self._stopped)
        try:
            await self._ending.wait()
        finally:
            tasks[0].cancel()
            tasks[2].cancel()
            await self.client_close(self._ending_code)
            # The client is gone: its slot is free while the upstream drains.
            await session_release(_hold_context(self), self.hold)
            await self._drain(tasks[1])
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._settle_rest()
            if self.trace is not None:
                realtime_trace_end(
                    self.trace,
                    reason=self.close_reason or "relay stopped",
                    responses=self.responses,
                )
            await self._call_after()
            self.log()

    def _stopped(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "realtime session %s: relay failed", self.session_id, exc_info=task.exception()
            )
        self.end("relay stopped", CLOSE_INTERNAL)

    async def _drain(self, upstream_task: asyncio.Future[None]) -> None:
        """Cancel the responses still running and wait (bounded) for their usage (a call's
        sideband cancels nothing: the call goes on without it)."""
        if self._running and self.upstream.close_code is None:
            if self.opening.call is None:
                for response_id in list(self._running):
                    await self._upstream_send(
                        {"type": "response.cancel", "response_id": response_id}
                    )
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout=settings.OGEM_REALTIME_DRAIN)
            except TimeoutError:
                pass
        upstream_task.cancel()
        code = self._ending_code if _sendable(self._ending_code) else CLOSE_NORMAL
        try:
            await self.upstream.close(code=code)
        except Exception:  # the connection is gone already
            logger.debug("realtime: upstream close failed")

    async def _call_after(self) -> None:
        """A call's sideband ended: the call ended with it when the upstream closed it; when
        Ogem's governance closed it (budget, key), Ogem hangs the call up too."""
        call = self.opening.call
        if call is None:
            return
        if self.close_reason in ("budget exceeded", "key revoked", "key expired"):
            adapter = adapter_get(self.deployment.provider)
            try:
                assert adapter is not None
                await adapter.realtime_call_hangup(deployment=self.deployment, call_id=call.call_id)
            except Exception:  # the call may have ended already; its slots expire anyway
                logger.warning("realtime call %s: the hang-up failed", call.call_id)
        elif self.close_reason != "upstream closed":
            return  # the sideband client left: the call goes on
        await call_end(call, caller=self.caller)

    async def _settle_rest(self) -> None:
        """Responses that never reported their usage: recorded from what was relayed."""
        for turn in [*self._running.values(), *self._admitted]:
            if turn.response_id is not None:
                usage_estimate(
                    into=turn.ctx.usage,
                    prompt_tokens=turn.ctx.estimated_prompt_tokens,
                    text_bytes=turn.text_bytes,
                    audio_chars=turn.audio_chars,
                )
            else:
                turn.ctx.status_code = 499  # admitted, never created upstream
            await self.turn_settle(turn, status="cancelled")
        self._running.clear()
        self._admitted.clear()

    def log(self) -> None:
        logger.info(
            "realtime session %s ended (%s): key=%s model=%s deployment=%s duration=%.1fs "
            "responses=%d cost=%s%s",
            self.session_id,
            self.close_reason,
            self.caller.key_prefix or self.caller.key_name,
            self.opening.model,
            self.deployment.id,
            time.monotonic() - self.started,
            self.responses,
            self.cost,
            f" call={self.opening.call.call_id}" if self.opening.call is not None else "",
        )


def _invalid(message: str, *, code: str | None = None, param: str | None = None) -> GatewayError:
    return GatewayError(message, code=code or "invalid_event", param=param, status=400)


def _hold_context(session: RealtimeSession) -> RequestContext:
    # The request id the slots were taken under (the session's).
    return RequestContext(
        request_id=session.session_id, endpoint=Endpoint.REALTIME, caller=session.caller
    )


# ---- open sessions, for key changes ---------------------------------------------------------

_open: set[RealtimeSession] = set()


_drain_watchers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}


def _drain_watch_start() -> None:
    """One watcher per event loop while it has sessions: when `serve` is stopping, every session
    ends (its running responses settled) with 1012, rather than being cut at the grace's end."""
    loop = asyncio.get_running_loop()
    task = _drain_watchers.get(loop)
    if task is None or task.done():
        _drain_watchers[loop] = loop.create_task(_drain_watch(loop))


async def _drain_watch(loop: asyncio.AbstractEventLoop) -> None:
    while True:
        mine = [session for session in _open if session.loop is loop]
        if not mine:
            return
        if draining():
            for session in mine:
                await session.client_error(
                    GatewayError("The server is restarting: reconnect.", code="server_restart"),
                    code="server_restart",
                )
                session.end("server stopping", CLOSE_RESTART)
        await asyncio.sleep(DRAIN_POLL_SECONDS)


def sessions_key_recheck_all() -> None:
    """The broadcast listener subscribed again: what was published while it was away is lost, so
    every open session reads its key again (a query per session, only on a resubscription)."""
    for session in list(_open):
        session.key_changed()


def sessions_key_changed(prefixes: list[str]) -> None:
    """Keys changed (revoked, updated, their team or organization changed): the sessions they
    hold read them again, and end when they are no longer valid. Any thread."""
    wanted = set(prefixes)
    for session in list(_open):
        if session.caller.key_prefix in wanted:
            session.key_changed()


# ---- the ASGI application ---------------------------------------------------------------------


async def realtime_asgi(scope: Scope, receive: Receive, send: Send) -> None:
    """The `/v1/realtime` WebSocket endpoint."""
    if scope["type"] != "websocket":
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if settings.REDIS_URL:
        broadcast_listen()  # key revocations reach this loop's sessions through it
    session_id = f"rt_{uuid.uuid4().hex}"
    try:
        opening = await opening_resolve(scope)
    except GatewayError as error:
        await _refuse(scope, send, error)
        return
    except Exception as exc:
        await _refuse(scope, send, _unexpected(exc, session_id=session_id))
        return
    ctx = RequestContext(request_id=session_id, endpoint=Endpoint.REALTIME, caller=opening.caller)
    ctx.model = opening.model
    hold: SessionHold | None = None
    guard: GuardPlan | None = None
    try:
        guardrails = config_current().guardrails
        if guardrails is not None or opening.caller.guardrails:
            guard, _ = guard_plan(ctx, settings=guardrails, body={})
        if opening.call is None:
            hold = await session_admit(ctx, slots=session_slots(ctx))
            upstream, deployment = await upstream_open(
                caller=opening.caller, model=opening.model, beta=opening.beta
            )
        else:
            # A call's sideband: the call holds the session slots already.
            hold = await _sideband_admit(ctx, call_id=opening.call.call_id)
            upstream, deployment = await upstream_open_call(
                caller=opening.caller,
                model=opening.model,
                deployment_id=opening.call.deployment_id,
                call_id=opening.call.call_id,
                beta=opening.beta,
            )
    except Exception as exc:
        if hold is not None:
            await session_release(ctx, hold)
        error = exc if isinstance(exc, GatewayError) else _unexpected(exc, session_id=session_id)
        await _refuse(scope, send, error)
        return
    accept: dict[str, Any] = {"type": "websocket.accept"}
    if opening.subprotocol:
        accept["subprotocol"] = opening.subprotocol
    session = RealtimeSession(
        opening=opening,
        deployment=deployment,
        upstream=upstream,
        receive=receive,
        send=send,
        hold=hold,
        session_id=session_id,
        guard=guard,
    )
    tracing = tracing_active(config_current().tracing)
    if tracing is not None:
        session.trace = realtime_trace_begin(
            tracing=tracing,
            headers=scope.get("headers", ()),
            session_id=session_id,
            model=opening.model,
            deployment=deployment,
            caller=opening.caller,
        )
    try:
        await send(accept)
    except Exception:  # the client left before the accept
        await session_release(ctx, hold)
        await upstream.close()
        return
    _open.add(session)
    _drain_watch_start()
    REALTIME_SESSIONS.inc()
    try:
        await session.run()
    finally:
        _open.discard(session)
        REALTIME_SESSIONS.dec()
        REALTIME_SESSIONS_ENDED.labels(reason=session.close_reason or "relay stopped").inc()


async def websocket_not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """A WebSocket to any other path: 404 in OpenAI's error shape."""
    if scope["type"] != "websocket" or (await receive())["type"] != "websocket.connect":
        return
    await _refuse(
        scope,
        send,
        NotFoundError(f"Unknown WebSocket URL: {scope.get('path', '')}.", code="unknown_url"),
    )


async def _sideband_admit(ctx: RequestContext, *, call_id: str) -> SessionHold:
    try:
        return await session_admit(ctx, slots=call_sideband_slot(ctx, call_id=call_id))
    except BudgetExceededError:
        raise
    except RateLimitError as exc:  # the call's one sideband slot is taken
        raise GatewayError(
            "This call has a sideband connection through Ogem already.",
            status=409,
            code="call_sideband_open",
        ) from exc


def _unexpected(exc: Exception, *, session_id: str) -> GatewayError:
    """What a handshake that failed inside Ogem answers: 503 while the database is away (a key or
    client secret not cached yet needed it), else 500; never a traceback."""
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("realtime %s: database unavailable (%s)", session_id, exc)
        return GatewayError(
            "The database is unavailable; retry shortly.",
            status=503,
            code="database_unavailable",
            headers={"Retry-After": "1"},
        )
    logger.error("realtime %s: handshake failed", session_id, exc_info=exc)
    return GatewayError("The server had an error while processing your request.")


async def _refuse(scope: Scope, send: Send, error: GatewayError) -> None:
    """Refuse the handshake: with the error's status and OpenAI's body when the server supports
    ASGI's WebSocket denial response, else by closing it (an HTTP 403). Its request span is
    recorded when tracing is on, and the denial carries its trace id, as /v1's answers do."""
    traceparent = next((v for k, v in scope.get("headers", ()) if k == b"traceparent"), None)
    traced = trace_context_parse(traceparent) if traceparent is not None else None
    if traced is None:
        traced = (trace_id_new(), 0, 1)
    tracing = tracing_active(config_current().tracing)
    if tracing is not None:
        trace_refused(
            tracing=tracing,
            traced=traced,
            path=scope.get("path", ""),
            error=error,
            started_ns=time.time_ns(),
            method="GET",
        )
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = orjson.dumps(error.to_body())
        headers = [
            (b"content-type", b"application/json"),
            (b"x-ogem-trace-id", b"%032x" % traced[0]),
        ]
        headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
        await send(
            {"type": "websocket.http.response.start", "status": error.status, "headers": headers}
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": CLOSE_POLICY})


broadcast_topic_register(
    BroadcastTopic(
        name=KEYS,
        receive=lambda message: sessions_key_changed([str(p) for p in message.get("prefixes", ())]),
        resync=sessions_key_recheck_all,
    )
)
