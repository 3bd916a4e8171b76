"""A local emulator of OpenAI's HTTP API (and Azure OpenAI's deployment paths) on a real socket.

It speaks the wire format of every endpoint Ogem relays, checks auth and required fields the way
the real API does (OpenAI-shaped 401/400/404 bodies), records every request for assertions and
takes injected faults (status, slow first byte, cut stream, connection reset, malformed JSON).
Its `ledger` holds, per chat/text completion, the usage it reported: the usage block of a plain
answer; for a stream, the prompt plus the completion tokens of the chunks it wrote, marked
complete only when it wrote the whole stream (a reader that goes away cuts it short). Streams
asked for `stream_options.continuous_usage_stats` (vLLM's option) carry the usage so far in every
chunk; `stream_hold_after` holds every stream after that many chunks until its reader leaves, so
the last usage a reader saw is known exactly.
`report_usage = False` makes it an upstream that reports no usage at all (as llama-cpp-python's
server, which ignores `stream_options.include_usage`): no `usage` in answers, no usage chunk;
`usage_override` replaces the usage it reports (a broken upstream's impossible counts).
Images (generations, edits) and transcriptions asked with `stream` answer OpenAI's typed events
(`image_generation.partial_image`/`.completed`, `transcript.text.delta`/`.done`), except
transcriptions by `whisper-1`, which OpenAI answers in full.
`flavor` adds a provider's strictness: "mistral" answers 422 to fields Mistral does not know,
"groq" 400 to the fields Groq rejects. A chat request with `tools` gets a call of each tool,
except under `tool_choice: "none"`, where the model calls none. Under the "mistral" flavor a
`reasoning_effort` other than "none" makes the answer's `content` Mistral's list of chunks, a
`thinking` chunk (its own list of text chunks) before the text; streamed, the thinking comes
first as one such chunk list.
Chat completions are prompt-cached automatically, as the providers document it
(tests/emulators/prompt_cache.py): the "openai" flavor reports the longest prefix (1,024 tokens at
least, then 128-token steps) shared with an earlier prompt of the same model in
`usage.prompt_tokens_details.cached_tokens`; the "deepseek" flavor reports DeepSeek's
`prompt_cache_hit_tokens` (an earlier request's whole input, or input and output, when it is a
prefix of this prompt, 64 tokens at least) and `prompt_cache_miss_tokens`, and no
`prompt_tokens_details`.
The Responses API (`/v1/responses` and its routes; Azure's `/openai/v1/responses`) is
tests/emulators/openai_responses.py's; the Files and Batch APIs (OpenAI's and Azure's)
tests/emulators/openai_batches.py's.
Fine-tuning jobs and the deletion of fine-tuned models (`/v1/fine_tuning/jobs`,
`DELETE /v1/models/{model}`, Azure's `/openai/fine_tuning/jobs`) are
tests/emulators/openai_fine_tuning.py's, on the Files API's store.
Vector stores (`/v1/vector_stores`, Azure's `/openai/vector_stores`) are
tests/emulators/openai_vector_stores.py's, on the Files API's store too.
"""

from __future__ import annotations

import asyncio
import base64
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from tests.emulators.openai_batches import BatchesAPI
from tests.emulators.openai_fine_tuning import FineTuningAPI
from tests.emulators.openai_responses import ResponsesAPI
from tests.emulators.openai_vector_stores import VectorStoresAPI
from tests.emulators.prompt_cache import PrefixCache
from tests.emulators.realtime_api import RealtimeCalls

_TOKEN = re.compile(r"\w+|[^\w\s]")

MISTRAL_REJECTS = frozenset(
    {
        "user",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "stream_options",
        "seed",
        "store",
        "metadata",
    }
)
GROQ_REJECTS = frozenset({"logprobs", "logit_bias", "top_logprobs"})
REQUIRED = {
    "chat/completions": ("model", "messages"),
    "completions": ("model", "prompt"),
    # Mistral's (Codestral's) fill-in-the-middle completions, answered in chat's shape.
    "fim/completions": ("model", "prompt"),
    "embeddings": ("model", "input"),
    "images/generations": ("prompt",),
    "audio/speech": ("model", "input", "voice"),
    "moderations": ("input",),
    "rerank": ("model", "query", "documents"),
}


# Endpoints that stream typed events (`image_generation.*`, `transcript.text.*`) on `stream`.
_EVENT_STREAMS = ("images/generations", "images/edits", "audio/transcriptions")
IMAGE_B64 = "aW1hZ2U="
PARTIAL_B64 = "cGFydGlhbA=="


def tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


@dataclass
class Reported:
    """One ledger entry: what the emulator reported (or, for a cut stream, emitted)."""

    recorded: Recorded
    prompt_tokens: int
    completion_tokens: int
    stream: bool
    complete: bool


@dataclass
class Fault:
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    first_byte_delay: float = 0.0
    cut_after_chunks: int | None = None  # streams: drop the connection after N chunks
    chunk_delay: float = 0.0  # streams: pause between chunks
    reset: bool = False  # drop the connection without answering
    malformed: bool = False  # answer 200 with a body that is not JSON


def _error(status: int, message: str, *, type_: str, code: str | None = None, param=None):  # type: ignore[no-untyped-def]
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status, dumps=lambda v: orjson.dumps(v).decode())


def _fine_tuning_route(endpoint: str) -> bool:
    # Files are the Files API's (batch_route), which the fine-tuning jobs read.
    return endpoint.split("/")[0] == "fine_tuning" or endpoint.startswith("models/")


class OpenAIEmulator:
    def __init__(self, *, api_key: str = "sk-upstream-test", flavor: str = "openai") -> None:
        self.api_key = api_key
        self.flavor = flavor
        self.requests: list[Recorded] = []
        self.calls: list[dict[str, Any]] = []  # WebRTC offers and their sessions
        # The calls' ids, conversations and sideband WebSockets (tests/emulators/realtime_api.py).
        self.realtime_calls = RealtimeCalls(api_key=api_key)
        self.ledger: list[Reported] = []
        self.faults: list[Fault] = []
        # Upstream model name -> seconds every request for it waits before answering.
        self.model_delays: dict[str, float] = {}
        # Pause between the chunks of every stream (a fault's chunk_delay wins).
        self.stream_chunk_delay = 0.0
        # Hold every stream after this many chunks until the reader goes away.
        self.stream_hold_after: int | None = None
        # Stream the reply in pieces of this many characters instead of word by word (pieces
        # that cut through words and placeholders alike).
        self.stream_piece_chars: int | None = None
        self.report_usage = True
        self.usage_override: dict[str, Any] | None = None
        self.prompt_cache = PrefixCache(minimum=1024, unit=128)
        self.deepseek_cache = PrefixCache(minimum=64, unit=1, whole_prompts=True)
        self.responses_api = ResponsesAPI()
        self.batches_api = BatchesAPI(self)
        self.fine_tuning = FineTuningAPI(self.batches_api.files)
        self.vector_stores = VectorStoresAPI(self.batches_api.files)
        self.disconnected = threading.Event()
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> OpenAIEmulator:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._dispatch)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="openai-emulator", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def reset(self) -> None:
        self.requests.clear()
        self.calls.clear()
        self.realtime_calls.clear()
        self.ledger.clear()
        self.faults.clear()
        self.model_delays.clear()
        self.stream_chunk_delay = 0.0
        self.stream_hold_after = None
        self.stream_piece_chars = None
        self.report_usage = True
        self.usage_override = None
        self.prompt_cache.clear()
        self.deepseek_cache.clear()
        self.responses_api.clear()
        self.batches_api.clear()
        self.fine_tuning.clear()
        self.vector_stores.clear()
        self.disconnected.clear()

    def inject(self, **fault: Any) -> None:
        """The next request gets this fault (queue several for several requests)."""
        self.faults.append(Fault(**fault))

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    # -- request handling ------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        sideband = path == "/v1/realtime" and "call_id" in request.query
        hangup = re.fullmatch(r"/v1/realtime/calls/([^/]+)/hangup", path)
        if (sideband or hangup) and not self._authorized(request):
            return _error(
                401,
                "Incorrect API key provided.",
                type_="invalid_request_error",
                code="invalid_api_key",
            )
        if sideband:  # a WebRTC call's sideband WebSocket
            return await self.realtime_calls.sideband(request)
        if hangup and request.method == "POST":
            self.requests.append(Recorded(method="POST", path=path, query={}, headers={}))
            return await self.realtime_calls.hangup(hangup.group(1))
        recorded = Recorded(
            method=request.method,
            path=path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        if request.content_type == "application/sdp":  # a WebRTC offer, as it is
            recorded.form["sdp"] = (await request.read()).decode()
            body: dict[str, Any] = dict(recorded.form)
        elif request.content_type == "multipart/form-data":
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    recorded.files[name] = (value.filename, value.file.read())
                else:
                    recorded.form[name] = str(value)
            body = dict(recorded.form)
        else:
            raw = await request.read()
            try:
                recorded.json = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                self.requests.append(recorded)
                return _error(
                    400, "We could not parse the JSON body.", type_="invalid_request_error"
                )
            body = recorded.json if isinstance(recorded.json, dict) else {}
        self.requests.append(recorded)
        fault = self.faults.pop(0) if self.faults else Fault()

        # The Files and Batch APIs (tests/emulators/openai_batches.py), faults included.
        batch_route = self.batches_api.match(path)
        # The Vector Stores API (tests/emulators/openai_vector_stores.py), faults included.
        stores_route = self.vector_stores.match(path)
        endpoint = ""
        if batch_route is None and stores_route is None:
            endpoint, problem = self._route(request)
            if problem is not None:
                return problem
        if not self._authorized(request):
            return _error(
                401,
                "Incorrect API key provided.",
                type_="invalid_request_error",
                code="invalid_api_key",
            )
        if fault.first_byte_delay:
            await asyncio.sleep(fault.first_byte_delay)
        if self.model_delays.get(str(body.get("model"))):
            await asyncio.sleep(self.model_delays[str(body.get("model"))])
        if fault.reset:
            request.transport.close()  # type: ignore[union-attr]
            return web.Response(status=204)
        if fault.malformed:
            return web.Response(body=b'{"id": "chatcmpl-', content_type="application/json")
        if fault.status is not None:
            payload = fault.body or {
                "error": {
                    "message": f"Injected failure {fault.status}",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
            return web.json_response(
                payload,
                status=fault.status,
                headers=fault.headers,
                dumps=lambda v: orjson.dumps(v).decode(),
            )
        if batch_route is not None:
            return await self.batches_api.route(request, recorded, body, batch_route)
        if stores_route is not None:
            return await self.vector_stores.route(request, body, stores_route)
        if endpoint.split("/")[0] == "responses":
            return await self.responses_api.route(request, endpoint, body)
        if endpoint == "realtime/calls":
            return self._realtime_calls(body, recorded)
        if _fine_tuning_route(endpoint):
            return await self.fine_tuning.route(
                request, endpoint, body, recorded.files, azure=path.startswith("/openai/")
            )
        invalid = self._validate(endpoint, body, azure=path.startswith("/openai/deployments/"))
        if invalid is not None:
            return invalid
        handler = getattr(self, "_" + endpoint.replace("/", "_"))
        if endpoint in ("chat/completions", "completions") and body.get("stream"):
            return await self._stream(request, recorded, endpoint, body, fault)
        if endpoint in _EVENT_STREAMS and body.get("stream") in (True, "true"):
            # OpenAI ignores `stream` for whisper-1 and answers in full.
            if not (endpoint == "audio/transcriptions" and body.get("model") == "whisper-1"):
                return await self._stream_events(request, recorded, endpoint, body, fault)
        response = await handler(body, recorded)
        if endpoint in ("chat/completions", "completions"):
            usage = orjson.loads(response.body)["usage"]
            self.ledger.append(
                Reported(
                    recorded,
                    usage["prompt_tokens"],
                    usage["completion_tokens"],
                    stream=False,
                    complete=True,
                )
            )
        changed = not self.report_usage or self.usage_override is not None
        if changed and endpoint in ("chat/completions", "completions", "embeddings"):
            answer = orjson.loads(response.body)
            del answer["usage"]
            if self.report_usage:
                answer["usage"] = self.usage_override
            return self._json(answer)
        return response

    def _route(self, request: web.Request) -> tuple[str, web.Response | None]:
        path = request.path
        match = re.fullmatch(r"/openai/deployments/([^/]+)/(.+)", path) or re.fullmatch(
            r"/openai/((?:files|fine_tuning)(?:/.*)?)", path
        )
        if match:
            if "api-version" not in request.query:
                return "", _error(
                    404, "Resource not found", type_="invalid_request_error", code="404"
                )
            endpoint = match.group(match.lastindex or 1)
        else:
            match = re.fullmatch(r"(?:/openai)?/v1/(.+)", path)
            if not match:
                return "", _error(
                    404, f"Invalid URL ({request.method} {path})", type_="invalid_request_error"
                )
            endpoint = match.group(1)
        known = {
            *REQUIRED,
            "images/edits",
            "images/variations",
            "audio/transcriptions",
            "audio/translations",
            "models",
            "realtime/calls",
        }
        if (
            endpoint not in known
            and endpoint.split("/")[0] != "responses"
            and not _fine_tuning_route(endpoint)
        ):
            return "", _error(
                404, f"Invalid URL ({request.method} {path})", type_="invalid_request_error"
            )
        return endpoint, None

    def _realtime_calls(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        """WebRTC call setup: an SDP offer (and, multipart, the session with its model) in, the
        SDP answer out (201, `application/sdp`, the call's URL in `Location`)."""
        offer = str(body.get("sdp") or "")
        if "sdp" in recorded.files:  # a part of its own (`application/sdp`), as the SDK sends it
            offer = recorded.files["sdp"][1].decode()
        try:
            session = orjson.loads(body.get("session") or "{}")
        except orjson.JSONDecodeError:
            return _error(400, "`session` is not valid JSON.", type_="invalid_request_error")
        if not offer.startswith("v=0") or "m=" not in offer:
            return _error(400, "Invalid SDP offer.", type_="invalid_request_error", param="sdp")
        if not isinstance(session, dict) or not session.get("model"):
            return _error(
                400, "Missing required parameter: 'session.model'.", type_="invalid_request_error"
            )
        self.calls.append({"sdp": offer, "session": session})
        call_id = self.realtime_calls.mint(session)
        lines = [
            "v=0",
            f"o=- {len(self.calls)} 2 IN IP4 127.0.0.1",
            "s=-",
            "t=0 0",
            "a=fingerprint:sha-256 " + ":".join(["AB"] * 32),
        ]
        for media in re.findall(r"^m=(\w+) .*$", offer, flags=re.MULTILINE):
            mid = len([line for line in lines if line.startswith("m=")])
            if media == "audio":
                lines += ["m=audio 9 UDP/TLS/RTP/SAVPF 111", "a=rtpmap:111 opus/48000/2"]
            else:
                lines += [f"m={media} 9 UDP/DTLS/SCTP webrtc-datachannel", "a=sctp-port:5000"]
            lines += [f"a=mid:{mid}", "a=setup:active", "a=ice-ufrag:emul", "a=ice-pwd:" + "x" * 24]
        answer = "\r\n".join(lines) + "\r\n"
        return web.Response(
            status=201,
            body=answer.encode(),
            content_type="application/sdp",
            headers={"Location": f"/v1/realtime/calls/{call_id}"},
        )

    def _authorized(self, request: web.Request) -> bool:
        if request.path.startswith("/openai/"):  # Azure: deployment paths and its v1 API
            return (
                request.headers.get("api-key") == self.api_key
                or request.headers.get("Authorization") == f"Bearer {self.api_key}"
            )
        return request.headers.get("Authorization") == f"Bearer {self.api_key}"

    def _validate(self, endpoint: str, body: dict[str, Any], *, azure: bool) -> web.Response | None:
        for name in REQUIRED.get(endpoint, ()):
            if name == "model" and azure:  # Azure names the model in the URL
                continue
            if body.get(name) in (None, ""):
                return _error(
                    400,
                    f"Missing required parameter: '{name}'.",
                    type_="invalid_request_error",
                    param=name,
                    code="missing_required_parameter",
                )
        rejects = {"mistral": MISTRAL_REJECTS, "groq": GROQ_REJECTS}.get(self.flavor, frozenset())
        for name in rejects:
            if name in body:
                status = 422 if self.flavor == "mistral" else 400
                return _error(
                    status,
                    f"{name} is not supported",
                    type_="invalid_request_error",
                    param=name,
                )
        if self.flavor == "groq" and any("name" in m for m in body.get("messages") or []):
            return _error(
                400, "'messages.0' : property 'name' is unsupported", type_="invalid_request_error"
            )
        if "mock_response" in body and self.flavor == "openai":
            return _error(
                400,
                "Unrecognized request argument supplied: mock_response",
                type_="invalid_request_error",
            )
        return None

    # -- endpoints -------------------------------------------------------------------------------
    @staticmethod
    def _reply_text(endpoint: str, body: dict[str, Any]) -> tuple[str, int]:
        if endpoint == "chat/completions":
            messages = body.get("messages") or []
            texts = [
                m.get("content") if isinstance(m.get("content"), str) else "" for m in messages
            ]
            users = [t for m, t in zip(messages, texts, strict=True) if m.get("role") == "user"]
            return f"Emulated reply to: {users[-1] if users else ''}", tokens(" ".join(texts))
        prompt = body.get("prompt")
        prompt = " ".join(prompt) if isinstance(prompt, list) else str(prompt)
        return f"Emulated reply to: {prompt}", tokens(prompt)

    def _chat_usage(self, body: dict[str, Any], reply: str) -> dict[str, Any]:
        """A chat answer's usage, its prompt run through the flavor's prompt cache."""
        texts = [m.get("content") for m in body.get("messages") or []]
        prompt = _TOKEN.findall(" ".join(t if isinstance(t, str) else "" for t in texts))
        completion = tokens(reply)
        scope = str(body.get("model"))
        usage: dict[str, Any] = {
            "prompt_tokens": len(prompt),
            "completion_tokens": completion,
            "total_tokens": len(prompt) + completion,
        }
        if self.flavor == "deepseek":
            hit = self.deepseek_cache.count(scope=scope, tokens=prompt)
            self.deepseek_cache.count(scope=scope, tokens=prompt + _TOKEN.findall(reply))
            usage["prompt_cache_hit_tokens"] = hit
            usage["prompt_cache_miss_tokens"] = len(prompt) - hit
        else:
            cached = self.prompt_cache.count(scope=scope, tokens=prompt)
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
            usage["completion_tokens_details"] = {"reasoning_tokens": 0}
        return usage

    def _mistral_thinking(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """Mistral's `thinking` chunk for a request asking for reasoning, else None."""
        if self.flavor != "mistral" or body.get("reasoning_effort") in (None, "none"):
            return None
        asked = self._reply_text("chat/completions", body)[0].removeprefix("Emulated reply to: ")
        text = f"Thinking about {asked}."
        return {"type": "thinking", "thinking": [{"type": "text", "text": text}]}

    async def _chat_completions(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        reply, _ = self._reply_text("chat/completions", body)
        message: dict[str, Any] = {"role": "assistant", "content": reply, "refusal": None}
        thinking = self._mistral_thinking(body)
        if thinking is not None:
            message["content"] = [thinking, {"type": "text", "text": reply}]
        calls = body.get("tools") and body.get("tool_choice") != "none"
        if calls:
            message = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": f"call_{i}",
                        "type": "function",
                        "function": {"name": tool["function"]["name"], "arguments": "{}"},
                    }
                    for i, tool in enumerate(body["tools"])
                ],
            }
        return self._json(
            {
                "id": "chatcmpl-emulated",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "azure-deployment"),
                "system_fingerprint": "fp_emulated",
                "service_tier": "default",
                "choices": [
                    {
                        "index": i,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": "tool_calls" if calls else "stop",
                    }
                    for i in range(int(body.get("n") or 1))
                ],
                "usage": self._chat_usage(body, reply),
                "emulator_extra": {"kept": True},
            }
        )

    async def _completions(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        reply, prompt_tokens = self._reply_text("completions", body)
        return self._json(
            {
                "id": "cmpl-emulated",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "text": reply, "logprobs": None, "finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": tokens(reply),
                    "total_tokens": prompt_tokens + tokens(reply),
                },
            }
        )

    async def _fim_completions(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        reply, prompt_tokens = self._reply_text("completions", body)
        reply = f"{reply} before {body['suffix']}" if body.get("suffix") else reply
        return self._json(
            {
                "id": "fim-emulated",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": tokens(reply),
                    "total_tokens": prompt_tokens + tokens(reply),
                },
            }
        )

    async def _embeddings(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = int(body.get("dimensions") or 4)
        data = []
        for index, text in enumerate(inputs):
            vector = [round(((len(str(text)) + i) % 7) / 7, 4) for i in range(dims)]
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        count = sum(tokens(str(t)) for t in inputs)
        return self._json(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", ""),
                "usage": {"prompt_tokens": count, "total_tokens": count},
            }
        )

    async def _images_generations(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        n = int(body.get("n") or 1)
        return self._json(
            {"created": int(time.time()), "data": [{"b64_json": IMAGE_B64} for _ in range(n)]}
        )

    async def _images_edits(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        if "image" not in recorded.files and "image[]" not in recorded.files:
            return _error(400, "Missing image", type_="invalid_request_error", param="image")
        return await self._images_generations(body, recorded)

    _images_variations = _images_edits

    async def _audio_transcriptions(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        if "file" not in recorded.files:
            return _error(400, "Missing file", type_="invalid_request_error", param="file")
        filename, content = recorded.files["file"]
        text = f"Heard {len(content)} bytes from {filename}."
        if body.get("response_format") == "text":
            return web.Response(text=text, content_type="text/plain")
        return self._json({"text": text, "usage": self._transcription_usage(body, text)})

    @staticmethod
    def _transcription_usage(body: dict[str, Any], text: str) -> dict[str, Any]:
        """OpenAI's: whisper-1 bills seconds of audio, the gpt-4o models tokens."""
        if body.get("model") == "whisper-1":
            return {"type": "duration", "seconds": 3}
        return {
            "type": "tokens",
            "input_tokens": 20,
            "input_token_details": {"text_tokens": 0, "audio_tokens": 20},
            "output_tokens": tokens(text),
            "total_tokens": 20 + tokens(text),
        }

    _audio_translations = _audio_transcriptions

    async def _audio_speech(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        audio = b"ID3" + str(body["input"]).encode() * 1000
        return web.Response(body=audio, content_type="audio/mpeg")

    async def _moderations(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        """One result per input; its classifier flags "hateful" as hate (0.87) and "kill" as
        violence (0.93)."""
        names = ["hate", "harassment", "self-harm", "sexual", "violence"]
        flags = {"hate": "hateful", "violence": "kill"}
        scores = {"hate": 0.87, "violence": 0.93}
        inputs = body.get("input")
        results = []
        for text in inputs if isinstance(inputs, list) else [inputs]:
            lowered = str(text).lower()
            flagged = {name: name in flags and flags[name] in lowered for name in names}
            results.append(
                {
                    "flagged": any(flagged.values()),
                    "categories": flagged,
                    "category_scores": {
                        name: scores[name] if on else 0.0 for name, on in flagged.items()
                    },
                }
            )
        return self._json(
            {
                "id": "modr-emulated",
                "model": body.get("model", "omni-moderation-latest"),
                "results": results,
            }
        )

    async def _rerank(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        results = [
            {"index": i, "relevance_score": round(1 / (i + 1), 4)}
            for i in range(len(body["documents"]))
        ]
        return self._json({"id": "rerank-emulated", "results": results})

    async def _models(self, body: dict[str, Any], recorded: Recorded) -> web.Response:
        return self._json({"object": "list", "data": []})

    async def _stream(
        self,
        request: web.Request,
        recorded: Recorded,
        endpoint: str,
        body: dict[str, Any],
        fault: Fault,
    ) -> web.StreamResponse:
        chat = endpoint == "chat/completions"
        reply, prompt_tokens = self._reply_text(endpoint, body)
        words = re.findall(r"\S+\s*", reply)
        if self.stream_piece_chars:
            size = self.stream_piece_chars
            words = [reply[at : at + size] for at in range(0, len(reply), size)]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {
            "id": "chatcmpl-emulated" if chat else "cmpl-emulated",
            "object": "chat.completion.chunk" if chat else "text_completion",
            "created": int(time.time()),
            "model": body.get("model", "azure-deployment"),
            "system_fingerprint": "fp_emulated",
        }
        events: list[dict[str, Any]] = []
        if chat:
            events.append(
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                }
            )
            thinking = self._mistral_thinking(body)
            if thinking is not None:
                delta = {"content": [thinking]}
                choice0 = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
                events.append({**base, "choices": [choice0]})
        for word in words:
            choice: dict[str, Any] = (
                {"index": 0, "delta": {"content": word}, "logprobs": None, "finish_reason": None}
                if chat
                else {"index": 0, "text": word, "logprobs": None, "finish_reason": None}
            )
            events.append({**base, "choices": [choice]})
        final: dict[str, Any] = (
            {"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}
            if chat
            else {"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}
        )
        events.append({**base, "choices": [final]})
        options = body.get("stream_options") or {}
        if options.get("include_usage") and self.report_usage:
            usage = (
                self._chat_usage(body, reply)
                if chat
                else {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": tokens(reply),
                    "total_tokens": prompt_tokens + tokens(reply),
                }
            )
            events.append({**base, "choices": [], "usage": self.usage_override or usage})
        entry = Reported(recorded, prompt_tokens, 0, stream=True, complete=False)
        self.ledger.append(entry)
        continuous = bool(options.get("continuous_usage_stats")) and self.report_usage
        try:
            for number, event in enumerate(events):
                if number == self.stream_hold_after:
                    await self._hold_until_gone(request)
                if fault.cut_after_chunks is not None and number >= fault.cut_after_chunks:
                    await asyncio.sleep(0.05)  # let what was sent arrive before the cut
                    request.transport.close()  # type: ignore[union-attr]
                    return response
                delay = fault.chunk_delay or self.stream_chunk_delay
                if number and delay:
                    await asyncio.sleep(delay)
                for choice in event.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
                    entry.completion_tokens += tokens(text if isinstance(text, str) else "")
                if continuous and event.get("choices"):
                    event = {
                        **event,
                        "usage": {
                            "prompt_tokens": prompt_tokens,
                            "completion_tokens": entry.completion_tokens,
                            "total_tokens": prompt_tokens + entry.completion_tokens,
                        },
                    }
                await response.write(b"data: " + orjson.dumps(event) + b"\n\n")
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            entry.complete = True
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        return response

    async def _stream_events(
        self,
        request: web.Request,
        recorded: Recorded,
        endpoint: str,
        body: dict[str, Any],
        fault: Fault,
    ) -> web.StreamResponse:
        """OpenAI's image streams (`partial_images` partial events, then the completed one with
        the usage, each as `event:` and `data:`) and transcript streams (a `data:`-only delta per
        word, then the done event with token usage); no `[DONE]` after either."""
        events: list[dict[str, Any]] = []
        if endpoint == "audio/transcriptions":
            if "file" not in recorded.files:
                return _error(400, "Missing file", type_="invalid_request_error", param="file")
            filename, content = recorded.files["file"]
            text = f"Heard {len(content)} bytes from {filename}."
            words = re.findall(r"\S+\s*", text)
            events = [{"type": "transcript.text.delta", "delta": word} for word in words]
            usage = self._transcription_usage(body, text)
            events.append({"type": "transcript.text.done", "text": text, "usage": usage})
        else:
            if endpoint == "images/edits" and "image" not in recorded.files:
                return _error(400, "Missing image", type_="invalid_request_error", param="image")
            kind = "image_generation" if endpoint == "images/generations" else "image_edit"
            settings = {
                "created_at": int(time.time()),
                "size": body.get("size") or "1024x1024",
                "quality": body.get("quality") or "high",
                "background": body.get("background") or "opaque",
                "output_format": body.get("output_format") or "png",
            }
            for index in range(int(body.get("partial_images") or 0)):
                events.append(
                    {
                        "type": f"{kind}.partial_image",
                        "b64_json": PARTIAL_B64,
                        **settings,
                        "partial_image_index": index,
                    }
                )
            prompt = tokens(str(body.get("prompt") or ""))
            usage = {
                "total_tokens": prompt + 272,
                "input_tokens": prompt,
                "output_tokens": 272,
                "input_tokens_details": {"text_tokens": prompt, "image_tokens": 0},
            }
            events.append(
                {"type": f"{kind}.completed", "b64_json": IMAGE_B64, **settings, "usage": usage}
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        named = endpoint != "audio/transcriptions"
        for number, event in enumerate(events):
            if fault.cut_after_chunks is not None and number >= fault.cut_after_chunks:
                await asyncio.sleep(0.05)  # let what was sent arrive before the cut
                request.transport.close()  # type: ignore[union-attr]
                return response
            head = f"event: {event['type']}\n".encode() if named else b""
            await response.write(head + b"data: " + orjson.dumps(event) + b"\n\n")
        await response.write_eof()
        return response

    @staticmethod
    async def _hold_until_gone(request: web.Request) -> None:
        """Wait until the reader closes the connection (then the next write fails)."""
        transport = request.transport
        while transport is not None and not transport.is_closing():
            await asyncio.sleep(0.01)
        raise ConnectionResetError("the reader went away")

    @staticmethod
    def _json(payload: Any) -> web.Response:
        return web.Response(body=orjson.dumps(payload), content_type="application/json")
