"""Anthropic's streaming events → OpenAI `chat.completion.chunk` dicts.

One `StreamTranslator` per response. `message_start` opens the assistant message; text and
thinking deltas become `content` and `reasoning_content` deltas; each `tool_use` block becomes a
tool call whose `index` counts tool calls (not Anthropic's block index) and whose `id` and name
arrive in its first delta, OpenAI's way; the JSON-mode tool's input streams as `content`;
`message_delta` gives the finish reason; `message_stop` ends with a usage-only chunk (the relay
drops it unless the client asked for usage). `ping` is ignored; an `error` event raises.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from providers.anthropic.errors import PROVIDER, stream_error
from providers.anthropic.translate import (
    JSON_TOOL_NAME,
    completion_id,
    finish_reason,
    usage_to_openai,
)
from providers.errors import UpstreamError


class StreamTranslator:
    def __init__(
        self, *, created: int | None = None, secrets: Sequence[str] = (), provider: str = PROVIDER
    ) -> None:
        self.created = int(time.time()) if created is None else created
        self.secrets = secrets  # the deployment's, scrubbed from an error event's message
        self.provider = provider
        self.id = ""
        self.model = ""
        self.usage: dict[str, Any] = {}
        self.finished = False
        self._blocks: dict[int, dict[str, Any]] = {}  # Anthropic block index → its state
        self._tool_calls = 0
        self._thinking: dict[int, str] = {}

    def _chunk(self, delta: dict[str, Any], *, finish_reason: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Translate one event (its parsed `data`) into zero or more chunks."""
        kind = event.get("type")
        if kind == "message_start":
            message = event.get("message") or {}
            self.id = completion_id(str(message.get("id", "")))
            self.model = str(message.get("model", ""))
            self.usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            return self._block_start(int(event.get("index", 0)), event.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(int(event.get("index", 0)), event.get("delta") or {})
        if kind == "message_delta":
            self.usage.update(
                {k: v for k, v in (event.get("usage") or {}).items() if v is not None}
            )
            stop_reason = (event.get("delta") or {}).get("stop_reason")
            reason = finish_reason(stop_reason, tool_calls=self._tool_calls > 0)
            return [self._chunk({}, finish_reason=reason)] if reason else []
        if kind == "message_stop":
            self.finished = True
            chunk = self._chunk({})
            chunk["choices"] = []
            chunk["usage"] = usage_to_openai(self.usage)
            return [chunk]
        if kind == "error":
            raise stream_error(
                error=event.get("error") or {}, secrets=self.secrets, provider=self.provider
            )
        return []  # ping, content_block_stop and event types added later by Anthropic

    def _block_start(self, index: int, block: dict[str, Any]) -> list[dict[str, Any]]:
        kind = block.get("type")
        if kind == "tool_use" and block.get("name") == JSON_TOOL_NAME:
            self._blocks[index] = {"kind": "json"}
            return []
        if kind == "tool_use":
            position = self._tool_calls
            self._tool_calls += 1
            self._blocks[index] = {"kind": "tool", "position": position}
            call = {
                "index": position,
                "id": block.get("id"),
                "type": "function",
                "function": {"name": block.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking":
            self._blocks[index] = {"kind": "thinking"}
            self._thinking[index] = str(block.get("thinking") or "")
            return []
        if kind == "redacted_thinking":
            return [self._chunk({"thinking_blocks": [block]})]
        self._blocks[index] = {"kind": str(kind)}
        text = block.get("text") if kind == "text" else None
        return [self._chunk({"content": text})] if text else []

    def _block_delta(self, index: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        kind = delta.get("type")
        state = self._blocks.get(index, {})
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "input_json_delta":
            partial = delta.get("partial_json", "")
            if not partial:
                return []
            if state.get("kind") == "json":
                return [self._chunk({"content": partial})]
            call = {"index": state.get("position", 0), "function": {"arguments": partial}}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking_delta":
            text = delta.get("thinking", "")
            self._thinking[index] = self._thinking.get(index, "") + text
            return [self._chunk({"reasoning_content": text})]
        if kind == "signature_delta":
            block = {
                "type": "thinking",
                "thinking": self._thinking.get(index, ""),
                "signature": delta.get("signature", ""),
            }
            return [self._chunk({"thinking_blocks": [block]})]
        return []

    def premature_end_error(self) -> UpstreamError:
        return UpstreamError(
            f"{self.provider} stream ended before message_stop",
            provider=self.provider,
            code="upstream_error",
        )
