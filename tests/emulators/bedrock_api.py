"""A local emulator of AWS Bedrock Runtime (and STS AssumeRole) on a real socket.

Written from the Bedrock Runtime API reference: it serves `POST /model/{modelId}/converse`,
`/converse-stream` and `/invoke` (Titan and Cohere embeddings), and STS's `AssumeRole` at `/`.
Every request's SigV4 signature is VERIFIED: the emulator looks up the secret of the access key
named in `Authorization`, rebuilds the canonical request from what arrived on the socket (raw
path, signed headers, body bytes) and recomputes the signature with botocore's signer, refusing
mismatches, unknown keys, missing or wrong session tokens, stale dates and the wrong service or
region. Converse bodies are validated like the real API (field names, alternating roles starting
with a user turn, one member per content block, tool results answering the previous turn's tool
uses, toolConfig present when the history holds tools, image bytes and formats, ranges).
ConverseStream answers in real `application/vnd.amazon.eventstream` frames with correct CRCs,
encoded here independently of Ogem's decoder. Tests script replies and read `requests`.

Tools and reasoning, as the model behaves: a scripted `toolUse` naming a tool the request does not
declare becomes a text answer (a model can only call a declared tool). Extended thinking
(`additionalModelRequestFields.thinking`) is accepted only on the Claude models that have it, with
the API's rules: `budget_tokens` at least 1024 and below `maxTokens`, no forced tool choice, no
`temperature` other than 1 nor `topP` below 0.95, and in a tool-use loop the last assistant turn
must start with its `reasoningContent`. With thinking on, a reply without reasoning gets one
(text and signature) before its answer; with it off, scripted reasoning is left out.

Prompt caching: `cachePoint` blocks (`{"type": "default"}`, optional `ttl` 5m or 1h, at most
four, each after some content) are accepted in `system`, turns and `toolConfig.tools`. A reply
scripted with `usage=None` (`reply_cached`) reports the usage the emulator's prompt cache counts
(tests/emulators/prompt_cache.py): `inputTokens` the uncached rest, `cacheReadInputTokens` and
`cacheWriteInputTokens` as the API does; `usages` lists every usage reported.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import datetime
import hashlib
import hmac
import re
import struct
import threading
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson
from aiohttp import web
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.emulators.prompt_cache import Block, BreakpointCache, block_of, block_tokens
from tests.live import free_port

ACCESS_KEY = "AKIAEMULATOR00000001"
SECRET_KEY = "emulator/secret/key/0000000000000000000000"
REGION = "us-west-2"
ROLE_ARN = "arn:aws:iam::123456789012:role/ogem-bedrock"
REQUEST_ID = "7a9f8c1e-0000-4000-8000-emulator0001"
AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[a-z0-9;-]+), ?"
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
TOP_LEVEL_FIELDS = {
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "additionalModelRequestFields",
    "additionalModelResponseFieldPaths",
    "promptVariables",
    "requestMetadata",
    "performanceConfig",
}
BLOCK_MEMBERS = {
    "text",
    "image",
    "document",
    "video",
    "toolUse",
    "toolResult",
    "guardContent",
    "cachePoint",
    "reasoningContent",
}
INFERENCE_FIELDS = {"maxTokens", "temperature", "topP", "stopSequences"}
IMAGE_FORMATS = {"png", "jpeg", "gif", "webp"}
DOCUMENT_FORMATS = {"pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"}
TITAN_DIMENSIONS = {256, 512, 1024}
# A tiny image served at GET /images/pixel.png (for image-URL downloads through the SSRF guard).
PIXEL_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01emulator"
COHERE_INPUT_TYPES = {"search_document", "search_query", "classification", "clustering"}
THINKING_MODEL_RE = re.compile(r"anthropic\.claude-(3-7-sonnet|(opus|sonnet|haiku)-[4-9])")
DEFAULT_MAX_TOKENS = 4096  # what the emulator's Claude models produce when maxTokens is unset
SIGNATURE = "EmulatorSignature0001"


@dataclass
class Reply:
    """One scripted Converse answer, or an error status with an exception name."""

    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    # None: counted by the emulator's prompt cache.
    usage: dict[str, Any] | None = field(
        default_factory=lambda: {"inputTokens": 12, "outputTokens": 7, "totalTokens": 19}
    )
    status: int = 200
    exception: str = ""
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    # Streaming only: send an exception message (e.g. throttlingException) after this many events.
    stream_exception_after: int | None = None
    # Streaming only: end the body after this many events.
    stream_cut_after: int | None = None
    # Streaming only: flip a bit of this event's payload (so its message CRC fails).
    stream_corrupt_event: int | None = None


def reply_text(text: str, **kwargs: Any) -> Reply:
    return Reply(content=[{"text": text}], **kwargs)


def reply_cached(text: str, **kwargs: Any) -> Reply:
    """A text reply whose usage the emulator counts, prompt cache included."""
    return Reply(content=[{"text": text}], usage=None, **kwargs)


def reply_error(status: int, exception: str, message: str, **kwargs: Any) -> Reply:
    return Reply(status=status, exception=exception, message=message, **kwargs)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    access_key: str = ""


class Refused(Exception):
    def __init__(self, status: int, exception: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.exception = exception
        self.message = message


def _invalid(message: str) -> Refused:
    return Refused(400, "ValidationException", message)


def _error_response(status: int, exception: str, message: str, **headers: str) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"message": message}),
        content_type="application/json",
        headers={
            "x-amzn-RequestId": REQUEST_ID,
            "x-amzn-ErrorType": f"{exception}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            **headers,
        },
    )


# -- eventstream encoding (independent of providers/bedrock/eventstream.py) -----------------


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        struct.pack(">B", len(raw_name)) + raw_name + b"\x07" + struct.pack(">H", len(raw_value))
    ) + raw_value


def frame_encode(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_frame(event_type: str, body: dict[str, Any]) -> bytes:
    headers = {
        ":event-type": event_type,
        ":content-type": "application/json",
        ":message-type": "event",
    }
    return frame_encode(headers, orjson.dumps(body | {"p": "abcdefghij"}))


def exception_frame(exception: str, message: str) -> bytes:
    headers = {
        ":exception-type": exception,
        ":content-type": "application/json",
        ":message-type": "exception",
    }
    return frame_encode(headers, orjson.dumps({"message": message}))


def sigv4_verify(
    request: web.Request,
    raw: bytes,
    *,
    keys: dict[str, tuple[str, str | None]],
    region: str,
    service: str,
) -> str:
    """Check a request's SigV4 signature (`keys`: access key -> (secret, session token));
    return the access key that signed, or raise `Refused` as AWS answers."""
    match = AUTH_RE.match(request.headers.get("Authorization", ""))
    if match is None:
        raise Refused(403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    key = match["key"]
    known = keys.get(key)
    if known is None:
        raise Refused(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    secret, token = known
    if token is not None and request.headers.get("X-Amz-Security-Token") != token:
        raise Refused(
            403,
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
        )
    if match["service"] != service or match["region"] != region:
        raise Refused(
            403,
            "InvalidSignatureException",
            f"Credential should be scoped to a valid region and service {service}.",
        )
    stamp = request.headers.get("X-Amz-Date", "")
    try:
        when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.UTC)
    except ValueError as exc:
        raise Refused(403, "InvalidSignatureException", "X-Amz-Date is missing or invalid") from exc
    if (
        abs((datetime.datetime.now(datetime.UTC) - when).total_seconds()) > 300
        or stamp[:8] != match["date"]
    ):
        raise Refused(403, "InvalidSignatureException", "Signature expired or scope date mismatch")
    signed = match["signed"].split(";")
    if "host" not in signed or (token is not None and "x-amz-security-token" not in signed):
        raise Refused(403, "InvalidSignatureException", "host and the session token must be signed")
    headers = {name: request.headers.get(name, "") for name in signed}
    rebuilt = AWSRequest(
        method=request.method,
        url=f"http://{request.headers['Host']}{request.raw_path}",
        data=raw,
        headers=headers,
    )
    rebuilt.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(key, secret, token), service, region)
    expected = signer.signature(
        signer.string_to_sign(rebuilt, signer.canonical_request(rebuilt)), rebuilt
    )
    if not hmac.compare_digest(expected, match["signature"]):
        raise Refused(
            403,
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided.",
        )
    return key


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def stream_events(reply: Reply) -> list[tuple[str, dict[str, Any]]]:
    """The ConverseStream events of a reply, in the order and shape the real API sends them."""
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for index, block in enumerate(reply.content):
        if "toolUse" in block:
            use = block["toolUse"]
            start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
            events.append(("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            raw = orjson.dumps(use["input"]).decode()
            for piece in _pieces(raw, 8):
                delta = {"toolUse": {"input": piece}}
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"]
            if "redactedContent" in reasoning:
                delta = {"reasoningContent": {"redactedContent": reasoning["redactedContent"]}}
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
            else:
                text = reasoning["reasoningText"]
                for piece in _pieces(text["text"], 6):
                    delta = {"reasoningContent": {"text": piece}}
                    events.append(
                        ("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
                    )
                delta = {"reasoningContent": {"signature": text.get("signature", SIGNATURE)}}
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        elif "text" in block:
            for piece in _pieces(block["text"], 5):
                delta = {"text": piece}
                events.append(("contentBlockDelta", {"contentBlockIndex": index, "delta": delta}))
        events.append(("contentBlockStop", {"contentBlockIndex": index}))
    events.append(("messageStop", {"stopReason": reply.stop_reason}))
    events.append(("metadata", {"usage": reply.usage, "metrics": {"latencyMs": 321}}))
    return events


# -- validation -----------------------------------------------------------------------------


def _check_cache_point(value: Any, where: str) -> None:
    if not isinstance(value, dict) or value.get("type") != "default":
        raise _invalid(f"{where}.cachePoint.type: must be default")
    if set(value) - {"type", "ttl"}:
        raise _invalid(f"{where}.cachePoint: extraneous key is not permitted")
    if "ttl" in value and value["ttl"] not in ("5m", "1h"):
        raise _invalid(f"{where}.cachePoint.ttl: must be one of 5m, 1h")


def _check_points(blocks: list[Any], where: str) -> int:
    """The cache points of a list of blocks, each after some content."""
    count = 0
    for i, block in enumerate(blocks):
        if isinstance(block, dict) and "cachePoint" in block:
            _check_cache_point(block["cachePoint"], f"{where}.{i}")
            previous = blocks[i - 1] if i else None
            if not isinstance(previous, dict) or "cachePoint" in previous:
                raise _invalid(f"{where}.{i}: a cachePoint must follow a content block")
            count += 1
    return count


def _check_block(block: Any, where: str, *, role: str) -> str:
    if not isinstance(block, dict) or len(block) != 1 or next(iter(block)) not in BLOCK_MEMBERS:
        raise _invalid(f"{where}: a content block must set exactly one member")
    kind = next(iter(block))
    value = block[kind]
    if kind == "text" and (not isinstance(value, str) or not value.strip()):
        raise _invalid(f"{where}: text content blocks must be non-empty")
    if kind == "image":
        if value.get("format") not in IMAGE_FORMATS:
            raise _invalid(f"{where}.image.format: must be one of png, jpeg, gif, webp")
        try:
            base64.b64decode((value.get("source") or {}).get("bytes") or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _invalid(f"{where}.image.source.bytes: invalid base64") from exc
        if not (value.get("source") or {}).get("bytes"):
            raise _invalid(f"{where}.image.source: bytes are required")
    if kind == "document" and (
        value.get("format") not in DOCUMENT_FORMATS
        or not value.get("name")
        or not (value.get("source") or {}).get("bytes")
    ):
        raise _invalid(f"{where}.document: format, name and source.bytes are required")
    if kind == "reasoningContent" and role != "assistant":
        raise _invalid(f"{where}: reasoningContent blocks are only allowed in assistant messages")
    if kind == "toolUse":
        if role != "assistant":
            raise _invalid(f"{where}: toolUse blocks are only allowed in assistant messages")
        if not (
            value.get("toolUseId") and value.get("name") and isinstance(value.get("input"), dict)
        ):
            raise _invalid(f"{where}.toolUse: toolUseId, name and an input object are required")
    if kind == "toolResult":
        if role != "user":
            raise _invalid(f"{where}: toolResult blocks are only allowed in user messages")
        content = value.get("content")
        if not value.get("toolUseId") or not isinstance(content, list) or not content:
            raise _invalid(f"{where}.toolResult: toolUseId and content are required")
    return kind


def thinking_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """The request's extended thinking settings when thinking is enabled."""
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    return thinking if isinstance(thinking, dict) and thinking.get("type") == "enabled" else None


def _check_thinking(body: dict[str, Any], model: str) -> None:
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    if thinking is None:
        return
    if not THINKING_MODEL_RE.search(model):
        raise _invalid(
            "The model returned the following errors: thinking: Extra inputs are not permitted"
        )
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "disabled"):
        raise _invalid("thinking.type: Input should be 'enabled' or 'disabled'")
    if thinking["type"] == "disabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1024:
        raise _invalid(
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        )
    config = body.get("inferenceConfig") or {}
    if budget >= config.get("maxTokens", DEFAULT_MAX_TOKENS):
        raise _invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    if config.get("temperature", 1) != 1:
        raise _invalid("`temperature` may only be set to 1 when thinking is enabled.")
    if config.get("topP", 1) < 0.95:
        raise _invalid("`top_p` must be greater than or equal to 0.95 when thinking is enabled.")
    choice = (body.get("toolConfig") or {}).get("toolChoice") or {}
    if "any" in choice or "tool" in choice:
        raise _invalid("Thinking may not be enabled when tool_choice forces tool use.")
    assistants = [m for m in body["messages"] if m["role"] == "assistant"]
    last = assistants[-1]["content"] if assistants else []
    if any("toolUse" in b for b in last) and "reasoningContent" not in last[0]:
        raise _invalid(
            "Expected `thinking` or `redacted_thinking`, but found `text`. When `thinking` is "
            "enabled, a final `assistant` message must start with a thinking block."
        )


def declared_tools(body: dict[str, Any]) -> set[str]:
    tools = (body.get("toolConfig") or {}).get("tools") or []
    return {t["toolSpec"]["name"] for t in tools if "toolSpec" in t}


def model_answer(body: dict[str, Any], reply: Reply) -> Reply:
    """What the model answers given the request: it calls only declared tools, and reasons
    exactly when thinking is enabled."""
    names = declared_tools(body)
    content: list[dict[str, Any]] = []
    called = False
    for block in reply.content:
        if "toolUse" in block and block["toolUse"]["name"] not in names:
            content.append({"text": f"(I have no tool named {block['toolUse']['name']}.)"})
            continue
        called = called or "toolUse" in block
        content.append(block)
    thinking = thinking_of(body)
    if thinking is None:
        content = [b for b in content if "reasoningContent" not in b]
    elif not any("reasoningContent" in b for b in content):
        last = body["messages"][-1]["content"]
        asked = " ".join(b["text"] for b in last if "text" in b) or "the tool results"
        reasoning = {"reasoningText": {"text": f"Thinking about {asked}.", "signature": SIGNATURE}}
        content.insert(0, {"reasoningContent": reasoning})
    stop = reply.stop_reason
    if stop == "tool_use" and not called:
        stop = "end_turn"
    return dataclasses.replace(reply, content=content, stop_reason=stop)


def validate_converse(body: Any, model: str = "") -> None:
    if not isinstance(body, dict):
        raise _invalid("Request body must be a JSON object")
    for name in body:
        if name not in TOP_LEVEL_FIELDS:
            raise _invalid(f"Malformed input request: extraneous key [{name}] is not permitted")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("The messages field is required and must not be empty")
    uses_tools = False
    points = 0
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant"):
            raise _invalid(f"messages.{i}.role: must be user or assistant")
        if (i % 2 == 0) != (role == "user"):
            raise _invalid(
                "A conversation must start with a user message and alternate between user "
                "and assistant roles."
            )
        content = message.get("content")
        if not isinstance(content, list) or not content:
            raise _invalid(f"messages.{i}.content: must be a non-empty list")
        kinds = [
            _check_block(b, f"messages.{i}.content.{j}", role=role) for j, b in enumerate(content)
        ]
        points += _check_points(content, f"messages.{i}.content")
        uses_tools = uses_tools or "toolUse" in kinds or "toolResult" in kinds
        if role == "user":
            ids = {b["toolResult"]["toolUseId"] for b in content if "toolResult" in b}
            if ids != pending:
                raise _invalid(
                    "The number of toolResult blocks at messages."
                    f"{i}.content must match the toolUse blocks of the previous turn."
                )
            pending = set()
        else:
            pending = {b["toolUse"]["toolUseId"] for b in content if "toolUse" in b}
    system = body.get("system")
    if system is not None and (
        not isinstance(system, list)
        or not all(
            isinstance(b, dict) and len(b) == 1 and (b.get("text") or "cachePoint" in b)
            for b in system
        )
    ):
        raise _invalid("system: must be a list of non-empty text blocks")
    if system:
        points += _check_points(system, "system")
    config = body.get("inferenceConfig")
    if config is not None:
        for name in config:
            if name not in INFERENCE_FIELDS:
                raise _invalid(f"inferenceConfig: extraneous key [{name}] is not permitted")
        for name in ("temperature", "topP"):
            if name in config and not 0 <= config[name] <= 1:
                raise _invalid(f"inferenceConfig.{name}: must be between 0 and 1")
        if "maxTokens" in config and (
            not isinstance(config["maxTokens"], int) or config["maxTokens"] < 1
        ):
            raise _invalid("inferenceConfig.maxTokens: must be at least 1")
        stops = config.get("stopSequences")
        if stops is not None and (
            len(stops) > 4 or not all(isinstance(s, str) and s for s in stops)
        ):
            raise _invalid("inferenceConfig.stopSequences: at most 4 non-empty strings")
    tool_config = body.get("toolConfig")
    if uses_tools and tool_config is None:
        raise _invalid(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        )
    if tool_config is not None:
        tools = tool_config.get("tools")
        if not isinstance(tools, list) or not tools:
            raise _invalid("toolConfig.tools: must be a non-empty list")
        names = set()
        points += _check_points(tools, "toolConfig.tools")
        for i, tool in enumerate(tools):
            if isinstance(tool, dict) and "cachePoint" in tool:
                continue
            spec = tool.get("toolSpec") if isinstance(tool, dict) else None
            if not isinstance(spec, dict) or set(spec) - {"name", "description", "inputSchema"}:
                raise _invalid(f"toolConfig.tools.{i}: must be a toolSpec")
            if not re.match(r"^[a-zA-Z0-9_-]{1,64}$", str(spec.get("name", ""))):
                raise _invalid(f"toolConfig.tools.{i}.toolSpec.name: invalid name")
            schema = (spec.get("inputSchema") or {}).get("json")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise _invalid(
                    f"toolConfig.tools.{i}.toolSpec.inputSchema.json: must be an object schema"
                )
            names.add(spec["name"])
        choice = tool_config.get("toolChoice")
        if choice is not None:
            if (
                not isinstance(choice, dict)
                or len(choice) != 1
                or next(iter(choice)) not in ("auto", "any", "tool")
            ):
                raise _invalid("toolConfig.toolChoice: must set exactly one of auto, any, tool")
            if "tool" in choice and choice["tool"].get("name") not in names:
                raise _invalid("toolConfig.toolChoice.tool.name: no such tool")
    if points > 4:
        raise _invalid(f"A maximum of 4 cachePoint blocks may be provided. Found {points}.")
    _check_thinking(body, model)


def prompt_blocks(body: dict[str, Any]) -> list[Block]:
    """The prompt as the model reads it (tools, system, turns), each cache point marking the
    end of the block before it."""
    blocks: list[Block] = []
    sections = [(body.get("toolConfig") or {}).get("tools") or [], body.get("system") or []]
    sections += [message["content"] for message in body["messages"]]
    for section in sections:
        for block in section:
            if "cachePoint" in block and blocks:
                ttl = block["cachePoint"].get("ttl") or "5m"
                blocks[-1] = Block(blocks[-1].tokens, blocks[-1].key, breakpoint_ttl=ttl)
            elif "cachePoint" not in block:
                blocks.append(block_of(block))
    return blocks


def _vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % 32] - 128) / 128, 6) for i in range(dimensions)]


# -- the server -----------------------------------------------------------------------------


class BedrockEmulator:
    def __init__(self, *, region: str = REGION) -> None:
        self.region = region
        self.requests: list[Received] = []
        # access key -> (secret, session token or None)
        self.keys: dict[str, tuple[str, str | None]] = {ACCESS_KEY: (SECRET_KEY, None)}
        self.assumed: list[dict[str, str]] = []
        self.prompt_cache = BreakpointCache(minimum_tokens=1024)
        self.usages: list[dict[str, Any]] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bedrock-emulator", daemon=True)

    def start(self) -> BedrockEmulator:
        self._thread.start()
        if not self._started.wait(timeout=10):
            raise RuntimeError("the Bedrock emulator did not start")
        return self

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.assumed.clear()
            self.usages.clear()
            self.keys = {ACCESS_KEY: (SECRET_KEY, None)}
        self.prompt_cache.clear()

    def add_key(self, access_key: str, secret_key: str, token: str | None = None) -> None:
        with self._lock:
            self.keys[access_key] = (secret_key, token)

    def bodies(self, action: str = "converse") -> list[Any]:
        """Bodies received for one action ("converse", "converse-stream", "invoke")."""
        return [r.body for r in self.requests if r.path.endswith(f"/{action}")]

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = web.Application(client_max_size=40 * 1024 * 1024)
        app.router.add_post("/model/{model_id}/{action}", self._model)
        app.router.add_post("/", self._sts)
        app.router.add_get("/images/pixel.png", self._pixel)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        self._loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._started.set()
        self._loop.run_forever()

    def _verify(self, request: web.Request, raw: bytes, *, service: str) -> str:
        """Check the SigV4 signature; return the access key that signed."""
        with self._lock:
            keys = dict(self.keys)
        return sigv4_verify(request, raw, keys=keys, region=self.region, service=service)

    async def _receive(self, request: web.Request, *, service: str) -> tuple[Any, str]:
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", errors="replace")
        received = Received(
            path=request.raw_path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        with self._lock:
            self.requests.append(received)
        received.access_key = self._verify(request, raw, service=service)
        return body, raw.decode("utf-8", errors="replace")

    async def _pixel(self, request: web.Request) -> web.Response:
        with self._lock:
            self.requests.append(Received(path=request.raw_path, headers={}, body=None))
        return web.Response(body=PIXEL_PNG, content_type="image/png")

    async def _sts(self, request: web.Request) -> web.Response:
        try:
            _, text = await self._receive(request, service="sts")
        except Refused as refused:
            return web.Response(
                status=refused.status,
                text=f"<ErrorResponse><Error><Code>{refused.exception}</Code><Message>{refused.message}</Message></Error></ErrorResponse>",
                content_type="text/xml",
            )
        form = {k: v[0] for k, v in parse_qs(text).items()}
        if form.get("Action") != "AssumeRole" or form.get("RoleArn") != ROLE_ARN:
            return web.Response(
                status=403,
                text="<ErrorResponse><Error><Code>AccessDenied</Code><Message>Not authorized to "
                "perform sts:AssumeRole</Message></Error></ErrorResponse>",
                content_type="text/xml",
            )
        serial = len(self.assumed) + 1
        access = f"ASIAEMULATOR{serial:08d}"
        secret = f"assumed/secret/{serial:04d}"
        token = f"FwoGZXIvYXdzEMULATOR{serial:04d}"
        self.add_key(access, secret, token)
        with self._lock:
            self.assumed.append(form)
        expires = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        session = form.get("RoleSessionName", "")
        xml = (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
            "<AssumeRoleResult><Credentials>"
            f"<AccessKeyId>{access}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>"
            f"<SessionToken>{token}</SessionToken><Expiration>{expires}</Expiration>"
            "</Credentials><AssumedRoleUser>"
            f"<Arn>arn:aws:sts::123456789012:assumed-role/ogem-bedrock/{session}</Arn>"
            f"<AssumedRoleId>AROAEMULATOR:{session}</AssumedRoleId>"
            "</AssumedRoleUser></AssumeRoleResult>"
            f"<ResponseMetadata><RequestId>{REQUEST_ID}</RequestId></ResponseMetadata>"
            "</AssumeRoleResponse>"
        )
        return web.Response(text=xml, content_type="text/xml")

    async def _model(self, request: web.Request) -> web.StreamResponse:
        try:
            body, _ = await self._receive(request, service="bedrock")
            model = unquote(request.match_info["model_id"])
            action = request.match_info["action"]
            if action == "invoke":
                return self._invoke(model, body)
            if action not in ("converse", "converse-stream"):
                raise Refused(404, "UnknownOperationException", "Unknown operation")
            validate_converse(body, model)
        except Refused as refused:
            return _error_response(refused.status, refused.exception, refused.message)
        with self._lock:
            reply = self._script.popleft() if self._script else _default_reply(body)
        if reply.status != 200:
            return _error_response(reply.status, reply.exception, reply.message, **reply.headers)
        reply = model_answer(body, reply)
        if reply.usage is None:
            reply = dataclasses.replace(reply, usage=self._cached_usage(model, body, reply))
        with self._lock:
            self.usages.append(reply.usage)
        if action == "converse":
            answer = {
                "output": {"message": {"role": "assistant", "content": reply.content}},
                "stopReason": reply.stop_reason,
                "usage": reply.usage,
                "metrics": {"latencyMs": 321},
            }
            return web.Response(
                body=orjson.dumps(answer),
                content_type="application/json",
                headers={"x-amzn-RequestId": REQUEST_ID, **reply.headers},
            )
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/vnd.amazon.eventstream",
                "x-amzn-RequestId": REQUEST_ID,
                **reply.headers,
            }
        )
        await response.prepare(request)
        events = stream_events(reply)
        if reply.stream_cut_after is not None:
            events = events[: reply.stream_cut_after]
        frames = [event_frame(name, data) for name, data in events]
        if reply.stream_corrupt_event is not None:
            broken = bytearray(frames[reply.stream_corrupt_event])
            broken[-6] ^= 0x01
            frames[reply.stream_corrupt_event] = bytes(broken)
        if reply.stream_exception_after is not None:
            frames = frames[: reply.stream_exception_after]
            frames.append(
                exception_frame(
                    reply.exception or "throttlingException", reply.message or "Too many requests"
                )
            )
        data = b"".join(frames)
        # Odd-sized writes so frames straddle network chunks, as they do on the real wire.
        for start in range(0, len(data), 37):
            await response.write(data[start : start + 37])
        await response.write_eof()
        return response

    def _cached_usage(self, model: str, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        counted = self.prompt_cache.count(scope=model, blocks=prompt_blocks(body))
        output = sum(block_tokens(b.get("text", b)) for b in reply.content)
        total = counted.input_tokens + counted.read + counted.written + output
        return {
            "inputTokens": counted.input_tokens,
            "outputTokens": output,
            "totalTokens": total,
            "cacheReadInputTokens": counted.read,
            "cacheWriteInputTokens": counted.written,
        }

    def _invoke(self, model: str, body: Any) -> web.Response:
        if not isinstance(body, dict):
            raise _invalid("Malformed input request")
        if "titan-embed" in model:
            allowed = (
                {"inputText"}
                if "titan-embed-text-v1" in model
                else {"inputText", "dimensions", "normalize", "embeddingTypes"}
            )
            extra = set(body) - allowed
            if extra:
                raise _invalid(
                    f"Malformed input request: extraneous key [{sorted(extra)[0]}] is not permitted"
                )
            text = body.get("inputText")
            if not isinstance(text, str) or not text:
                raise _invalid("Malformed input request: required key [inputText] not found")
            dimensions = body.get("dimensions", 1024)
            if dimensions not in TITAN_DIMENSIONS:
                raise _invalid("Malformed input request: dimensions must be 256, 512 or 1024")
            tokens = len(text.split())
            answer = {"embedding": _vector(text, dimensions), "inputTextTokenCount": tokens}
        elif "cohere.embed" in model:
            extra = set(body) - {"texts", "images", "input_type", "truncate", "embedding_types"}
            if extra:
                raise _invalid(
                    f"Malformed input request: extraneous key [{sorted(extra)[0]}] is not permitted"
                )
            texts = body.get("texts")
            if not isinstance(texts, list) or not texts or len(texts) > 96:
                raise _invalid("Malformed input request: texts must hold 1 to 96 strings")
            if body.get("input_type") not in COHERE_INPUT_TYPES:
                raise _invalid("Malformed input request: input_type is required")
            tokens = sum(len(t.split()) for t in texts)
            answer = {
                "id": "emb-emulator",
                "embeddings": [_vector(t, 8) for t in texts],
                "response_type": "embeddings_floats",
                "texts": texts,
            }
        else:
            raise Refused(
                404, "ResourceNotFoundException", f"Model {model} not found in the emulator"
            )
        return web.Response(
            body=orjson.dumps(answer),
            content_type="application/json",
            headers={
                "x-amzn-RequestId": REQUEST_ID,
                "X-Amzn-Bedrock-Input-Token-Count": str(tokens),
            },
        )


def _default_reply(body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]["content"]
    text = " ".join(b["text"] for b in last if "text" in b)
    return reply_text(f"Echo: {text}")


_emulator: BedrockEmulator | None = None


def bedrock_emulator_get() -> BedrockEmulator:
    """The process's emulator, started on first use; call `reset()` between tests."""
    global _emulator
    if _emulator is None:
        _emulator = BedrockEmulator().start()
    return _emulator
