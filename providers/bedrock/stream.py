"""ConverseStream events → OpenAI `chat.completion.chunk` dicts.

One `StreamTranslator` per response, fed decoded eventstream messages. `messageStart` opens the
assistant message; `contentBlockStart` with a `toolUse` opens a tool call (OpenAI's `index`
counts tool calls, not Bedrock's block index; id and name come in the first delta); text deltas
become `content`, tool input deltas `arguments` (the JSON-mode tool's input streams as
`content`), reasoning text `reasoning_content`, and a reasoning block's signature (or redacted
content) a `thinking_blocks` delta holding the whole block, as the Anthropic adapter streams it;
`messageStop` gives the finish reason and
`metadata` ends with a usage-only chunk. `exception` messages raise.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from providers.bedrock.errors import PROVIDER, stream_exception_error
from providers.bedrock.eventstream import EventMessage
from providers.bedrock.translate import (
    JSON_TOOL_NAME,
    completion_id,
    finish_reason,
    thinking_block,
    usage_to_openai,
)
from providers.errors import UpstreamError, secret_redact


class StreamTranslator:
    def __init__(
        self,
        *,
        model: str,
        request_id: str,
        created: int | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        self.created = int(time.time()) if created is None else created
        self.secrets = secrets  # the deployment's, scrubbed from an exception's message
        self.id = completion_id(request_id)
        self.model = model
        self.stopped = False
        self.finished = False
        self._blocks: dict[int, dict[str, Any]] = {}
        self._thinking: dict[int, str] = {}  # reasoning text so far, per content block
        self._tool_calls = 0
        self._stop_reason: str | None = None

    def _chunk(self, delta: dict[str, Any], *, finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def feed(self, message: EventMessage) -> list[dict[str, Any]]:
        kind = message.headers.get(":message-type", "event")
        if kind == "exception":
            raise stream_exception_error(
                exception=str(message.headers.get(":exception-type", "")),
                payload=message.payload,
                secrets=self.secrets,
            )
        if kind == "error":
            text = secret_redact(str(message.headers.get(":error-message") or ""), self.secrets)
            code = str(message.headers.get(":error-code") or "error")
            raise UpstreamError(
                f"{PROVIDER} stream error {code}: {text}", provider=PROVIDER, code="upstream_error"
            )
        try:
            event = orjson.loads(message.payload) if message.payload else {}
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(
                f"{PROVIDER} sent an invalid stream event.", provider=PROVIDER
            ) from exc
        return self._event(str(message.headers.get(":event-type", "")), event)

    def _event(self, name: str, event: dict[str, Any]) -> list[dict[str, Any]]:
        if name == "messageStart":
            return [self._chunk({"role": event.get("role", "assistant"), "content": ""})]
        if name == "contentBlockStart":
            index = int(event.get("contentBlockIndex", 0))
            use = (event.get("start") or {}).get("toolUse")
            if not use:
                return []
            if use.get("name") == JSON_TOOL_NAME:
                self._blocks[index] = {"kind": "json"}
                return []
            position = self._tool_calls
            self._tool_calls += 1
            self._blocks[index] = {"kind": "tool", "position": position}
            call = {
                "index": position,
                "id": use.get("toolUseId"),
                "type": "function",
                "function": {"name": use.get("name"), "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if name == "contentBlockDelta":
            return self._delta(int(event.get("contentBlockIndex", 0)), event.get("delta") or {})
        if name == "messageStop":
            self.stopped = True
            reason = finish_reason(event.get("stopReason"), tool_calls=self._tool_calls > 0)
            return [self._chunk({}, finish=reason)]
        if name == "metadata":
            self.finished = True
            chunk = self._chunk({})
            chunk["choices"] = []
            chunk["usage"] = usage_to_openai(event.get("usage") or {})
            return [chunk]
        return []  # contentBlockStop and event types added later by AWS

    def _delta(self, index: int, delta: dict[str, Any]) -> list[dict[str, Any]]:
        if "text" in delta:
            return [self._chunk({"content": delta["text"]})] if delta["text"] else []
        if "toolUse" in delta:
            partial = str((delta["toolUse"] or {}).get("input") or "")
            state = self._blocks.get(index, {})
            if not partial:
                return []
            if state.get("kind") == "json":
                return [self._chunk({"content": partial})]
            call = {"index": state.get("position", 0), "function": {"arguments": partial}}
            return [self._chunk({"tool_calls": [call]})]
        reasoning = delta.get("reasoningContent") or {}
        if reasoning.get("text"):
            self._thinking[index] = self._thinking.get(index, "") + reasoning["text"]
            return [self._chunk({"reasoning_content": reasoning["text"]})]
        if reasoning.get("signature"):
            block = thinking_block(self._thinking.get(index, ""), reasoning["signature"])
            return [self._chunk({"thinking_blocks": [block]})]
        if reasoning.get("redactedContent"):
            block = {"type": "redacted_thinking", "data": reasoning["redactedContent"]}
            return [self._chunk({"thinking_blocks": [block]})]
        return []

    def premature_end_error(self) -> UpstreamError:
        return UpstreamError(
            f"{PROVIDER} stream ended before messageStop", provider=PROVIDER, code="upstream_error"
        )
