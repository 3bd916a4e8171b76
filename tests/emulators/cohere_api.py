"""A local emulator of Cohere's v2 API on a real socket, written from its reference.

It serves `POST /v2/chat` (JSON, or SSE with `event: <type>` / `data: <json>` frames when
`stream` is true), `POST /v2/embed` and `POST /v2/rerank`, checks the bearer key, validates
bodies the way the real API does (unknown fields refused, roles, tool messages answering the
previous assistant turn's tool calls, ranges, required `input_type` and `embedding_types`) and
answers errors as `{"message": ...}`. Tests script chat replies and read `requests`.

Reasoning: `thinking` (`type` enabled/disabled, a positive `token_budget`) is accepted only by
reasoning models (`command-a-reasoning-*`), which think unless it is disabled: a scripted
`thinking` text is then sent as a `thinking` content block (and streamed as its deltas) before
the text. A reply's `usage` is sent as scripted, `cached_tokens` included (the count of prompt
tokens that hit Cohere's automatic inference cache).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.live import free_port

API_KEY = "co-emulator-key"
CHAT_FIELDS = {
    "model",
    "messages",
    "tools",
    "strict_tools",
    "documents",
    "citation_options",
    "response_format",
    "safety_mode",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "k",
    "p",
    "logprobs",
    "tool_choice",
    "thinking",
    "stream",
}
EMBED_FIELDS = {
    "model",
    "texts",
    "images",
    "inputs",
    "input_type",
    "embedding_types",
    "output_dimension",
    "truncate",
    "max_tokens",
}
RERANK_FIELDS = {"model", "query", "documents", "top_n", "max_tokens_per_doc"}
INPUT_TYPES = {"search_document", "search_query", "classification", "clustering", "image"}


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    tool_plan: str = ""
    # A reasoning model's thinking, sent when the model reasons (thinking on, the default).
    thinking: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "COMPLETE"
    usage: dict[str, Any] = field(
        default_factory=lambda: {
            "billed_units": {"input_tokens": 10, "output_tokens": 5},
            "tokens": {"input_tokens": 60, "output_tokens": 5},
        }
    )
    status: int = 200
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    stream_cut_after: int | None = None
    id: str = "c14c80c3-18eb-4519-9460-6c92edd8cfb4"


def reply_error(status: int, message: str, **kwargs: Any) -> Reply:
    return Reply(status=status, message=message, **kwargs)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class Invalid(Exception):
    pass


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"id": "err-emulator", "message": message}),
        content_type="application/json",
        headers=headers,
    )


def _unknown_field(names: set[str]) -> web.Response:
    name = sorted(names)[0]
    return _error(400, f"invalid request: unknown field: parameter {name} is not a valid field")


def validate_chat(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("invalid request: body must be a JSON object")
    for name in body:
        if name not in CHAT_FIELDS:
            raise Invalid(f"invalid request: unknown field: parameter {name} is not a valid field")
    if not body.get("model"):
        raise Invalid("invalid request: model must be specified")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise Invalid("invalid request: messages must not be empty")
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in ("system", "user", "assistant", "tool"):
            raise Invalid(
                f"invalid request: messages[{i}].role must be system, user, assistant or tool"
            )
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                raise Invalid(
                    f"invalid request: messages[{i}].tool_call_id does not match a tool call"
                )
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            raise Invalid(f"invalid request: tool calls {sorted(pending)} have no tool results")
        if role == "assistant":
            calls = message.get("tool_calls") or []
            if not calls and not message.get("content"):
                raise Invalid(f"invalid request: messages[{i}] needs content or tool_calls")
            for call in calls:
                try:
                    orjson.loads(call["function"]["arguments"])
                except (KeyError, TypeError, orjson.JSONDecodeError) as exc:
                    raise Invalid(
                        f"invalid request: messages[{i}].tool_calls arguments must be JSON"
                    ) from exc
            pending = {c["id"] for c in calls}
            continue
        content = message.get("content")
        if isinstance(content, list):
            for part in content:
                if part.get("type") not in ("text", "image_url", "document"):
                    raise Invalid(f"invalid request: messages[{i}] has an invalid content type")
                if part["type"] == "image_url" and not str(
                    (part.get("image_url") or {}).get("url", "")
                ).startswith(("data:", "http")):
                    raise Invalid(f"invalid request: messages[{i}] has an invalid image url")
        elif not isinstance(content, str) or not content:
            raise Invalid(f"invalid request: messages[{i}].content must not be empty")
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        raise Invalid("invalid request: temperature must be between 0 and 1")
    p = body.get("p")
    if p is not None and not 0.01 <= p <= 0.99:
        raise Invalid("invalid request: p must be between 0.01 and 0.99")
    stops = body.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or len(stops) > 5):
        raise Invalid("invalid request: stop_sequences can have at most 5 items")
    if body.get("tool_choice") not in (None, "REQUIRED", "NONE"):
        raise Invalid("invalid request: tool_choice must be REQUIRED or NONE")
    if body.get("tool_choice") and not body.get("tools"):
        raise Invalid("invalid request: tool_choice requires tools")
    for tool in body.get("tools") or []:
        if tool.get("type") != "function" or not (tool.get("function") or {}).get("name"):
            raise Invalid("invalid request: tools must be functions with a name")
    thinking = body.get("thinking")
    if thinking is not None:
        if "reasoning" not in str(body["model"]):
            raise Invalid(f"invalid request: thinking is not supported by model {body['model']}")
        if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
            raise Invalid("invalid request: thinking.type must be enabled or disabled")
        budget = thinking.get("token_budget")
        if budget is not None and (not isinstance(budget, int) or budget < 1):
            raise Invalid("invalid request: thinking.token_budget must be a positive integer")
    response_format = body.get("response_format")
    if response_format is not None and response_format.get("type") not in ("text", "json_object"):
        raise Invalid("invalid request: response_format.type must be text or json_object")
    for document in body.get("documents") or []:
        if not isinstance(document, str) and not isinstance(
            (document or {}).get("data"), (dict, str)
        ):
            raise Invalid("invalid request: documents must be strings or objects with data")


def reasons(body: dict[str, Any]) -> bool:
    """Reasoning models think unless the request disables it; the others never do."""
    thinking = body.get("thinking") or {}
    return "reasoning" in str(body.get("model")) and thinking.get("type") != "disabled"


def _message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant"}
    content = [{"type": "thinking", "thinking": reply.thinking}] if reply.thinking else []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    if content:
        message["content"] = content
    if reply.tool_plan:
        message["tool_plan"] = reply.tool_plan
    if reply.tool_calls:
        message["tool_calls"] = reply.tool_calls
    if reply.citations:
        message["citations"] = reply.citations
    return message


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream_events(reply: Reply) -> list[dict[str, Any]]:
    """The SSE events of a reply, in the order and shape the real API sends them."""
    start = {
        "message": {
            "role": "assistant",
            "content": [],
            "tool_plan": "",
            "tool_calls": [],
            "citations": [],
        }
    }
    events: list[dict[str, Any]] = [{"type": "message-start", "id": reply.id, "delta": start}]
    for piece in _pieces(reply.tool_plan, 6):
        events.append({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": piece}}})
    for index, call in enumerate(reply.tool_calls):
        opening = {
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        events.append(
            {
                "type": "tool-call-start",
                "index": index,
                "delta": {"message": {"tool_calls": opening}},
            }
        )
        for piece in _pieces(call["function"]["arguments"], 7):
            delta = {"message": {"tool_calls": {"function": {"arguments": piece}}}}
            events.append({"type": "tool-call-delta", "index": index, "delta": delta})
        events.append({"type": "tool-call-end", "index": index})
    parts = [("thinking", reply.thinking)] if reply.thinking else []
    parts += [("text", reply.text)] if reply.text else []
    for index, (kind, text) in enumerate(parts):
        events.append(
            {
                "type": "content-start",
                "index": index,
                "delta": {"message": {"content": {"type": kind, kind: ""}}},
            }
        )
        for piece in _pieces(text, 5):
            events.append(
                {
                    "type": "content-delta",
                    "index": index,
                    "delta": {"message": {"content": {kind: piece}}},
                }
            )
        events.append({"type": "content-end", "index": index})
    for index, citation in enumerate(reply.citations):
        events.append(
            {
                "type": "citation-start",
                "index": index,
                "delta": {"message": {"citations": citation}},
            }
        )
        events.append({"type": "citation-end", "index": index})
    events.append(
        {
            "type": "message-end",
            "delta": {"finish_reason": reply.finish_reason, "usage": reply.usage},
        }
    )
    if reply.stream_cut_after is not None:
        return events[: reply.stream_cut_after]
    return events


def _vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % 32] - 128) / 128, 6) for i in range(dimensions)]


class CohereEmulator:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cohere-emulator", daemon=True)

    def start(self) -> CohereEmulator:
        self._thread.start()
        if not self._started.wait(timeout=10):
            raise RuntimeError("the Cohere emulator did not start")
        return self

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def bodies(self, path: str = "/v2/chat") -> list[Any]:
        return [r.body for r in self.requests if r.path == path]

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        app = web.Application(client_max_size=40 * 1024 * 1024)
        app.router.add_post("/v2/chat", self._chat)
        app.router.add_post("/v2/embed", self._embed)
        app.router.add_post("/v2/rerank", self._rerank)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._started.set()
        loop.run_forever()

    async def _receive(self, request: web.Request) -> tuple[Any, web.Response | None]:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", errors="replace")
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self.requests.append(Received(path=request.path, headers=headers, body=body))
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return body, _error(401, "invalid api token")
        if not isinstance(body, dict):
            return body, _error(400, "invalid request: body must be a JSON object")
        return body, None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, refused = await self._receive(request)
        if refused is not None:
            return refused
        try:
            validate_chat(body)
        except Invalid as exc:
            return _error(400, str(exc))
        with self._lock:
            reply = self._script.popleft() if self._script else None
        if reply is None:
            last = body["messages"][-1].get("content")
            reply = Reply(text=f"Echo: {last}" if isinstance(last, str) else "Echo")
        if reply.status != 200:
            return _error(reply.status, reply.message, **reply.headers)
        if not reasons(body):
            reply = dataclasses.replace(reply, thinking="")
        if not body.get("stream"):
            answer = {
                "id": reply.id,
                "finish_reason": reply.finish_reason,
                "message": _message(reply),
                "usage": reply.usage,
            }
            return web.Response(body=orjson.dumps(answer), content_type="application/json")
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for event in stream_events(reply):
            await response.write(
                f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n"
            )
        await response.write_eof()
        return response

    async def _embed(self, request: web.Request) -> web.Response:
        body, refused = await self._receive(request)
        if refused is not None:
            return refused
        extra = set(body) - EMBED_FIELDS
        if extra:
            return _unknown_field(extra)
        if body.get("input_type") not in INPUT_TYPES:
            return _error(400, "invalid request: input_type is required for embed v3 models")
        types = body.get("embedding_types")
        if (
            not isinstance(types, list)
            or not types
            or set(types) - {"float", "int8", "uint8", "binary", "ubinary", "base64"}
        ):
            return _error(400, "invalid request: embedding_types is required")
        texts = body.get("texts")
        if not isinstance(texts, list) or not texts or len(texts) > 96:
            return _error(400, "invalid request: texts must hold 1 to 96 strings")
        dimension = body.get("output_dimension", 1024)
        if dimension not in (256, 512, 1024, 1536):
            return _error(400, "invalid request: output_dimension must be 256, 512, 1024 or 1536")
        tokens = sum(len(t.split()) for t in texts)
        return web.json_response(
            {
                "id": "emb-emulator",
                "embeddings": {"float": [_vector(t, dimension) for t in texts]},
                "texts": texts,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"input_tokens": tokens}},
                "response_type": "embeddings_by_type",
            }
        )

    async def _rerank(self, request: web.Request) -> web.Response:
        body, refused = await self._receive(request)
        if refused is not None:
            return refused
        extra = set(body) - RERANK_FIELDS
        if extra:
            return _unknown_field(extra)
        documents = body.get("documents")
        if not isinstance(body.get("query"), str) or not body["query"]:
            return _error(400, "invalid request: query must not be empty")
        if (
            not isinstance(documents, list)
            or not documents
            or not all(isinstance(d, str) for d in documents)
        ):
            return _error(400, "invalid request: documents must be a non-empty list of strings")
        words = set(body["query"].lower().split())
        scored = [
            {
                "index": i,
                "relevance_score": round(
                    len(words & set(d.lower().split())) / len(words) + 0.001 * (len(documents) - i),
                    6,
                ),
            }
            for i, d in enumerate(documents)
        ]
        scored.sort(key=lambda r: -r["relevance_score"])
        if body.get("top_n") is not None:
            scored = scored[: body["top_n"]]
        return web.json_response(
            {
                "id": "rerank-emulator",
                "results": scored,
                "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
            }
        )


_emulator: CohereEmulator | None = None


def cohere_emulator_get() -> CohereEmulator:
    global _emulator
    if _emulator is None:
        _emulator = CohereEmulator().start()
    return _emulator
