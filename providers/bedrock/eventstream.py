"""A decoder for AWS's binary `application/vnd.amazon.eventstream` framing.

Each message is: a 12-byte prelude (total length, headers length, both big-endian uint32, then
the CRC32 of those 8 bytes), the headers, the payload, and the CRC32 of everything before it.
A header is a 1-byte name length, the name, a 1-byte value type and the value (strings and
byte arrays carry a 2-byte length). Both CRCs are verified; a mismatch means a corrupted stream.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

PRELUDE_LENGTH = 12
CRC_LENGTH = 4
MAX_MESSAGE_LENGTH = 16 * 1024 * 1024
MAX_HEADERS_LENGTH = 128 * 1024


class EventStreamError(Exception):
    """The byte stream is not valid eventstream framing."""


@dataclass(frozen=True, slots=True)
class EventMessage:
    headers: dict[str, Any]
    payload: bytes


def _headers_parse(data: bytes) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    offset = 0
    try:
        while offset < len(data):
            name_length = data[offset]
            name = data[offset + 1 : offset + 1 + name_length].decode("utf-8")
            offset += 1 + name_length
            kind = data[offset]
            offset += 1
            value: Any
            if kind in (0, 1):
                value = kind == 0
            elif kind == 2:
                value = struct.unpack_from(">b", data, offset)[0]
                offset += 1
            elif kind == 3:
                value = struct.unpack_from(">h", data, offset)[0]
                offset += 2
            elif kind == 4:
                value = struct.unpack_from(">i", data, offset)[0]
                offset += 4
            elif kind in (5, 8):  # int64, timestamp (ms since the epoch)
                value = struct.unpack_from(">q", data, offset)[0]
                offset += 8
            elif kind in (6, 7):
                (length,) = struct.unpack_from(">H", data, offset)
                raw = data[offset + 2 : offset + 2 + length]
                if len(raw) != length:
                    raise EventStreamError("truncated header value")
                value = raw.decode("utf-8") if kind == 7 else raw
                offset += 2 + length
            elif kind == 9:
                value = str(uuid.UUID(bytes=data[offset : offset + 16]))
                offset += 16
            else:
                raise EventStreamError(f"unknown header value type {kind}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as exc:
        raise EventStreamError("malformed headers") from exc
    return headers


class EventStreamDecoder:
    """Feed raw bytes as they arrive; complete, CRC-checked messages come out in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[EventMessage]:
        """Lazily, so the messages before a corrupt one are delivered before the error."""
        self._buffer.extend(data)
        while len(self._buffer) >= PRELUDE_LENGTH:
            total, headers_length, prelude_crc = struct.unpack_from(">III", self._buffer, 0)
            if zlib.crc32(self._buffer[:8]) != prelude_crc:
                raise EventStreamError("prelude CRC mismatch")
            if total > MAX_MESSAGE_LENGTH or headers_length > MAX_HEADERS_LENGTH:
                raise EventStreamError("message too large")
            if total < PRELUDE_LENGTH + headers_length + CRC_LENGTH:
                raise EventStreamError("message length smaller than its parts")
            if len(self._buffer) < total:
                break
            message = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = struct.unpack_from(">I", message, total - CRC_LENGTH)
            if zlib.crc32(message[: total - CRC_LENGTH]) != message_crc:
                raise EventStreamError("message CRC mismatch")
            headers_end = PRELUDE_LENGTH + headers_length
            yield EventMessage(
                headers=_headers_parse(message[PRELUDE_LENGTH:headers_end]),
                payload=message[headers_end : total - CRC_LENGTH],
            )

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message still buffered."""
        return len(self._buffer)


async def eventstream_messages(chunks: AsyncIterator[bytes]) -> AsyncIterator[EventMessage]:
    decoder = EventStreamDecoder()
    async for chunk in chunks:
        for message in decoder.feed(chunk):
            yield message
    if decoder.pending:
        raise EventStreamError("the stream ended inside a message")
