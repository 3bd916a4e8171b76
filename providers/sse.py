"""Server-sent events parsing over raw byte chunks (the WHATWG event-stream format).

Chunks may split lines anywhere, including between ``\\r`` and ``\\n``. Lines starting with ``:``
are comments; several ``data:`` lines in one event are joined with ``\\n``; a blank line ends the
event. Only the ``data`` payload matters to the gateway, so events are yielded as that string.
"""

from __future__ import annotations

from collections.abc import AsyncIterator


class SSEParser:
    """Incremental parser: feed bytes, get the data payloads of the events they complete."""

    __slots__ = ("_buffer", "_data", "_event", "_pending_cr")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[str]:
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._pending_cr = chunk.endswith(b"\r")
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = buffer.split(b"\n")
        self._buffer = lines.pop()
        events: list[str] = []
        data = self._data
        # _line's rules inlined for the two lines nearly every event is made of (a hot loop).
        for raw in lines:
            if not raw:
                if data:
                    events.append(data[0] if len(data) == 1 else "\n".join(data))
                    data.clear()
            elif raw.startswith(b"data: "):
                data.append(raw[6:].decode("utf-8", errors="replace"))
            else:
                self._line(raw)
        return events

    def close(self) -> list[str]:
        """Flush an event left unterminated when the stream ended."""
        events: list[str] = []
        if self._buffer:
            payload = self._line(self._buffer)
            self._buffer = b""
            if payload is not None:
                events.append(payload)
        payload = self._line(b"")
        if payload is not None:
            events.append(payload)
        return events

    def _line(self, raw: bytes) -> str | None:
        if not raw:
            if not self._data:
                return None
            payload = "\n".join(self._data)
            self._data.clear()
            return payload
        if raw.startswith(b":"):
            return None
        name, sep, value = raw.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            self._data.append(value.decode("utf-8", errors="replace"))
        return None


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """The data payload of every event in a byte stream."""
    parser = SSEParser()
    async for chunk in chunks:
        for payload in parser.feed(chunk):
            yield payload
    for payload in parser.close():
        yield payload
