"""The typed stream events of OpenAI's image and transcription endpoints.

With `stream: true`, `/v1/images/generations` and `/v1/images/edits` answer with
`image_generation.partial_image` / `image_generation.completed` events (`image_edit.*` for
edits) and `/v1/audio/transcriptions` with `transcript.text.delta` events and one
`transcript.text.done`: each event's `type` names it, and there is no `[DONE]`. An upstream that
does not stream these endpoints is answered in full and its answer becomes the same events
(`events_from_result`), so every provider can serve a streaming client.
"""

from __future__ import annotations

import re
import time
from typing import Any

from providers.base import Endpoint

EVENT_STREAM_ENDPOINTS = frozenset(
    {
        Endpoint.IMAGES_GENERATIONS,
        Endpoint.IMAGES_EDITS,
        Endpoint.AUDIO_TRANSCRIPTIONS,
        Endpoint.RESPONSES,
    }
)
# The events that end a Responses stream (`response.created` ... one of these).
RESPONSE_FINAL_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
# The request fields that ask for a stream: not sent to an upstream answered in full.
STREAM_FIELDS = ("stream", "stream_options", "partial_images")
_IMAGE_EVENT = {
    Endpoint.IMAGES_GENERATIONS: "image_generation",
    Endpoint.IMAGES_EDITS: "image_edit",
}
_WORDS = re.compile(r"\S+\s*")


def event_is_final(event: dict[str, Any]) -> bool:
    """Whether `event` ends its stream's answer (an image completed, the transcript done)."""
    kind = event.get("type")
    if not isinstance(kind, str):
        return False
    if kind.startswith("response."):  # a Responses stream's tool calls also end in .completed
        return kind in RESPONSE_FINAL_EVENTS
    return kind.endswith((".completed", "transcript.text.done"))


def image_event(
    *, endpoint: Endpoint, body: dict[str, Any], b64_json: str, created: int, partial: int | None
) -> dict[str, Any]:
    """One image event: partial (`partial` is its 0-based index) or completed (`partial` None;
    the caller adds `usage`). The settings echo the request's, `auto` when it named none."""
    kind = "partial_image" if partial is not None else "completed"
    event: dict[str, Any] = {
        "type": f"{_IMAGE_EVENT[endpoint]}.{kind}",
        "b64_json": b64_json,
        "created_at": created,
        "size": str(body.get("size") or "auto"),
        "quality": str(body.get("quality") or "auto"),
        "background": str(body.get("background") or "auto"),
        "output_format": str(body.get("output_format") or "png"),
    }
    if partial is not None:
        event["partial_image_index"] = partial
    return event


def _images_usage(usage: Any) -> dict[str, Any]:
    if isinstance(usage, dict):
        return usage
    return {
        "total_tokens": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "input_tokens_details": {"text_tokens": 0, "image_tokens": 0},
    }


def transcript_events(text: str, *, usage: Any = None) -> list[dict[str, Any]]:
    """A whole transcript as OpenAI streams one: a delta per word, then the done event."""
    events: list[dict[str, Any]] = [
        {"type": "transcript.text.delta", "delta": word} for word in _WORDS.findall(text)
    ]
    done: dict[str, Any] = {"type": "transcript.text.done", "text": text}
    if isinstance(usage, dict):
        done["usage"] = usage
    events.append(done)
    return events


def events_from_result(
    *, endpoint: Endpoint, body: dict[str, Any], result: dict[str, Any] | bytes
) -> list[dict[str, Any]]:
    """A complete answer of an event-streaming endpoint as the events OpenAI would stream: one
    completed event per image (each carrying the answer's usage, zeros when it had none; an
    image given only by `url` keeps it beside an empty `b64_json`), or the transcript's."""
    if endpoint == Endpoint.AUDIO_TRANSCRIPTIONS:
        if isinstance(result, bytes):  # response_format text, srt or vtt
            return transcript_events(result.decode("utf-8", errors="replace"))
        return transcript_events(str(result.get("text") or ""), usage=result.get("usage"))
    answer = result if isinstance(result, dict) else {}
    created = answer.get("created")
    if not isinstance(created, int):
        created = int(time.time())
    usage = _images_usage(answer.get("usage"))
    events = []
    for item in answer.get("data") or []:
        if not isinstance(item, dict):
            continue
        event = image_event(
            endpoint=endpoint,
            body=body,
            b64_json=str(item.get("b64_json") or ""),
            created=created,
            partial=None,
        )
        if item.get("url"):
            event["url"] = item["url"]
        event["usage"] = usage
        events.append(event)
    return events
