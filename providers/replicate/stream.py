"""Replicate's prediction event stream (`urls.stream`): SSE with named events.

`output` events carry raw text (not JSON; several `data:` lines are joined with newlines),
`error` carries a JSON `{"detail": ...}`, `done` ends the stream (its JSON may name a `reason`:
`canceled` or `error`). The generic parser keeps only data, so this one keeps the event names.
"""

from __future__ import annotations


class NamedSSEParser:
    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        buffer = (self._buffer + chunk).replace(b"\r\n", b"\n")
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        events: list[tuple[str, str]] = []
        for raw in lines:
            line = raw.decode("utf-8", errors="replace")
            if not line:
                if self._data or self._event:
                    events.append((self._event or "message", "\n".join(self._data)))
                self._event, self._data = "", []
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    self._event = value
                elif name == "data":
                    self._data.append(value)
        return events
