"""The offline, deterministic `mock` provider: no sockets, no account, same answer every time.

Replies are derived from the prompt: ``Mock reply to: <the last user text>`` (cut to
``max_tokens``, and to `MAX_OUTPUT_TOKENS` as a real model stops at its output limit; each of the
``n`` choices is one such reply, and the usage counts them all). Token counts use a documented
approximation: every run of word characters is one token and every other non-space character is
one token (``\\w+|[^\\w\\s]``), so "Hello, world!" is 4 tokens.

Deployment ``params``: ``latency_ms`` (before the first byte), ``chunks`` (stream chunks; default
one per token), ``chunk_delay_ms`` (between stream chunks), ``dimensions`` (embedding size,
default 16).

With ``stream``, images and transcriptions stream OpenAI's typed events (``stream_events``):
``partial_images`` partial images then the completed one per image, a transcript's words then
its done event.

Tools and ``response_format`` are answered as ``providers/mock/tools.py`` says: a tool call when
``tools`` are given and ``tool_choice`` allows one, JSON of the asked shape otherwise.

A request may carry ``mock_response``: a string (the reply) or
``{"error": {"status": 429, "message": "...", "after_chunks": 2}}`` to simulate an upstream error,
before anything is sent or, for streams with ``after_chunks``, mid-stream.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import struct
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from providers.adapter import BinaryStream, ProviderAdapter, UploadFile, translating
from providers.base import CHAT_FAMILY_ENDPOINTS, Deployment, Endpoint
from providers.errors import GatewayError, InvalidRequestError, UpstreamFailure, upstream_error
from providers.events import EVENT_STREAM_ENDPOINTS, image_event, transcript_events
from providers.mock.tools import structured_reply, tool_call_choose

_TOKEN = re.compile(r"\w+|[^\w\s]")
# The mock models' output limit: `max_output_tokens` of mock-chat in billing/prices/prices.yaml.
MAX_OUTPUT_TOKENS = 4096
_MODERATION_CATEGORIES = (
    "hate",
    "hate/threatening",
    "harassment",
    "harassment/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
_AUDIO_TYPES = {"wav": "audio/wav", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac"}
# A 1x1 transparent PNG: the mock's every image.
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg=="
)


def mock_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def mock_token_count(text: str) -> int:
    return len(_TOKEN.findall(text))


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _prompt_text(endpoint: Endpoint, body: dict[str, Any]) -> tuple[str, str]:
    """(all prompt text, for counting; the last user text, for the reply)."""
    if endpoint == Endpoint.CHAT:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        texts = [_content_text(m.get("content")) for m in messages]
        users = [_content_text(m.get("content")) for m in messages if m.get("role") == "user"]
        return " ".join(texts), (users[-1] if users else "")
    prompt = body.get("prompt", body.get("input", ""))
    if isinstance(prompt, list):
        prompt = " ".join(str(p) for p in prompt)
    return str(prompt), str(prompt)


def _error(spec: dict[str, Any]) -> GatewayError:
    """The simulated upstream error, mapped as a real upstream's would be."""
    failure = UpstreamFailure(message=str(spec.get("message") or "simulated error"))
    return upstream_error(provider="mock", status=int(spec.get("status") or 500), failure=failure)


def _embedding(text: str, dimensions: int) -> list[float]:
    # One join of the blocks: appending to bytes in the loop would copy it each time (quadratic).
    blocks = (dimensions * 2 + 31) // 32
    digest = b"".join(
        hashlib.sha256(f"{counter}:{text}".encode()).digest() for counter in range(blocks)
    )
    return [
        round((digest[2 * i] * 256 + digest[2 * i + 1]) / 65535 * 2 - 1, 6)
        for i in range(dimensions)
    ]


# OpenAI streams at most this many partial images before each final one.
MAX_PARTIAL_IMAGES = 3


class MockAdapter(ProviderAdapter):
    name: ClassVar[str] = "mock"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_FAMILY_ENDPOINTS
    event_stream_endpoints: ClassVar[frozenset[Endpoint]] = EVENT_STREAM_ENDPOINTS

    async def call(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> dict[str, Any] | bytes:
        # The mock's answer is its translation of the client's body: a body it cannot read is 400.
        with translating(self.name):
            return await self._answer(
                endpoint=endpoint, deployment=deployment, body=body, files=files
            )

    async def _answer(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None,
    ) -> dict[str, Any] | bytes:
        self._raise_requested_error(body, streaming=False)
        await self._sleep(deployment.params.get("latency_ms"))
        now = int(time.time())
        model = deployment.upstream_model
        if endpoint == Endpoint.CHAT:
            return self._chat(body, model=model, created=now)
        if endpoint == Endpoint.COMPLETIONS:
            return self._completion(body, model=model, created=now)
        if endpoint == Endpoint.EMBEDDINGS:
            return self._embeddings(body, deployment=deployment)
        if endpoint in (
            Endpoint.IMAGES_GENERATIONS,
            Endpoint.IMAGES_EDITS,
            Endpoint.IMAGES_VARIATIONS,
        ):
            count = int(body.get("n") or 1)
            encoded = base64.b64encode(_PNG).decode()
            return {"created": now, "data": [{"b64_json": encoded} for _ in range(count)]}
        if endpoint in (Endpoint.AUDIO_TRANSCRIPTIONS, Endpoint.AUDIO_TRANSLATIONS):
            size = sum(len(f.content) for f in files or [])
            text = f"Mock transcription of {size} bytes."
            if body.get("response_format") in ("text", "srt", "vtt"):
                return text.encode()
            return {"text": text}
        if endpoint == Endpoint.MODERATIONS:
            return self._moderation(body, model=model)
        if endpoint == Endpoint.RERANK:
            return self._rerank(body, model=model)
        raise InvalidRequestError(f"mock does not serve {endpoint.value}.")

    async def stream(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        params = deployment.params
        model = deployment.upstream_model
        created = int(time.time())
        chat = endpoint == Endpoint.CHAT
        with translating(self.name):
            fail_after = self._raise_requested_error(body, streaming=True)
            complete = (self._chat if chat else self._completion)(
                body, model=model, created=created
            )
        await self._sleep(params.get("latency_ms"))
        first = complete["choices"][0]
        calls = first["message"].get("tool_calls") if chat else None
        if calls:
            # A tool call streams as OpenAI's: its id and name first, then the arguments' text.
            arguments = calls[0]["function"]["arguments"]
            pieces = [arguments[i : i + 16] for i in range(0, len(arguments), 16)] or [""]
            opening: dict[str, Any] = {"role": "assistant", "content": None}
            opening["tool_calls"] = [
                {**calls[0], "index": 0, "function": {**calls[0]["function"], "arguments": ""}}
            ]
        else:
            text = first["message"]["content"] if chat else first["text"]
            pieces = self._split(text, int(params.get("chunks") or 0))
            opening = {"role": "assistant", "content": ""}
        delay = params.get("chunk_delay_ms")
        kind = "chat.completion.chunk" if chat else "text_completion"
        choice_count = len(complete["choices"])
        sent = 0
        if chat:
            for index in range(choice_count):
                yield self._chunk(complete, kind, opening, index)
        for number, piece in enumerate(pieces):
            if fail_after is not None and sent >= fail_after[0]:
                raise fail_after[1]
            if number and delay:
                await self._sleep(delay)
            for index in range(choice_count):
                delta: dict[str, Any]
                if calls:
                    delta = {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                else:
                    delta = {"content": piece} if chat else {"text": piece}
                yield self._chunk(complete, kind, delta, index)
            sent += 1
        if fail_after is not None:
            raise fail_after[1]
        for index in range(choice_count):
            finish = complete["choices"][index]["finish_reason"]
            yield self._chunk(complete, kind, {} if chat else {"text": ""}, index, finish)
        yield {
            "id": complete["id"],
            "object": kind,
            "created": created,
            "model": model,
            "choices": [],
            "usage": complete["usage"],
        }

    async def stream_events(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        files: list[UploadFile] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Images: `partial_images` partial events (at most 3), then the completed one, for each
        of the `n` images; usage counts the prompt's tokens as text input. A transcript: a delta
        per word, then the done event."""
        with translating(self.name):
            self._raise_requested_error(body, streaming=False)
            partials = min(max(int(body.get("partial_images") or 0), 0), MAX_PARTIAL_IMAGES)
            count = int(body.get("n") or 1)
            prompt_tokens = mock_token_count(str(body.get("prompt") or ""))
        await self._sleep(deployment.params.get("latency_ms"))
        delay = deployment.params.get("chunk_delay_ms")
        if endpoint == Endpoint.AUDIO_TRANSCRIPTIONS:
            size = sum(len(f.content) for f in files or [])
            for number, event in enumerate(
                transcript_events(f"Mock transcription of {size} bytes.")
            ):
                if number and delay:
                    await self._sleep(delay)
                yield event
            return
        encoded = base64.b64encode(_PNG).decode()
        created = int(time.time())
        usage = {
            "total_tokens": prompt_tokens,
            "input_tokens": prompt_tokens,
            "output_tokens": 0,
            "input_tokens_details": {"text_tokens": prompt_tokens, "image_tokens": 0},
        }
        for _ in range(count):
            for index in (*range(partials), None):
                if delay:
                    await self._sleep(delay)
                event = image_event(
                    endpoint=endpoint, body=body, b64_json=encoded, created=created, partial=index
                )
                if index is None:
                    event["usage"] = usage
                yield event

    async def open_binary(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any]
    ) -> BinaryStream:
        with translating(self.name):
            self._raise_requested_error(body, streaming=False)
        await self._sleep(deployment.params.get("latency_ms"))
        text = str(body.get("input") or "")
        payload = b"ID3MOCK" + hashlib.sha256(text.encode()).digest() * max(1, len(text) // 8)
        formats = {
            "wav": "audio/wav",
            "opus": "audio/ogg",
            "aac": "audio/aac",
            "flac": "audio/flac",
        }
        content_type = formats.get(str(body.get("response_format")), "audio/mpeg")

        async def chunks() -> AsyncIterator[bytes]:
            for start in range(0, len(payload), 4096):
                yield payload[start : start + 4096]

        return BinaryStream(content_type=content_type, chunks=chunks())

    @staticmethod
    def _raise_requested_error(
        body: dict[str, Any], *, streaming: bool
    ) -> tuple[int, GatewayError] | None:
        spec = body.get("mock_response")
        if not isinstance(spec, dict) or not isinstance(spec.get("error"), dict):
            return None
        error = _error(spec["error"])
        after = spec["error"].get("after_chunks")
        if streaming and isinstance(after, int) and after > 0:
            return after, error
        raise error

    @staticmethod
    async def _sleep(milliseconds: Any) -> None:
        if milliseconds:
            await asyncio.sleep(float(milliseconds) / 1000)

    @staticmethod
    def _split(text: str, chunks: int) -> list[str]:
        words = re.findall(r"\S+\s*", text) or [text]
        if chunks <= 0 or chunks >= len(words):
            if chunks > len(words):
                return words + [""] * (chunks - len(words))
            return words
        size, extra = divmod(len(words), chunks)
        pieces, start = [], 0
        for index in range(chunks):
            end = start + size + (1 if index < extra else 0)
            pieces.append("".join(words[start:end]))
            start = end
        return pieces

    @staticmethod
    def _chunk(
        complete: dict[str, Any],
        kind: str,
        delta: dict[str, Any],
        index: int,
        finish_reason: str | None = None,
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": index, "finish_reason": finish_reason}
        if kind == "chat.completion.chunk":
            choice["delta"] = delta
            choice["logprobs"] = None
        else:
            choice.update(delta)
            choice["logprobs"] = None
        return {
            "id": complete["id"],
            "object": kind,
            "created": complete["created"],
            "model": complete["model"],
            "system_fingerprint": "mock",
            "choices": [choice],
        }

    @staticmethod
    def _reply(endpoint: Endpoint, body: dict[str, Any]) -> tuple[str, str, int]:
        """(reply text, finish reason, prompt tokens)."""
        prompt, last = _prompt_text(endpoint, body)
        requested = body.get("mock_response")
        reply = requested if isinstance(requested, str) else f"Mock reply to: {last}"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if not isinstance(limit, int) or not 0 < limit < MAX_OUTPUT_TOKENS:
            limit = MAX_OUTPUT_TOKENS
        finish = "stop"
        if mock_token_count(reply) > limit:
            last = list(_TOKEN.finditer(reply))[limit - 1]
            reply = reply[: last.end()]
            finish = "length"
        return reply, finish, mock_token_count(prompt)

    def _chat(self, body: dict[str, Any], *, model: str, created: int) -> dict[str, Any]:
        reply, finish, prompt_tokens = self._reply(Endpoint.CHAT, body)
        message: dict[str, Any] = {"role": "assistant", "content": reply, "refusal": None}
        produced = reply
        if not isinstance(body.get("mock_response"), str):  # a fixed reply wins over both
            last_user_text = _prompt_text(Endpoint.CHAT, body)[1]
            call = tool_call_choose(body, text=last_user_text)
            structured = None if call else structured_reply(body, text=last_user_text, reply=reply)
            if call is not None:
                message = {"role": "assistant", "content": None, "refusal": None}
                message["tool_calls"] = [call]
                produced, finish = call["function"]["arguments"], "tool_calls"
            elif structured is not None:
                message["content"] = produced = structured
                finish = "stop"
        count = int(body.get("n") or 1)
        completion_tokens = mock_token_count(produced) * count
        identity = hashlib.sha256(f"{model}:{reply}:{created}".encode()).hexdigest()[:24]
        return {
            "id": f"chatcmpl-mock{identity}",
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "mock",
            "choices": [
                {
                    "index": index,
                    "message": dict(message),
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for index in range(count)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _completion(self, body: dict[str, Any], *, model: str, created: int) -> dict[str, Any]:
        reply, finish, prompt_tokens = self._reply(Endpoint.COMPLETIONS, body)
        count = int(body.get("n") or 1)
        completion_tokens = mock_token_count(reply) * count
        identity = hashlib.sha256(f"{model}:{reply}:{created}".encode()).hexdigest()[:24]
        return {
            "id": f"cmpl-mock{identity}",
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": "mock",
            "choices": [
                {"index": index, "text": reply, "logprobs": None, "finish_reason": finish}
                for index in range(count)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    @staticmethod
    def _embeddings(body: dict[str, Any], *, deployment: Deployment) -> dict[str, Any]:
        raw = body.get("input")
        inputs = raw if isinstance(raw, list) else [raw]
        texts = [i if isinstance(i, str) else " ".join(map(str, i or [])) for i in inputs]
        dimensions = int(body.get("dimensions") or deployment.params.get("dimensions") or 16)
        data = []
        for index, text in enumerate(texts):
            vector = _embedding(text, dimensions)
            embedding: list[float] | str = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(mock_token_count(t) for t in texts)
        return {
            "object": "list",
            "data": data,
            "model": deployment.upstream_model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @staticmethod
    def _moderation(body: dict[str, Any], *, model: str) -> dict[str, Any]:
        raw = body.get("input")
        inputs = raw if isinstance(raw, list) else [raw]
        results = []
        for item in inputs:
            text = item if isinstance(item, str) else str(item)
            flagged = "violence" in text.lower()
            results.append(
                {
                    "flagged": flagged,
                    "categories": {c: flagged and c == "violence" for c in _MODERATION_CATEGORIES},
                    "category_scores": {
                        c: 0.99 if flagged and c == "violence" else 0.0001
                        for c in _MODERATION_CATEGORIES
                    },
                    "category_applied_input_types": {c: ["text"] for c in _MODERATION_CATEGORIES},
                }
            )
        identity = hashlib.sha256(repr(inputs).encode()).hexdigest()[:24]
        return {"id": f"modr-mock{identity}", "model": model, "results": results}

    @staticmethod
    def _rerank(body: dict[str, Any], *, model: str) -> dict[str, Any]:
        query = set(w.lower() for w in mock_tokens(str(body.get("query") or "")))
        documents = body.get("documents") or []
        scored = []
        for index, document in enumerate(documents):
            text = document if isinstance(document, str) else str(document.get("text", ""))
            words = [w.lower() for w in mock_tokens(text)]
            score = len(query.intersection(words)) / max(1, len(query))
            scored.append({"index": index, "relevance_score": round(score, 6)})
        scored.sort(key=lambda item: (-item["relevance_score"], item["index"]))
        top_n = body.get("top_n")
        if isinstance(top_n, int) and top_n > 0:
            scored = scored[:top_n]
        if body.get("return_documents"):
            for item in scored:
                document = documents[item["index"]]
                item["document"] = {"text": document} if isinstance(document, str) else document
        tokens = mock_token_count(str(body.get("query") or "")) + sum(
            mock_token_count(str(d)) for d in documents
        )
        identity = hashlib.sha256(repr(body.get("query")).encode()).hexdigest()[:24]
        return {
            "id": f"rerank-mock{identity}",
            "model": model,
            "results": scored,
            "meta": {"billed_units": {"search_units": 1}},
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
