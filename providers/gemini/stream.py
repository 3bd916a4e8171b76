"""Gemini's `streamGenerateContent?alt=sse` events → OpenAI `chat.completion.chunk` dicts.

Every event's data is a whole `GenerateContentResponse` holding the next piece of each
candidate: text parts become `content` deltas, thought parts `reasoning_content` deltas, and each
`functionCall` part (Gemini sends a call whole, never split) one tool call delta with its id,
name and complete arguments. A candidate's `finishReason` gives its finish chunk; the stream
ends with a usage-only chunk from the last `usageMetadata` (the relay drops it unless the client
asked for usage). Gemini's stream has no end marker: a body that ends before any finish reason
is a premature end. An `{"error": {...}}` event raises.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from providers.errors import UpstreamError
from providers.gemini.errors import stream_error
from providers.gemini.translate import completion_id, finish_reason, parts_split, usage_to_openai


class StreamTranslator:
    def __init__(
        self,
        *,
        provider: str,
        model: str,
        created: int | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.provider = provider
        self.model = model
        self.created = int(time.time()) if created is None else created
        self.secrets = secrets  # the deployment's, scrubbed from an error event's message
        self.id = ""
        self.usage: dict[str, Any] = {}
        self.finished = False
        self._opened: set[int] = set()
        self._tool_calls: dict[int, int] = {}  # candidate index → tool calls sent so far

    def _chunk(
        self, index: int, delta: dict[str, Any], *, reason: str | None = None
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": reason}
            ],
        }

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Translate one event (its parsed data) into zero or more chunks."""
        if isinstance(event.get("error"), dict):
            raise stream_error(provider=self.provider, error=event["error"], secrets=self.secrets)
        if not self.id:
            self.id = completion_id(event)
        self.model = event.get("modelVersion") or self.model
        if event.get("usageMetadata"):
            self.usage = dict(event["usageMetadata"])
        chunks: list[dict[str, Any]] = []
        candidates = event.get("candidates") or []
        for position, candidate in enumerate(candidates):
            chunks += self._candidate(int(candidate.get("index", position)), candidate)
        if not candidates and (event.get("promptFeedback") or {}).get("blockReason"):
            self.finished = True
            chunks.append(self._chunk(0, {"role": "assistant"}, reason="content_filter"))
        return chunks

    def _candidate(self, index: int, candidate: dict[str, Any]) -> list[dict[str, Any]]:
        chunks: list[dict[str, Any]] = []
        delta: dict[str, Any] = {}
        if index not in self._opened:
            self._opened.add(index)
            delta["role"] = "assistant"
        text, thoughts, calls = parts_split((candidate.get("content") or {}).get("parts") or [])
        if thoughts:
            delta["reasoning_content"] = thoughts
        if text or ("role" in delta and not calls):
            delta["content"] = text
        if calls:
            sent = self._tool_calls.get(index, 0)
            delta["tool_calls"] = [{"index": sent + i, **call} for i, call in enumerate(calls)]
            self._tool_calls[index] = sent + len(calls)
        if delta:
            chunks.append(self._chunk(index, delta))
        reason = finish_reason(
            candidate.get("finishReason"), tool_calls=self._tool_calls.get(index, 0) > 0
        )
        if reason:
            self.finished = True
            chunks.append(self._chunk(index, {}, reason=reason))
        return chunks

    def usage_chunk(self) -> dict[str, Any]:
        chunk = self._chunk(0, {})
        chunk["choices"] = []
        chunk["usage"] = usage_to_openai(self.usage)
        return chunk

    def premature_end_error(self) -> UpstreamError:
        return UpstreamError(
            f"{self.provider} stream ended before a finish reason",
            provider=self.provider,
            code="upstream_error",
        )
