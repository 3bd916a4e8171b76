"""Cohere v2 chat stream events → OpenAI `chat.completion.chunk` dicts.

`message-start` opens the message (its `id` names the completion); `content-delta` text becomes
`content` (a thinking block's deltas `reasoning_content`); `tool-plan-delta` becomes
`reasoning_content`; `tool-call-start` opens a tool call
(id and name in its first delta), `tool-call-delta` streams its arguments; `citation-start`
passes the citation through as a `citations` delta; `message-end` gives the finish reason and
then a usage-only chunk. Events without content (`content-start`/`-end`, `tool-call-end`,
`citation-end`) produce nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from providers.cohere.translate import PROVIDER, completion_id, finish_reason, usage_to_openai
from providers.errors import UpstreamError, secret_redact


class StreamTranslator:
    def __init__(
        self, *, model: str, created: int | None = None, secrets: Sequence[str] = ()
    ) -> None:
        self.created = int(time.time()) if created is None else created
        self.secrets = secrets  # the deployment's, scrubbed from an error's message
        self.model = model
        self.id = ""
        self.finished = False

    def _chunk(self, delta: dict[str, Any], *, finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        message = (event.get("delta") or {}).get("message") or {}
        if kind == "message-start":
            self.id = completion_id(str(event.get("id", "")))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content-delta":
            part = message.get("content") or {}
            if part.get("thinking"):  # a reasoning model's thinking block
                return [self._chunk({"reasoning_content": part["thinking"]})]
            text = part.get("text") or ""
            return [self._chunk({"content": text})] if text else []
        if kind == "tool-plan-delta":
            plan = message.get("tool_plan") or ""
            return [self._chunk({"reasoning_content": plan})] if plan else []
        if kind == "tool-call-start":
            call = message.get("tool_calls") or {}
            function = call.get("function") or {}
            opened = {
                "index": int(event.get("index", 0)),
                "id": call.get("id"),
                "type": "function",
                "function": {
                    "name": function.get("name"),
                    "arguments": function.get("arguments") or "",
                },
            }
            return [self._chunk({"tool_calls": [opened]})]
        if kind == "tool-call-delta":
            arguments = ((message.get("tool_calls") or {}).get("function") or {}).get("arguments")
            if not arguments:
                return []
            call = {"index": int(event.get("index", 0)), "function": {"arguments": arguments}}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "citation-start":
            citation = message.get("citations")
            return [self._chunk({"citations": [citation]})] if citation else []
        if kind == "message-end":
            self.finished = True
            delta = event.get("delta") or {}
            if delta.get("finish_reason") == "ERROR" and delta.get("error"):
                raise UpstreamError(
                    f"{PROVIDER} stream error: {secret_redact(str(delta['error']), self.secrets)}",
                    provider=PROVIDER,
                    code="upstream_error",
                )
            usage = self._chunk({})
            usage["choices"] = []
            usage["usage"] = usage_to_openai(delta.get("usage") or {})
            return [self._chunk({}, finish=finish_reason(delta.get("finish_reason"))), usage]
        return []

    def premature_end_error(self) -> UpstreamError:
        return UpstreamError(
            f"{PROVIDER} stream ended before message-end", provider=PROVIDER, code="upstream_error"
        )
