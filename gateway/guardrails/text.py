"""Where the text is in each endpoint's request and answer: the slots a guardrail reads and, when
it masks or restores, rewrites. A slot is (container, key): `container[key]` is a string."""

from __future__ import annotations

from typing import Any

from providers.base import Endpoint

Slot = tuple[Any, Any]
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})


def _content_slots(holder: dict[str, Any], key: str, slots: list[Slot]) -> None:
    """A string, or a list of content parts whose text parts are slots."""
    content = holder.get(key)
    if isinstance(content, str):
        slots.append((holder, key))
    elif isinstance(content, list):
        for part in content:
            if (
                isinstance(part, dict)
                and part.get("type") in _TEXT_PARTS
                and isinstance(part.get("text"), str)
            ):
                slots.append((part, "text"))


def _strings_slots(holder: dict[str, Any], key: str, slots: list[Slot]) -> None:
    """A string or a list of strings (token arrays are not text)."""
    value = holder.get(key)
    if isinstance(value, str):
        slots.append((holder, key))
    elif isinstance(value, list):
        slots.extend((value, index) for index, item in enumerate(value) if isinstance(item, str))


def request_slots(endpoint: Endpoint, body: dict[str, Any]) -> list[Slot]:
    """The text of a request: chat messages (and /v1/messages, translated to chat before the
    pipeline), a completion's prompt, embeddings' input, a Responses request's input and
    instructions."""
    slots: list[Slot] = []
    if endpoint == Endpoint.CHAT:
        for message in body.get("messages") or ():
            if isinstance(message, dict):
                _content_slots(message, "content", slots)
    elif endpoint == Endpoint.COMPLETIONS:
        _strings_slots(body, "prompt", slots)
    elif endpoint == Endpoint.EMBEDDINGS:
        _strings_slots(body, "input", slots)
    elif endpoint == Endpoint.RESPONSES:
        if isinstance(body.get("instructions"), str):
            slots.append((body, "instructions"))
        items = body.get("input")
        if isinstance(items, str):
            slots.append((body, "input"))
        elif isinstance(items, list):
            for item in items:
                if isinstance(item, dict):
                    _content_slots(item, "content", slots)
    return slots


def answer_slots(endpoint: Endpoint, answer: dict[str, Any]) -> list[Slot]:
    """The text of an answer: chat messages' content and tool call arguments, completions'
    text, a Responses answer's output text."""
    slots: list[Slot] = []
    if endpoint == Endpoint.RESPONSES:
        for item in answer.get("output") or ():
            if isinstance(item, dict):
                _content_slots(item, "content", slots)
        return slots
    for choice in answer.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            slots.append((choice, "text"))
        message = choice.get("message")
        if isinstance(message, dict):
            _content_slots(message, "content", slots)
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                    slots.append((function, "arguments"))
    return slots
