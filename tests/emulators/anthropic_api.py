"""A local emulator of Anthropic's Messages API on a real socket, written from its reference.

It serves `POST /v1/messages` and `POST /v1/messages/count_tokens`, validates requests the way the
real API does (the `x-api-key` and `anthropic-version` headers, required fields, unknown fields,
alternating roles starting with a user turn, content block types, tool_result ids answering the
previous turn's tool_use ids, thinking budgets), answers 400/401 in Anthropic's error shape, and
replies in Anthropic's JSON or its SSE framing (`event: <type>\\ndata: <json>\\n\\n`, `ping`
included). Tests script replies (`script(...)`) and read what it received (`requests`).

Prompt caching: `cache_control` (`{"type": "ephemeral"}`, optional `ttl` 5m or 1h) is accepted on
tools, system blocks and content blocks, and at the top level (automatic caching: the last
block), at most four breakpoints. A reply scripted with `usage=None` (`reply_cached`) reports the
usage the emulator's prompt cache counts (tests/emulators/prompt_cache.py): `input_tokens` the
uncached rest, `cache_creation_input_tokens` with its `cache_creation` split by TTL, and
`cache_read_input_tokens`, as the API does; `usages` lists every usage reported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.prompt_cache import Block, BreakpointCache, block_of, block_tokens
from tests.live import free_port

API_KEY = "sk-ant-emulator-key"
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
TOP_LEVEL_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "cache_control",
}
BLOCK_TYPES = {
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
}


@dataclass
class Reply:
    """One scripted answer: content blocks and a stop reason, or an error status."""

    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    # None: counted by the emulator's prompt cache.
    usage: dict[str, Any] | None = field(
        default_factory=lambda: {"input_tokens": 12, "output_tokens": 7}
    )
    status: int = 200
    error_type: str = ""
    error_message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # Streaming only: send an `error` event (e.g. overloaded_error) after this many events.
    stream_error_after: int | None = None
    # Streaming only: end the body after this many events, without message_stop or an error.
    stream_cut_after: int | None = None
    # Streaming only: a pause before each event after the first, as a model producing slowly.
    stream_event_delay_ms: int = 0
    message_id: str = "msg_01EmulatorReply"


def callable_only(body: dict[str, Any], reply: Reply) -> Reply:
    """The model calls only a tool the request declares, and none under tool_choice "none": a
    scripted call it could not make becomes text."""
    choice = body.get("tool_choice") or {}
    names = (
        set() if choice.get("type") == "none" else {t.get("name") for t in body.get("tools") or []}
    )
    content: list[dict[str, Any]] = []
    for block in reply.content:
        if block.get("type") == "tool_use" and block.get("name") not in names:
            content.append({"type": "text", "text": f"(I may not call {block.get('name')}.)"})
        else:
            content.append(block)
    called = any(b.get("type") == "tool_use" for b in content)
    stop = "end_turn" if reply.stop_reason == "tool_use" and not called else reply.stop_reason
    return dataclasses.replace(reply, content=content, stop_reason=stop)


def reply_text(text: str, **kwargs: Any) -> Reply:
    return Reply(content=[{"type": "text", "text": text}], **kwargs)


def reply_cached(text: str, **kwargs: Any) -> Reply:
    """A text reply whose usage the emulator counts, prompt cache included."""
    return Reply(content=[{"type": "text", "text": text}], usage=None, **kwargs)


def reply_error(status: int, error_type: str, message: str, **kwargs: Any) -> Reply:
    return Reply(status=status, error_type=error_type, error_message=message, **kwargs)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class InvalidRequest(Exception):
    pass


def _error_response(status: int, error_type: str, message: str, **headers: str) -> web.Response:
    body = {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": "req_emulator",
    }
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers={"request-id": "req_emulator", **headers},
    )


def _check_cache_control(block: dict[str, Any], where: str) -> int:
    """Whether (0 or 1) the block is a cache breakpoint; raises when its marker is invalid."""
    control = block.get("cache_control")
    if control is None:
        return 0
    if not isinstance(control, dict) or control.get("type") != "ephemeral":
        raise InvalidRequest(f"{where}.cache_control: Input tag does not match 'ephemeral'")
    extra = set(control) - {"type", "ttl"}
    if extra:
        raise InvalidRequest(
            f"{where}.cache_control.{sorted(extra)[0]}: Extra inputs are not permitted"
        )
    if "ttl" in control and control["ttl"] not in ("5m", "1h"):
        raise InvalidRequest(f"{where}.cache_control.ttl: Input should be '5m' or '1h'")
    return 1


def _breakpoints(body: dict[str, Any]) -> int:
    blocks: list[Any] = list(body.get("tools") or [])
    if isinstance(body.get("system"), list):
        blocks += body["system"]
    for message in body["messages"]:
        if isinstance(message.get("content"), list):
            blocks += message["content"]
    found = sum(1 for b in blocks if isinstance(b, dict) and b.get("cache_control") is not None)
    return found + (body.get("cache_control") is not None)


def prompt_blocks(body: dict[str, Any]) -> list[Block]:
    """The prompt as the model reads it (tools, system, messages), breakpoints marked; a
    top-level `cache_control` marks the last block."""

    def ttl(block: dict[str, Any]) -> str | None:
        control = block.get("cache_control")
        return None if control is None else str(control.get("ttl") or "5m")

    def as_blocks(content: Any) -> list[dict[str, Any]]:
        return [{"type": "text", "text": content}] if isinstance(content, str) else content

    blocks = [block_of(tool, ttl=ttl(tool)) for tool in body.get("tools") or []]
    if body.get("system"):
        blocks += [block_of(b, ttl=ttl(b)) for b in as_blocks(body["system"])]
    for message in body["messages"]:
        blocks += [block_of(b, ttl=ttl(b)) for b in as_blocks(message["content"])]
    automatic = body.get("cache_control")
    if automatic is not None and blocks:
        last = blocks[-1]
        blocks[-1] = Block(last.tokens, last.key, breakpoint_ttl=str(automatic.get("ttl") or "5m"))
    return blocks


def _check_block(block: Any, where: str, *, role: str) -> None:
    if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
        kind = block.get("type") if isinstance(block, dict) else type(block).__name__
        raise InvalidRequest(f"{where}.type: Input tag '{kind}' found using 'type' does not match")
    _check_cache_control(block, where)
    kind = block["type"]
    if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
        raise InvalidRequest(f"{where}: text content blocks must be non-empty")
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            if source.get("media_type") not in IMAGE_TYPES or not source.get("data"):
                raise InvalidRequest(f"{where}.source: invalid base64 image source")
        elif source.get("type") != "url" or not str(source.get("url", "")).startswith("http"):
            raise InvalidRequest(f"{where}.source: invalid image source")
    if kind == "document":
        source = block.get("source") or {}
        valid = (
            (source.get("type") == "base64" and source.get("media_type") == "application/pdf")
            or (source.get("type") == "url" and source.get("url"))
            or (source.get("type") == "text" and source.get("media_type") == "text/plain")
        )
        if not valid:
            raise InvalidRequest(f"{where}.source: invalid document source")
    if kind in ("tool_use", "thinking", "redacted_thinking") and role != "assistant":
        raise InvalidRequest(f"{where}: {kind} blocks are only allowed in assistant messages")
    if kind == "tool_result" and role != "user":
        raise InvalidRequest(f"{where}: tool_result blocks are only allowed in user messages")
    if kind == "tool_use" and not (
        block.get("id") and block.get("name") and isinstance(block.get("input"), dict)
    ):
        raise InvalidRequest(f"{where}: tool_use blocks need id, name and an input object")
    if kind == "thinking" and not ("thinking" in block and block.get("signature")):
        raise InvalidRequest(f"{where}.signature: Field required")


def validate_messages_request(body: Any, *, count_tokens: bool = False) -> None:
    """Raise InvalidRequest with the real API's kind of message when the body is invalid."""
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    allowed = (
        TOP_LEVEL_FIELDS - {"max_tokens", "stream", "stop_sequences"} if count_tokens else None
    )
    for name in body:
        if name not in (allowed or TOP_LEVEL_FIELDS):
            raise InvalidRequest(f"{name}: Extra inputs are not permitted")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("model: Field required")
    if not count_tokens:
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise InvalidRequest("max_tokens: Field required")
        if max_tokens < 1:
            raise InvalidRequest("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages: at least one message is required")

    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list):
            raise InvalidRequest("system: Input should be a valid string or list")
        for i, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text" or not block.get("text"):
                raise InvalidRequest(f"system.{i}: system blocks must be non-empty text blocks")
            _check_cache_control(block, f"system.{i}")

    pending_tool_ids: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise InvalidRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        expected = "user" if i % 2 == 0 else "assistant"
        if role != expected:
            raise InvalidRequest(
                'messages: roles must alternate between "user" and "assistant", '
                'starting with "user"'
            )
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            raise InvalidRequest(f"messages.{i}.content: must be a string or non-empty list")
        for j, block in enumerate(blocks):
            _check_block(block, f"messages.{i}.content.{j}", role=role)
        if role == "user":
            results = [b for b in blocks if b["type"] == "tool_result"]
            seen_other = False
            for block in blocks:
                if block["type"] != "tool_result":
                    seen_other = True
                elif seen_other:
                    raise InvalidRequest(
                        f"messages.{i}: tool_result blocks must come first in the message"
                    )
            ids = {b.get("tool_use_id") for b in results}
            unknown = ids - pending_tool_ids
            if unknown:
                raise InvalidRequest(
                    f"messages.{i}.content: unexpected `tool_use_id` found in `tool_result` "
                    f"blocks: {sorted(str(x) for x in unknown)[0]}. Each `tool_result` block "
                    "must have a corresponding `tool_use` block in the previous message."
                )
            missing = pending_tool_ids - ids
            if missing:
                raise InvalidRequest(
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {sorted(missing)[0]}"
                )
            pending_tool_ids = set()
        else:
            pending_tool_ids = {b["id"] for b in blocks if b["type"] == "tool_use"}

    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        for i, tool in enumerate(tools):
            if not TOOL_NAME_RE.match(str(tool.get("name", ""))):
                raise InvalidRequest(f"tools.{i}.name: String should match pattern")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise InvalidRequest(f"tools.{i}.input_schema.type: Input should be 'object'")
            extra = set(tool) - {"name", "description", "input_schema", "cache_control", "type"}
            if extra:
                raise InvalidRequest(
                    f"tools.{i}.{sorted(extra)[0]}: Extra inputs are not permitted"
                )
            _check_cache_control(tool, f"tools.{i}")
            names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is not None:
        if choice.get("type") not in ("auto", "any", "tool", "none"):
            raise InvalidRequest("tool_choice.type: Input tag does not match")
        if choice["type"] == "tool" and choice.get("name") not in names:
            raise InvalidRequest(f"tool_choice.name: tool {choice.get('name')!r} not found")
    thinking = body.get("thinking")
    if thinking is not None and thinking.get("type") == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise InvalidRequest("thinking.enabled.budget_tokens: must be >= 1024")
        if not count_tokens and budget >= body["max_tokens"]:
            raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and not (0 <= value <= 1):
            raise InvalidRequest(f"{name}: Input should be less than or equal to 1")
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) for s in stops)
    ):
        raise InvalidRequest("stop_sequences: Input should be a valid list of strings")
    metadata = body.get("metadata")
    if metadata is not None and set(metadata) - {"user_id"}:
        raise InvalidRequest("metadata: Extra inputs are not permitted")
    if body.get("cache_control") is not None:
        _check_cache_control(body, "")
    found = _breakpoints(body)
    if found > 4:
        raise InvalidRequest(
            f"A maximum of 4 blocks with cache_control may be provided. Found {found}."
        )


def _default_reply(body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]["content"]
    text = (
        last
        if isinstance(last, str)
        else " ".join(b.get("text", "") for b in last if b.get("type") == "text")
    )
    return reply_text(f"Echo: {text}")


def _message(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    return {
        "id": reply.message_id,
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": reply.content,
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": reply.usage,
    }


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_events(body: dict[str, Any], reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    """The SSE events of a reply, in the order and shape the real API sends them."""
    assert reply.usage is not None
    start_usage = {k: v for k, v in reply.usage.items() if k != "output_tokens"}
    start_usage["output_tokens"] = 1
    started = _message(body, reply) | {"content": [], "stop_reason": None, "stop_sequence": None}
    started["usage"] = start_usage
    events: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": started}),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(reply.content):
        kind = block["type"]
        if kind == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in _pieces(block["text"], 5)]
        elif kind == "tool_use":
            opening = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            raw = orjson.dumps(block["input"]).decode()
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            deltas += [{"type": "input_json_delta", "partial_json": p} for p in _pieces(raw, 8)]
        elif kind == "thinking":
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": p} for p in _pieces(block["thinking"], 10)
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            opening, deltas = block, []
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        for delta in deltas:
            events.append(
                (
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence},
                "usage": {"output_tokens": reply.usage.get("output_tokens", 0)},
            },
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    if reply.stream_cut_after is not None:
        return events[: reply.stream_cut_after]
    if reply.stream_error_after is not None:
        events = events[: reply.stream_error_after]
        error = {
            "type": reply.error_type or "overloaded_error",
            "message": reply.error_message or "Overloaded",
        }
        events.append(("error", {"type": "error", "error": error}))
    return events


class AnthropicEmulator:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.prompt_cache = BreakpointCache(minimum_tokens=1024)
        self.usages: list[dict[str, Any]] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.batches = MessageBatches(self)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anthropic-emulator", daemon=True)

    # -- test API --------------------------------------------------------------------------
    def start(self) -> AnthropicEmulator:
        self._thread.start()
        if not self._started.wait(timeout=10):
            raise RuntimeError("the Anthropic emulator did not start")
        return self

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.usages.clear()
        self.prompt_cache.clear()
        self.batches.clear()

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests if r.path == "/v1/messages"]

    # -- server ----------------------------------------------------------------------------
    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=40 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/messages/count_tokens", self._count_tokens)
        self.batches.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()

    async def _receive(self, request: web.Request) -> tuple[Any, web.Response | None]:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None  # a GET has no body
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", errors="replace")
        with self._lock:
            self.requests.append(
                Received(
                    path=request.path,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                )
            )
        if request.headers.get("x-api-key") != API_KEY:
            return body, _error_response(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return body, _error_response(
                400, "invalid_request_error", "anthropic-version: header is required"
            )
        if isinstance(body, str):
            return body, _error_response(400, "invalid_request_error", "Invalid JSON body")
        return body, None

    async def _count_tokens(self, request: web.Request) -> web.Response:
        body, refused = await self._receive(request)
        if refused is not None:
            return refused
        try:
            validate_messages_request(body, count_tokens=True)
        except InvalidRequest as exc:
            return _error_response(400, "invalid_request_error", str(exc))
        tokens = max(1, len(orjson.dumps(body["messages"])) // 4)
        return web.json_response({"input_tokens": tokens})

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._receive(request)
        if refused is not None:
            return refused
        try:
            validate_messages_request(body)
        except InvalidRequest as exc:
            return _error_response(400, "invalid_request_error", str(exc))
        with self._lock:
            reply = self._script.popleft() if self._script else _default_reply(body)
        if reply.status != 200:
            return _error_response(
                reply.status, reply.error_type, reply.error_message, **reply.headers
            )
        reply = callable_only(body, reply)
        if reply.usage is None:
            reply = dataclasses.replace(reply, usage=self._cached_usage(body, reply))
        with self._lock:
            self.usages.append(reply.usage)
        if not body.get("stream"):
            return web.Response(
                body=orjson.dumps(_message(body, reply)),
                content_type="application/json",
                headers={"request-id": "req_emulator", **reply.headers},
            )
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                "request-id": "req_emulator",
                **reply.headers,
            }
        )
        await response.prepare(request)
        for number, (name, data) in enumerate(stream_events(body, reply)):
            if number and reply.stream_event_delay_ms:
                await asyncio.sleep(reply.stream_event_delay_ms / 1000)
            await response.write(f"event: {name}\ndata: ".encode() + orjson.dumps(data) + b"\n\n")
        await response.write_eof()
        return response

    def _cached_usage(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        counted = self.prompt_cache.count(scope=body["model"], blocks=prompt_blocks(body))
        return {
            "input_tokens": counted.input_tokens,
            "cache_creation_input_tokens": counted.written,
            "cache_read_input_tokens": counted.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": counted.written_5m,
                "ephemeral_1h_input_tokens": counted.written_1h,
            },
            "output_tokens": sum(block_tokens(b.get("text", b)) for b in reply.content),
            "service_tier": "standard",
        }


# A batch request whose last user turn says this is answered `errored` (a request that failed).
BATCH_FAIL_TEXT = "emulate error"
_CUSTOM_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")


def _stamp(moment: float | None) -> str | None:
    if moment is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + ".000000Z"


class MessageBatches:
    """The Message Batches API (`/v1/messages/batches`): create, retrieve, cancel, results.

    A batch is `in_progress` until it was retrieved `polls_to_end` times (each retrieval is one
    step of work), then `ended`; with `hold` it stays `in_progress` until cancelled. A cancelled
    batch is `canceling` until the next retrieval, then `ended` with its requests `canceled`.
    Requests are checked as the Messages API checks them, and a bad one is `errored` in the
    results, as the API reports it (not refused at creation)."""

    def __init__(self, emulator: AnthropicEmulator) -> None:
        self.emulator = emulator
        self.items: dict[str, dict[str, Any]] = {}
        self.hold = False
        self.polls_to_end = 1

    def clear(self) -> None:
        self.items.clear()
        self.hold = False
        self.polls_to_end = 1

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages/batches", self._create)
        app.router.add_get("/v1/messages/batches/{batch_id}", self._retrieve)
        app.router.add_post("/v1/messages/batches/{batch_id}/cancel", self._cancel)
        app.router.add_get("/v1/messages/batches/{batch_id}/results", self._results)

    def _object(self, item: dict[str, Any], base: str) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for result in item["results"]:
            if item["status"] != "ended":
                counts["processing"] += 1
            else:
                counts[result["type"]] += 1
        ended = item["status"] == "ended"
        return {
            "id": item["id"],
            "type": "message_batch",
            "processing_status": item["status"],
            "request_counts": counts,
            "ended_at": _stamp(item["ended_at"]),
            "created_at": _stamp(item["created_at"]),
            "expires_at": _stamp(item["created_at"] + 24 * 3600),
            "archived_at": None,
            "cancel_initiated_at": _stamp(item["cancel_initiated_at"]),
            "results_url": f"{base}/v1/messages/batches/{item['id']}/results" if ended else None,
        }

    def _result(self, params: Any) -> dict[str, Any]:
        try:
            validate_messages_request(params)
            if params.get("stream"):
                raise InvalidRequest("params.stream: streaming is not supported in batches")
        except InvalidRequest as exc:
            error = {"type": "invalid_request_error", "message": str(exc)}
            return {"type": "errored", "error": {"type": "error", "error": error}}
        if _default_reply(params).content[0]["text"] == f"Echo: {BATCH_FAIL_TEXT}":
            error = {"type": "invalid_request_error", "message": "The emulator refused it."}
            return {"type": "errored", "error": {"type": "error", "error": error}}
        return {"type": "succeeded", "message": _message(params, _default_reply(params))}

    async def _create(self, request: web.Request) -> web.Response:
        body, refused = await self.emulator._receive(request)
        if refused is not None:
            return refused
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            return _error_response(400, "invalid_request_error", "requests: Field required")
        seen: set[str] = set()
        results = []
        for index, entry in enumerate(requests):
            custom_id = entry.get("custom_id") if isinstance(entry, dict) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
                return _error_response(
                    400,
                    "invalid_request_error",
                    f"requests.{index}.custom_id: String should match pattern "
                    "'^[a-zA-Z0-9_-]{1,64}$'",
                )
            if custom_id in seen:
                return _error_response(
                    400, "invalid_request_error", f"Duplicate custom_id: {custom_id}"
                )
            seen.add(custom_id)
            if not isinstance(entry.get("params"), dict):
                return _error_response(
                    400, "invalid_request_error", f"requests.{index}.params: Field required"
                )
            results.append({"custom_id": custom_id, **self._result(entry["params"])})
        batch_id = f"msgbatch_{len(self.items) + 1:04d}emulator"
        self.items[batch_id] = {
            "id": batch_id,
            "status": "in_progress",
            "results": results,
            "created_at": time.time(),
            "ended_at": None,
            "cancel_initiated_at": None,
            "polls": 0,
        }
        return web.json_response(self._object(self.items[batch_id], self.emulator.url))

    def _get(self, request: web.Request) -> dict[str, Any] | None:
        return self.items.get(request.match_info["batch_id"])

    async def _retrieve(self, request: web.Request) -> web.Response:
        _, refused = await self.emulator._receive(request)
        if refused is not None:
            return refused
        item = self._get(request)
        if item is None:
            return _error_response(404, "not_found_error", "Message batch not found")
        item["polls"] += 1
        if item["status"] == "canceling":
            item["results"] = [
                {"custom_id": result["custom_id"], "type": "canceled"} for result in item["results"]
            ]
            item["status"], item["ended_at"] = "ended", time.time()
        elif item["status"] == "in_progress" and not self.hold:
            if item["polls"] >= self.polls_to_end:
                item["status"], item["ended_at"] = "ended", time.time()
        return web.json_response(self._object(item, self.emulator.url))

    async def _cancel(self, request: web.Request) -> web.Response:
        _, refused = await self.emulator._receive(request)
        if refused is not None:
            return refused
        item = self._get(request)
        if item is None:
            return _error_response(404, "not_found_error", "Message batch not found")
        if item["status"] == "in_progress":
            item["status"], item["cancel_initiated_at"] = "canceling", time.time()
        return web.json_response(self._object(item, self.emulator.url))

    async def _results(self, request: web.Request) -> web.Response:
        _, refused = await self.emulator._receive(request)
        if refused is not None:
            return refused
        item = self._get(request)
        if item is None:
            return _error_response(404, "not_found_error", "Message batch not found")
        if item["status"] != "ended":
            return _error_response(
                400, "invalid_request_error", "Batch is still processing; no results yet."
            )
        lines = []
        for result in item["results"]:
            kind = result["type"]
            payload = {key: value for key, value in result.items() if key not in ("custom_id",)}
            if kind in ("canceled", "expired"):
                payload = {"type": kind}
            lines.append(orjson.dumps({"custom_id": result["custom_id"], "result": payload}))
        return web.Response(body=b"\n".join(lines) + b"\n", content_type="application/binary")


_emulator: AnthropicEmulator | None = None


def anthropic_emulator_get() -> AnthropicEmulator:
    """The process's emulator, started on first use; call `reset()` between tests."""
    global _emulator
    if _emulator is None:
        _emulator = AnthropicEmulator().start()
    return _emulator
