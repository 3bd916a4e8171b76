"""A chat completion stream as the Responses API's event stream, in OpenAI's order.

`response.created`, `response.in_progress`; for each output item `response.output_item.added`,
its content (`response.content_part.added`, `response.output_text.delta`...,
`response.output_text.done`, `response.content_part.done`; a function call's
`response.function_call_arguments.delta`... and `.done`; reasoning's
`response.reasoning_text.delta`... and `.done`) and `response.output_item.done`; then
`response.completed` (or `response.incomplete` when the answer was cut short, `response.failed`
when the stream failed). Every event has its `sequence_number`, from 0.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.responses_api.translate import (
    INCOMPLETE_REASONS,
    function_call_item,
    new_id,
    output_text_part,
    reasoning_item,
    response_finish,
    usage_from_chat,
)


def sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class _Item:
    """An output item being streamed: its index, id and what it accumulated."""

    __slots__ = ("call_id", "id", "index", "kind", "name", "text")

    def __init__(self, kind: str, index: int, item_id: str) -> None:
        self.kind = kind
        self.index = index
        self.id = item_id
        self.text = ""  # the message's text, the reasoning, or the call's arguments
        self.call_id = ""
        self.name = ""


class EventTranslator:
    """Feed it the chat chunks (dicts) of one stream; it returns the events to send."""

    def __init__(self, shell: dict[str, Any]) -> None:
        self.shell = shell
        self.sequence = 0
        self.output: list[dict[str, Any]] = []  # finished items, in output order
        self.final: dict[str, Any] | None = None  # the finished Response object
        self._open: list[_Item] = []  # items started and not done, in output order
        self._message: _Item | None = None
        self._reasoning: _Item | None = None
        self._calls: dict[int, _Item] = {}  # chat tool call index -> its item
        self._count = 0  # output items started
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        self._model: str | None = None
        self._thinking_blocks: list[Any] = []  # a provider's signed thinking (Anthropic's)
        self._indices: dict[str, int] = {}  # item id -> output index
        self.usage_total: dict[str, Any] | None = None  # several turns' usage, added up

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        return [
            self._event("response.created", response=self.shell),
            self._event("response.in_progress", response=self.shell),
        ]

    def _item_start(
        self, kind: str, prefix: str, shown: dict[str, Any]
    ) -> tuple[_Item, dict[str, Any]]:
        item = _Item(kind, self._count, new_id(prefix))
        self._indices[item.id] = item.index
        self._count += 1
        self._open.append(item)
        shown = {"id": item.id, **shown}
        return item, self._event("response.output_item.added", output_index=item.index, item=shown)

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self._model = chunk["model"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # the Responses API has one answer
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
            delta = choice.get("delta")
            if not isinstance(delta, dict):
                continue
            blocks = delta.get("thinking_blocks")
            if isinstance(blocks, list):
                self._thinking_blocks += blocks
            reasoning = delta.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                events += self._reasoning_delta(reasoning)
            content = delta.get("content")
            if isinstance(content, str) and content:
                events += self._text_delta(content)
            for call in delta.get("tool_calls") or ():
                if isinstance(call, dict):
                    events += self._call_delta(call)
        return events

    def _reasoning_delta(self, text: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        item = self._reasoning
        if item is None:
            shown = {"type": "reasoning", "summary": [], "content": [], "status": "in_progress"}
            item, added = self._item_start("reasoning", "rs", shown)
            self._reasoning = item
            events.append(added)
        item.text += text
        events.append(
            self._event(
                "response.reasoning_text.delta",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                delta=text,
            )
        )
        return events

    def _message_open(self) -> list[dict[str, Any]]:
        events = self._close(self._reasoning)
        shown = {"type": "message", "status": "in_progress", "role": "assistant", "content": []}
        item, added = self._item_start("message", "msg", shown)
        self._message = item
        events.append(added)
        events.append(
            self._event(
                "response.content_part.added",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                part=output_text_part(""),
            )
        )
        return events

    def _text_delta(self, text: str) -> list[dict[str, Any]]:
        events = self._message_open() if self._message is None else []
        item = self._message
        assert item is not None
        item.text += text
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                delta=text,
                logprobs=[],
            )
        )
        return events

    def _call_delta(self, call: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        index = call.get("index", len(self._calls))
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        item = self._calls.get(index)
        if item is None:
            events += self._close(self._reasoning)
            events += self._close(self._message)
            call_id = str(call.get("id") or new_id("call"))
            name = str(function.get("name") or "")
            shown = function_call_item("", call_id=call_id, name=name, arguments="")
            shown["status"] = "in_progress"
            del shown["id"]
            item, added = self._item_start("function_call", "fc", shown)
            item.call_id, item.name = call_id, name
            self._calls[index] = item
            events.append(added)
        elif isinstance(function.get("name"), str) and not item.name:
            item.name = function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            item.text += arguments
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=item.index,
                    delta=arguments,
                )
            )
        return events

    def _close(self, item: _Item | None, status: str = "completed") -> list[dict[str, Any]]:
        """The events that finish an item; none when it is not open. `status`: a message's or a
        function call's (`incomplete`: the one the model was writing when cut short)."""
        if item is None or item not in self._open:
            return []
        self._open.remove(item)
        events: list[dict[str, Any]] = []
        where = {"item_id": item.id, "output_index": item.index}
        if item.kind == "message":
            part = output_text_part(item.text)
            events.append(
                self._event(
                    "response.output_text.done",
                    **where,
                    content_index=0,
                    text=item.text,
                    logprobs=[],
                )
            )
            events.append(
                self._event("response.content_part.done", **where, content_index=0, part=part)
            )
            done = {
                "id": item.id,
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": [part],
            }
        elif item.kind == "reasoning":
            events.append(
                self._event(
                    "response.reasoning_text.done", **where, content_index=0, text=item.text
                )
            )
            done = reasoning_item(item.id, item.text, self._thinking_blocks)
        else:
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    **where,
                    name=item.name,
                    arguments=item.text,
                )
            )
            done = function_call_item(
                item.id, call_id=item.call_id, name=item.name, arguments=item.text, status=status
            )
        self.output.append(done)
        events.append(self._event("response.output_item.done", output_index=item.index, item=done))
        return events

    def finish(self) -> list[dict[str, Any]]:
        """The stream ended whole: every open item done, then `response.completed` (or
        `response.incomplete`)."""
        events: list[dict[str, Any]] = []
        if self._count == 0:  # an empty answer is still one (empty) message
            events += self._message_open()
        cut = INCOMPLETE_REASONS.get(self._finish_reason or "") is not None
        last = max(self._open, key=lambda item: item.index, default=None)
        for item in list(self._open):
            events += self._close(item, "incomplete" if cut and item is last else "completed")
        self.output.sort(key=lambda item: self._index_of(item["id"]))
        if self._reasoning is not None and self._thinking_blocks:  # blocks after the item closed
            for index, done in enumerate(self.output):
                if done["id"] == self._reasoning.id:
                    self.output[index] = reasoning_item(
                        done["id"], self._reasoning.text, self._thinking_blocks
                    )
        self.final = response_finish(
            self.shell,
            output=self.output,
            usage=usage_from_chat(self.usage_total or self._usage),
            finish_reason=self._finish_reason,
            model=self._model,
        )
        kind = (
            "response.completed" if self.final["status"] == "completed" else "response.incomplete"
        )
        events.append(self._event(kind, response=self.final))
        return events

    def _index_of(self, item_id: str) -> int:
        return self._indices.get(item_id, 0)

    # ---- the hosted file_search tool (file_search.py runs it between model turns) ----

    def file_search_start(self, queries: list[str]) -> tuple[str, int, list[dict[str, Any]]]:
        """A `file_search_call` item starts (what came before it is done): its id, its output
        index, and its events up to `response.file_search_call.searching`."""
        events = self._close(self._reasoning) + self._close(self._message)
        self._message = self._reasoning = None  # the next turn's text is a message of its own
        shown = {"type": "file_search_call", "status": "in_progress", "queries": queries}
        item, added = self._item_start("file_search_call", "fs", {**shown, "results": None})
        self._open.remove(item)  # finished by file_search_done, never by _close
        where = {"item_id": item.id, "output_index": item.index}
        events += [
            added,
            self._event("response.file_search_call.in_progress", **where),
            self._event("response.file_search_call.searching", **where),
        ]
        return item.id, item.index, events

    def file_search_done(self, done: dict[str, Any], output_index: int) -> list[dict[str, Any]]:
        """The search ran: `done` is the finished `file_search_call` item."""
        self.output.append(done)
        where = {"item_id": done["id"], "output_index": output_index}
        return [
            self._event("response.file_search_call.completed", **where),
            self._event("response.output_item.done", output_index=output_index, item=done),
        ]

    def fail(self, error: dict[str, Any]) -> list[dict[str, Any]]:
        """The stream failed midway: `response.failed`, with the error as OpenAI reports one."""
        failed = {
            **self.shell,
            "status": "failed",
            "output": self.output,
            "usage": usage_from_chat(self._usage) if self._usage else None,
            "error": {
                "code": str(error.get("code") or error.get("type") or "server_error"),
                "message": str(error.get("message") or "The response failed."),
            },
        }
        self.final = failed
        return [self._event("response.failed", response=failed)]
