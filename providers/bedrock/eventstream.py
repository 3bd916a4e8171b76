"""AWS's binary `application/vnd.amazon.eventstream` framing, decoded by botocore.

botocore's `EventStreamBuffer` verifies both CRCs, the length limits and the headers. It copies
all it holds on every `add_data`, so a large message arriving in many small reads would cost a
copy per read: `EventStreamDecoder` hands it each message in two pieces instead, the 12-byte
prelude as soon as it is there (a corrupt prelude fails at once, not after the bytes it claims)
and the rest once all of it has arrived.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterator

from botocore.eventstream import (
    ChecksumMismatch,
    EventStreamBuffer,
    EventStreamMessage,
    ParserError,
)

PRELUDE_LENGTH = 12
CRC_LENGTH = 4

EventMessage = EventStreamMessage  # `.headers` (dict) and `.payload` (bytes)


class EventStreamError(Exception):
    """The byte stream is not valid eventstream framing."""


class EventStreamDecoder:
    """Feed raw bytes as they arrive; complete, CRC-checked messages come out in order."""

    def __init__(self) -> None:
        self._parser = EventStreamBuffer()
        self._pending = bytearray()
        self._wanted = 0  # bytes of the current message after its prelude; 0: none begun

    def feed(self, data: bytes) -> Iterator[EventMessage]:
        """Lazily, so the messages before a corrupt one are delivered before the error."""
        self._pending += data
        while True:
            if not self._wanted:
                if len(self._pending) < PRELUDE_LENGTH:
                    return
                self._wanted = self._prelude_take()
            if len(self._pending) < self._wanted:
                return
            rest = bytes(self._pending[: self._wanted])
            del self._pending[: self._wanted]
            self._wanted = 0
            self._parser.add_data(rest)
            message = self._next("message")
            if message is not None:  # always: botocore holds exactly this whole message
                yield message

    def _prelude_take(self) -> int:
        prelude = bytes(self._pending[:PRELUDE_LENGTH])
        del self._pending[:PRELUDE_LENGTH]
        total, headers_length = struct.unpack_from(">II", prelude)
        if total < PRELUDE_LENGTH + headers_length + CRC_LENGTH:  # botocore assumes it is not
            raise EventStreamError("message length smaller than its parts")
        self._parser.add_data(prelude)
        self._next("prelude")  # checks its CRC and lengths; no message is complete yet
        return total - PRELUDE_LENGTH

    def _next(self, part: str) -> EventMessage | None:
        try:
            return next(self._parser, None)
        except ChecksumMismatch as exc:
            raise EventStreamError(f"{part} CRC mismatch") from exc
        except ParserError as exc:  # lengths over botocore's limits, a duplicate header
            raise EventStreamError(str(exc)) from exc
        except (struct.error, KeyError, IndexError, UnicodeDecodeError, ValueError) as exc:
            raise EventStreamError("malformed headers") from exc

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message still buffered."""
        return len(self._pending) + (PRELUDE_LENGTH if self._wanted else 0)


async def eventstream_messages(chunks: AsyncIterator[bytes]) -> AsyncIterator[EventMessage]:
    decoder = EventStreamDecoder()
    async for chunk in chunks:
        for message in decoder.feed(chunk):
            yield message
    if decoder.pending:
        raise EventStreamError("the stream ended inside a message")
