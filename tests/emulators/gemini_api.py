"""A local emulator of the Gemini API (Google AI Studio) on a real socket, from its reference.

It serves `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse`,
`:embedContent` and `:batchEmbedContents`, checks the `x-goog-api-key` header (or `?key=`),
validates requests the way the real API does (known fields only, `user`/`model` roles, one data
field per part, function responses answering the previous turn's calls by name and count, tool
schemas in Gemini's subset, generation config ranges, safety setting enums), answers errors in
Google's shape (`{"error": {"code", "message", "status", "details"}}`) and replies in its JSON or
its SSE framing (`data: <GenerateContentResponse>\\r\\n\\r\\n`). The request checks and reply
builders are shared with the Vertex AI emulator. Tests script replies and read `requests`.

Context caching: `POST /v1beta/cachedContents` creates a cached content resource (`model`,
`contents`, `systemInstruction`, `tools`, `toolConfig`, `ttl`; 1,024 tokens at least) and answers
its `name`; a GenerateContentRequest naming it in `cachedContent` must use the same model and set
no `systemInstruction`, `tools` or `toolConfig` of its own. A reply scripted with `usage=None`
(`reply_cached`) reports the usage the emulator counts (tests/emulators/prompt_cache.py's rule):
`promptTokenCount` includes the cached content's tokens, also given as
`cachedContentTokenCount`; `usages` lists every usage reported.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.prompt_cache import block_tokens
from tests.live import free_port

API_KEY = "AIzaSy-emulator-key"
NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.\-]{0,63}$")
REQUEST_FIELDS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "safetySettings",
    "generationConfig",
    "cachedContent",
}
GENERATION_FIELDS = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
}
PART_DATA_FIELDS = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
}
PART_FIELDS = PART_DATA_FIELDS | {"thought", "thoughtSignature", "videoMetadata"}
SCHEMA_FIELDS = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
}
SCHEMA_TYPES = {"string", "number", "integer", "boolean", "array", "object"}
HARM_CATEGORIES = {
    "HARM_CATEGORY_HARASSMENT",
    "HARM_CATEGORY_HATE_SPEECH",
    "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    "HARM_CATEGORY_DANGEROUS_CONTENT",
    "HARM_CATEGORY_CIVIC_INTEGRITY",
}
HARM_THRESHOLDS = {
    "HARM_BLOCK_THRESHOLD_UNSPECIFIED",
    "BLOCK_LOW_AND_ABOVE",
    "BLOCK_MEDIUM_AND_ABOVE",
    "BLOCK_ONLY_HIGH",
    "BLOCK_NONE",
    "OFF",
}
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass
class Reply:
    """One scripted answer: the candidate's parts, finish reason and usage, or an error."""

    parts: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "STOP"
    # None: counted by the emulator, cached content included.
    usage: dict[str, Any] | None = field(
        default_factory=lambda: {
            "promptTokenCount": 10,
            "candidatesTokenCount": 6,
            "totalTokenCount": 16,
        }
    )
    status: int = 200
    error_message: str = ""
    retry_delay: str | None = None  # a RetryInfo detail, e.g. "17s"
    headers: dict[str, str] = field(default_factory=dict)
    # Streaming only: send an {"error": ...} event after this many events.
    stream_error_after: int | None = None
    # Streaming only: end the body after this many events, before the finish reason.
    stream_cut_after: int | None = None
    response_id: str = "resp-emulator-1"
    prompt_block_reason: str | None = None


def callable_only(body: dict[str, Any], reply: Reply) -> Reply:
    """The model calls only a declared function, none in mode NONE, and in mode ANY only the
    `allowedFunctionNames`: a scripted call it could not make becomes text."""
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    names = {
        d.get("name")
        for tool in body.get("tools") or []
        for d in tool.get("functionDeclarations") or []
    }
    if config.get("mode") == "NONE":
        names = set()
    elif config.get("allowedFunctionNames"):
        names &= set(config["allowedFunctionNames"])
    parts = [
        {"text": f"(I may not call {p['functionCall'].get('name')}.)"}
        if "functionCall" in p and p["functionCall"].get("name") not in names
        else p
        for p in reply.parts
    ]
    return dataclasses.replace(reply, parts=parts)


def reply_text(text: str, **kwargs: Any) -> Reply:
    return Reply(parts=[{"text": text}], **kwargs)


def reply_cached(text: str, **kwargs: Any) -> Reply:
    """A text reply whose usage the emulator counts, cached content included."""
    return Reply(parts=[{"text": text}], usage=None, **kwargs)


def reply_error(status: int, message: str, **kwargs: Any) -> Reply:
    return Reply(status=status, error_message=message, **kwargs)


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class InvalidRequest(Exception):
    pass


class CachedContentMissing(Exception):
    pass


def error_response(
    status: int, message: str, *, retry_delay: str | None = None, **headers: str
) -> web.Response:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "status": STATUS_NAMES.get(status, "UNKNOWN"),
    }
    if retry_delay:
        error["details"] = [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        ]
    return web.Response(
        status=status,
        body=orjson.dumps({"error": error}),
        content_type="application/json",
        headers=headers,
    )


def _unknown(name: str, where: str) -> InvalidRequest:
    at = f" at '{where}'" if where else ""
    return InvalidRequest(
        f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
    )


def validate_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{where}: must be an object")
    for name in schema:
        if name not in SCHEMA_FIELDS:
            raise _unknown(name, where)
    kind = schema.get("type")
    if kind is not None and str(kind).lower() not in SCHEMA_TYPES:
        raise InvalidRequest(f"{where}.type: invalid value {kind!r}")
    if str(kind).lower() == "object" and "properties" in schema and not schema["properties"]:
        raise InvalidRequest(f"{where}.properties: should be non-empty for OBJECT type")
    if "enum" in schema and not all(isinstance(v, str) for v in schema["enum"]):
        raise InvalidRequest(f"{where}.enum: only string enums are supported")
    for name, sub in (schema.get("properties") or {}).items():
        validate_schema(sub, f"{where}.properties[{name}]")
    if "items" in schema:
        validate_schema(schema["items"], f"{where}.items")
    for i, sub in enumerate(schema.get("anyOf") or []):
        validate_schema(sub, f"{where}.any_of[{i}]")
    for name in schema.get("required") or []:
        if name not in (schema.get("properties") or {}):
            raise InvalidRequest(f"{where}.required[{name}]: property is not defined")


def _check_part(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        raise InvalidRequest(f"{where}: must be an object")
    for name in part:
        if name not in PART_FIELDS:
            raise _unknown(name, where)
    data = [name for name in part if name in PART_DATA_FIELDS]
    if len(data) != 1:
        raise InvalidRequest(
            f"{where}: a part must set exactly one of text, inline_data, file_data, "
            "function_call, function_response"
        )
    if "inlineData" in part:
        inline = part["inlineData"] or {}
        if not inline.get("mimeType") or not inline.get("data"):
            raise InvalidRequest(f"{where}.inline_data: mime_type and data are required")
        try:
            base64.b64decode(inline["data"], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidRequest(f"{where}.inline_data.data: invalid base64") from exc
    if "fileData" in part:
        file = part["fileData"] or {}
        if not file.get("fileUri"):
            raise InvalidRequest(f"{where}.file_data.file_uri: required")
    if "functionCall" in part:
        call = part["functionCall"] or {}
        if not call.get("name") or not isinstance(call.get("args", {}), dict):
            raise InvalidRequest(f"{where}.function_call: name and an args object are required")
    if "functionResponse" in part:
        response = part["functionResponse"] or {}
        if not response.get("name") or not isinstance(response.get("response"), dict):
            raise InvalidRequest(
                f"{where}.function_response: name and a response object are required"
            )


def validate_generate_request(body: Any, *, extra_fields: frozenset[str] = frozenset()) -> None:
    """Raise InvalidRequest with the real API's kind of message when the body is invalid."""
    if not isinstance(body, dict):
        raise InvalidRequest("Invalid JSON payload received.")
    for name in body:
        if name not in REQUEST_FIELDS | extra_fields:
            raise _unknown(name, "")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified")
    pending_calls: list[str] = []
    for i, content in enumerate(contents):
        role = content.get("role") if isinstance(content, dict) else None
        if role not in ("user", "model"):
            raise InvalidRequest(
                f"Please use a valid role: user, model. (contents[{i}].role {role!r})"
            )
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise InvalidRequest(f"* GenerateContentRequest.contents[{i}].parts: must not be empty")
        for j, part in enumerate(parts):
            _check_part(part, f"contents[{i}].parts[{j}]")
        responses = [p["functionResponse"]["name"] for p in parts if "functionResponse" in p]
        if pending_calls:
            if sorted(responses) != sorted(pending_calls):
                raise InvalidRequest(
                    "Please ensure that the number of function response parts is equal to the "
                    "number of function call parts of the function call turn."
                )
        elif responses:
            raise InvalidRequest(
                "Please ensure that function response turn comes immediately after a function "
                "call turn."
            )
        pending_calls = (
            [p["functionCall"]["name"] for p in parts if "functionCall" in p]
            if role == "model"
            else []
        )
    system = body.get("systemInstruction")
    if system is not None:
        parts = system.get("parts") if isinstance(system, dict) else None
        if not isinstance(parts, list) or not parts or any("text" not in p for p in parts):
            raise InvalidRequest("system_instruction: only text parts are supported")
        if set(system) - {"parts", "role"}:
            raise _unknown(sorted(set(system) - {"parts", "role"})[0], "system_instruction")
    names: set[str] = set()
    for i, tool in enumerate(body.get("tools") or []):
        for name in tool:
            if name not in {"functionDeclarations", "googleSearch", "codeExecution"}:
                raise _unknown(name, f"tools[{i}]")
        for j, declaration in enumerate(tool.get("functionDeclarations") or []):
            where = f"tools[{i}].function_declarations[{j}]"
            for name in declaration:
                if name not in {"name", "description", "parameters", "response"}:
                    raise _unknown(name, where)
            if not NAME_RE.match(str(declaration.get("name", ""))):
                raise InvalidRequest(f"* {where}.name: Invalid function name.")
            if "parameters" in declaration:
                validate_schema(declaration["parameters"], f"{where}.parameters")
            names.add(declaration["name"])
    config = (body.get("toolConfig") or {}).get("functionCallingConfig")
    if config is not None:
        if config.get("mode") not in ("AUTO", "ANY", "NONE", "VALIDATED"):
            raise InvalidRequest("tool_config.function_calling_config.mode: invalid value")
        for name in config.get("allowedFunctionNames") or []:
            if name not in names:
                raise InvalidRequest(f"allowed_function_names: {name!r} is not a declared function")
    for i, setting in enumerate(body.get("safetySettings") or []):
        if setting.get("category") not in HARM_CATEGORIES:
            raise InvalidRequest(f"safety_settings[{i}].category: invalid value")
        if setting.get("threshold") not in HARM_THRESHOLDS:
            raise InvalidRequest(f"safety_settings[{i}].threshold: invalid value")
    generation = body.get("generationConfig") or {}
    for name in generation:
        if name not in GENERATION_FIELDS:
            raise _unknown(name, "generation_config")
    stops = generation.get("stopSequences")
    if stops is not None and (not isinstance(stops, list) or len(stops) > 5):
        raise InvalidRequest("generation_config.stop_sequences: at most 5 stop sequences")
    temperature = generation.get("temperature")
    if temperature is not None and not 0 <= temperature <= 2:
        raise InvalidRequest("generation_config.temperature: must be in [0.0, 2.0]")
    if "responseSchema" in generation:
        if generation.get("responseMimeType") != "application/json":
            raise InvalidRequest(
                "generation_config.response_schema: response_mime_type must be application/json"
            )
        validate_schema(generation["responseSchema"], "generation_config.response_schema")


def default_reply(body: dict[str, Any]) -> Reply:
    parts = body["contents"][-1]["parts"]
    return reply_text("Echo: " + " ".join(p["text"] for p in parts if "text" in p))


def candidate(reply: Reply, parts: list[dict[str, Any]], *, finished: bool) -> dict[str, Any]:
    value: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finished:
        value["finishReason"] = reply.finish_reason
        value["safetyRatings"] = [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}
        ]
    return value


def response_body(reply: Reply, *, model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "usageMetadata": reply.usage,
        "modelVersion": model,
        "responseId": reply.response_id,
    }
    if reply.prompt_block_reason:
        body["promptFeedback"] = {"blockReason": reply.prompt_block_reason}
    else:
        body["candidates"] = [candidate(reply, reply.parts, finished=True)]
    return body


def stream_events(reply: Reply, *, model: str) -> list[dict[str, Any]]:
    """The SSE events of a reply: text in 6-character pieces, other parts whole; usage in every
    event (only the prompt count until the last); the finish reason in the last."""
    pieces: list[dict[str, Any]] = []
    for part in reply.parts:
        text = part.get("text")
        if isinstance(text, str) and len(text) > 6:
            pieces += [{**part, "text": text[i : i + 6]} for i in range(0, len(text), 6)]
        else:
            pieces.append(part)
    assert reply.usage is not None
    prompt_only = {"promptTokenCount": reply.usage.get("promptTokenCount", 0)}
    events: list[dict[str, Any]] = []
    if reply.prompt_block_reason:
        events.append(response_body(reply, model=model))
    for position, piece in enumerate(pieces):
        last = position == len(pieces) - 1
        events.append(
            {
                "candidates": [candidate(reply, [piece], finished=last)],
                "usageMetadata": reply.usage if last else prompt_only,
                "modelVersion": model,
                "responseId": reply.response_id,
            }
        )
    if reply.stream_cut_after is not None:
        return events[: reply.stream_cut_after]
    if reply.stream_error_after is not None:
        events = events[: reply.stream_error_after]
        status = reply.status if reply.status != 200 else 503
        events.append(
            {
                "error": {
                    "code": status,
                    "message": reply.error_message or "The model is overloaded.",
                    "status": STATUS_NAMES.get(status, "UNKNOWN"),
                }
            }
        )
    return events


def embedding_values(text: str, dimensions: int = 8) -> list[float]:
    """A deterministic vector for a text (tests compare exact values)."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255, 4) for b in digest[:dimensions]]


async def sse_write(
    request: web.Request, events: list[dict[str, Any]], **headers: str
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **headers}
    )
    await response.prepare(request)
    for event in events:
        await response.write(b"data: " + orjson.dumps(event) + b"\r\n\r\n")
    await response.write_eof()
    return response


class EmulatorBase:
    """The socket, thread, script and request log shared by the Google emulators."""

    thread_name = "google-emulator"

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.cached_contents: dict[str, dict[str, Any]] = {}  # name -> resource, with its tokens
        self.usages: list[dict[str, Any]] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)

    def start(self) -> Any:
        self._thread.start()
        if not self._started.wait(timeout=10):
            raise RuntimeError(f"the {self.thread_name} did not start")
        return self

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.cached_contents.clear()
            self.usages.clear()

    def cached_content_check(self, body: dict[str, Any], *, model: str) -> int:
        """The tokens of the cached content the request names (0 without one); raises
        InvalidRequest (status 400) or CachedContentMissing when the API would refuse it."""
        name = body.get("cachedContent")
        if name is None:
            return 0
        with self._lock:
            cached = self.cached_contents.get(str(name))
        if cached is None or cached["expires"] < time.monotonic():
            raise CachedContentMissing("CachedContent not found (or permission denied)")
        if cached["model"] != f"models/{model}":
            raise InvalidRequest(
                f"Model used by GenerateContent request (models/{model}) and CachedContent "
                f"({cached['model']}) has to be the same."
            )
        if any(body.get(name) for name in ("systemInstruction", "tools", "toolConfig")):
            raise InvalidRequest(
                "CachedContent can not be used with GenerateContent request setting "
                "system_instruction, tools or tool_config.\n\nProposed fix: move those values "
                "to CachedContent from GenerateContent request."
            )
        return int(cached["tokens"])

    def counted_usage(self, body: dict[str, Any], reply: Reply, *, cached: int) -> dict[str, Any]:
        fresh = sum(block_tokens(part) for c in body["contents"] for part in c["parts"])
        fresh += block_tokens(body["systemInstruction"]) if body.get("systemInstruction") else 0
        fresh += sum(block_tokens(tool) for tool in body.get("tools") or [])
        output = sum(block_tokens(part.get("text", part)) for part in reply.parts)
        usage = {
            "promptTokenCount": fresh + cached,
            "candidatesTokenCount": output,
            "totalTokenCount": fresh + cached + output,
        }
        if cached:
            usage["cachedContentTokenCount"] = cached
        return usage

    def next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            reply = self._script.popleft() if self._script else default_reply(body)
        return callable_only(body, reply)

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=40 * 1024 * 1024)
        self.routes(app)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()

    async def receive(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", errors="replace")
        with self._lock:
            self.requests.append(
                Received(
                    path=request.path,
                    query=dict(request.query),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    body=body,
                )
            )
        return body

    async def generate(
        self, request: web.Request, body: Any, *, model: str, stream: bool, extra: frozenset[str]
    ) -> web.StreamResponse:
        """Validate a GenerateContentRequest and answer it (shared with Vertex AI)."""
        if stream and request.query.get("alt") != "sse":
            return error_response(400, "This emulator streams with alt=sse only.")
        try:
            validate_generate_request(body, extra_fields=extra)
            cached = self.cached_content_check(body, model=model)
        except InvalidRequest as exc:
            return error_response(400, str(exc))
        except CachedContentMissing as exc:
            return error_response(403, str(exc))
        reply = self.next_reply(body)
        if reply.status != 200 and reply.stream_error_after is None:
            return error_response(
                reply.status, reply.error_message, retry_delay=reply.retry_delay, **reply.headers
            )
        if reply.usage is None:
            reply = dataclasses.replace(reply, usage=self.counted_usage(body, reply, cached=cached))
        with self._lock:
            self.usages.append(reply.usage)
        if not stream:
            return web.json_response(response_body(reply, model=model), headers=reply.headers)
        return await sse_write(request, stream_events(reply, model=model), **reply.headers)

    async def embed(self, body: Any, *, model: str, batch: bool) -> web.Response:
        requests = body.get("requests") if batch and isinstance(body, dict) else [body]
        if not isinstance(requests, list) or not requests:
            return error_response(400, "* BatchEmbedContentsRequest.requests: required")
        vectors = []
        for i, item in enumerate(requests):
            if not isinstance(item, dict):
                return error_response(400, f"requests[{i}]: must be an object")
            unknown = set(item) - {"model", "content", "taskType", "title", "outputDimensionality"}
            if unknown:
                return error_response(400, str(_unknown(sorted(unknown)[0], f"requests[{i}]")))
            if batch and item.get("model") != f"models/{model}":
                return error_response(
                    400,
                    f"* BatchEmbedContentsRequest.requests[{i}].model: the model must match the "
                    f"parent model (models/{model})",
                )
            parts = (item.get("content") or {}).get("parts") or []
            if not parts or any("text" not in p for p in parts):
                return error_response(400, f"requests[{i}].content: text parts are required")
            text = " ".join(p["text"] for p in parts)
            vectors.append(
                {"values": embedding_values(text, int(item.get("outputDimensionality") or 8))}
            )
        if batch:
            return web.json_response({"embeddings": vectors})
        return web.json_response({"embedding": vectors[0]})


class GeminiEmulator(EmulatorBase):
    thread_name = "gemini-emulator"

    def __init__(self) -> None:
        super().__init__()
        self.batches = GeminiBatches(self)

    def reset(self) -> None:
        super().reset()
        self.batches.clear()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/models/{target}", self._models)
        app.router.add_post("/{version}/cachedContents", self._cached_contents_create)
        app.router.add_get("/{version}/batches", self.batches.list)
        app.router.add_get("/{version}/batches/{batch}", self.batches.retrieve)
        app.router.add_post("/{version}/batches/{target}", self.batches.cancel)

    def key_refusal(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return error_response(
                403, "Method doesn't allow unregistered callers. Please use an API key."
            )
        if key != API_KEY:
            return error_response(400, "API key not valid. Please pass a valid API key.")
        return None

    async def _cached_contents_create(self, request: web.Request) -> web.Response:
        body = await self.receive(request)
        if request.headers.get("x-goog-api-key") != API_KEY:
            return error_response(400, "API key not valid. Please pass a valid API key.")
        if not isinstance(body, dict):
            return error_response(400, "Invalid JSON payload received.")
        allowed = {"model", "contents", "systemInstruction", "tools", "toolConfig", "ttl"}
        unknown = set(body) - allowed - {"displayName", "expireTime"}
        if unknown:
            return error_response(400, str(_unknown(sorted(unknown)[0], "")))
        model = body.get("model")
        if not isinstance(model, str) or not model.startswith("models/"):
            return error_response(400, "* CreateCachedContentRequest.model: model is required")
        ttl = str(body.get("ttl") or "3600s")
        if not re.fullmatch(r"\d+(\.\d+)?s", ttl):
            return error_response(400, f"Invalid value at 'cached_content.ttl' ({ttl})")
        tokens = sum(block_tokens(p) for c in body.get("contents") or [] for p in c["parts"])
        tokens += block_tokens(body["systemInstruction"]) if body.get("systemInstruction") else 0
        tokens += sum(block_tokens(tool) for tool in body.get("tools") or [])
        if tokens < 1024:
            return error_response(
                400,
                "Cached content is too small. total_token_count="
                f"{tokens}, min_total_token_count=1024",
            )
        name = f"cachedContents/emulator{len(self.cached_contents) + 1:04d}"
        expires = time.monotonic() + float(ttl[:-1])
        with self._lock:
            self.cached_contents[name] = {"model": model, "tokens": tokens, "expires": expires}
        return web.json_response(
            {
                "name": name,
                "model": model,
                "displayName": body.get("displayName", ""),
                "usageMetadata": {"totalTokenCount": tokens},
                "createTime": "2026-12-06T00:00:00Z",
                "updateTime": "2026-12-06T00:00:00Z",
                "expireTime": "2026-12-06T01:00:00Z",
            }
        )

    @property
    def bodies(self) -> list[Any]:
        return [r.body for r in self.requests]

    async def _models(self, request: web.Request) -> web.StreamResponse:
        body = await self.receive(request)
        if request.match_info["version"] not in ("v1beta", "v1"):
            return error_response(404, "Not found")
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return error_response(
                403, "Method doesn't allow unregistered callers. Please use an API key."
            )
        if key != API_KEY:
            return error_response(400, "API key not valid. Please pass a valid API key.")
        if isinstance(body, str) or body is None:
            return error_response(400, "Invalid JSON payload received.")
        model, _, method = request.match_info["target"].partition(":")
        if method == "generateContent":
            return await self.generate(request, body, model=model, stream=False, extra=frozenset())
        if method == "streamGenerateContent":
            return await self.generate(request, body, model=model, stream=True, extra=frozenset())
        if method in ("embedContent", "batchEmbedContents"):
            return await self.embed(body, model=model, batch=method == "batchEmbedContents")
        if method == "batchGenerateContent":
            return self.batches.create(body, model=model)
        return error_response(404, f"Method {method!r} not found for models/{model}")


# A batch request whose last user text says this is answered with an error (a failed request).
BATCH_FAIL_TEXT = "emulate error"
_BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
_OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"


class GeminiBatches:
    """Batch mode (`models/{model}:batchGenerateContent` with inlined requests; the batch is a
    long-running operation `batches/{id}`, read with GET and cancelled with `:cancel`).

    A batch is BATCH_STATE_PENDING when created, RUNNING at its first read, and SUCCEEDED (the
    operation `done`, with `response.inlinedResponses`, in input order) once it was read
    `polls_to_end` times, unless `hold`. A cancelled batch is BATCH_STATE_CANCELLED at once, its
    operation done with the responses of no request."""

    def __init__(self, emulator: GeminiEmulator) -> None:
        self.emulator = emulator
        self.items: dict[str, dict[str, Any]] = {}
        self.hold = False
        self.polls_to_end = 2

    def clear(self) -> None:
        self.items.clear()
        self.hold = False
        self.polls_to_end = 2

    def _answer(self, request: Any, *, model: str) -> dict[str, Any]:
        try:
            validate_generate_request(request)
        except InvalidRequest as exc:
            return {"error": {"code": 400, "message": str(exc), "status": "INVALID_ARGUMENT"}}
        reply = default_reply(request)
        if reply.parts[0]["text"] == f"Echo: {BATCH_FAIL_TEXT}":
            return {
                "error": {
                    "code": 400,
                    "message": "The emulator refused it.",
                    "status": "INVALID_ARGUMENT",
                }
            }
        reply = dataclasses.replace(
            reply, usage=self.emulator.counted_usage(request, reply, cached=0)
        )
        return {"response": response_body(reply, model=model)}

    def create(self, body: Any, *, model: str) -> web.Response:
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, dict):
            return error_response(400, "* BatchGenerateContentRequest.batch: batch is required")
        if not batch.get("displayName"):
            return error_response(400, "* GenerateContentBatch.display_name: required")
        inlined = ((batch.get("inputConfig") or {}).get("requests") or {}).get("requests")
        if not isinstance(inlined, list) or not inlined:
            return error_response(400, "* GenerateContentBatch.input_config: required")
        answers = []
        for index, item in enumerate(inlined):
            if not isinstance(item, dict) or not isinstance(item.get("request"), dict):
                return error_response(400, f"inlinedRequests[{index}].request: required")
            answer = self._answer(item["request"], model=model)
            if "metadata" in item:
                answer["metadata"] = item["metadata"]
            answers.append(answer)
        name = f"batches/emulator{len(self.items) + 1:04d}"
        self.items[name] = {
            "name": name,
            "model": f"models/{model}",
            "displayName": batch["displayName"],
            "state": "BATCH_STATE_PENDING",
            "answers": answers,
            "polls": 0,
        }
        return web.json_response(self._operation(self.items[name]))

    def _operation(self, item: dict[str, Any]) -> dict[str, Any]:
        state = item["state"]
        done = state in ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_CANCELLED")
        answers = item["answers"] if state == "BATCH_STATE_SUCCEEDED" else []
        failed = sum(1 for answer in answers if "error" in answer)
        stats = {
            "requestCount": str(len(item["answers"])),
            "successfulRequestCount": str(len(answers) - failed),
            "failedRequestCount": str(failed),
            "pendingRequestCount": str(0 if done else len(item["answers"])),
        }
        operation: dict[str, Any] = {
            "name": item["name"],
            "metadata": {
                "@type": _BATCH_TYPE,
                "model": item["model"],
                "displayName": item["displayName"],
                "createTime": "2026-12-06T00:00:00Z",
                "updateTime": "2026-12-06T00:00:00Z",
                "batchStats": stats,
                "state": state,
                "name": item["name"],
            },
        }
        if done:
            operation["done"] = True
            operation["response"] = {
                "@type": _OUTPUT_TYPE,
                "inlinedResponses": {"inlinedResponses": answers},
            }
        return operation

    async def list(self, request: web.Request) -> web.Response:
        """`batches.list`: the operations, newest first, `pageSize` at a time."""
        await self.emulator.receive(request)
        refused = self.emulator.key_refusal(request)
        if refused is not None:
            return refused
        size = int(request.query.get("pageSize") or 50)
        newest = list(self.items.values())[::-1][:size]
        return web.json_response({"operations": [self._operation(item) for item in newest]})

    async def retrieve(self, request: web.Request) -> web.Response:
        await self.emulator.receive(request)
        refused = self.emulator.key_refusal(request)
        if refused is not None:
            return refused
        item = self.items.get(f"batches/{request.match_info['batch']}")
        if item is None:
            return error_response(404, "Requested entity was not found.")
        item["polls"] += 1
        if item["state"] == "BATCH_STATE_PENDING":
            item["state"] = "BATCH_STATE_RUNNING"
        if item["state"] == "BATCH_STATE_RUNNING" and not self.hold:
            if item["polls"] >= self.polls_to_end:
                item["state"] = "BATCH_STATE_SUCCEEDED"
        return web.json_response(self._operation(item))

    async def cancel(self, request: web.Request) -> web.Response:
        await self.emulator.receive(request)
        refused = self.emulator.key_refusal(request)
        if refused is not None:
            return refused
        batch, _, method = request.match_info["target"].partition(":")
        item = self.items.get(f"batches/{batch}")
        if method != "cancel":
            return error_response(404, f"Method {method!r} not found")
        if item is None:
            return error_response(404, "Requested entity was not found.")
        if item["state"] in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
            item["state"] = "BATCH_STATE_CANCELLED"
        return web.json_response({})


_emulator: GeminiEmulator | None = None


def gemini_emulator_get() -> GeminiEmulator:
    """The process's emulator, started on first use; call `reset()` between tests."""
    global _emulator
    if _emulator is None:
        _emulator = GeminiEmulator().start()
    return _emulator
