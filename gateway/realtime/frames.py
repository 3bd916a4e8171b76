"""Reading a Realtime event's `type` (and a delta's response and size) without parsing it.

The relay forwards every frame as it came and reads the contents of only a few event types
(gateway/realtime/session.py); the frames a voice session carries most are audio (an
`input_audio_buffer.append` up, a `response.output_audio.delta` down: kilobytes of base64 each),
which a JSON parse would read whole to learn one short field. These read the start of the frame
instead (a regular expression, one C call), and answer None whenever the start does not settle
it: the caller then parses the frame.
"""

from __future__ import annotations

import re

# How far into a frame the `type` is looked for (OpenAI's events, and Ogem's Live API
# translation's, name it first).
_HEAD = 256
# `type` among the object's first members, only plain ones before it (strings without escapes,
# numbers, literals): so it is certainly a top-level key, not a word in a string or a nested
# object's.
_TYPE = re.compile(
    r'\{(?:\s*"[^"\\]*"\s*:\s*(?:"[^"\\]*"|[-+.\w]+)\s*,)*?\s*"type"\s*:\s*"([^"\\]*)"'
)
_RESPONSE_ID = re.compile(r'"response_id"\s*:\s*"([^"\\]*)"')
_DELTA = re.compile(r'"delta"\s*:\s*"')


def event_type(text: str) -> str | None:
    """The top-level `type` of a JSON object event, read from the frame's start; None when the
    start does not show it for certain."""
    # The common case first, in two C calls: `type` is the first member.
    if text.startswith('{"type":"'):
        start = 9
    elif text.startswith('{"type": "'):
        start = 10
    else:
        found = _TYPE.match(text, 0, _HEAD)
        return found.group(1) if found is not None else None
    end = text.find('"', start, _HEAD)
    if end < 0:
        return None
    value = text[start:end]
    return None if "\\" in value else value


def delta_read(text: str) -> tuple[str, int] | None:
    """A delta event's `response_id` and the length of its `delta` (the API's delta events are
    flat objects: their keys are the top-level ones); None when the frame does not show them
    plainly (a delta with an escape in it: the caller parses it)."""
    at = text.find('"response_id"', 1, _HEAD * 2)
    response = _RESPONSE_ID.match(text, at) if at >= 0 else None
    at = text.find('"delta"', 1)
    delta = _DELTA.match(text, at) if at >= 0 else None
    if response is None or delta is None:
        return None
    begin = delta.end()
    end = text.find('"', begin)
    if end < 0 or text.find("\\", begin, end) >= 0:
        return None
    return response.group(1), end - begin
