"""Ogem's incremental use of botocore's eventstream decoder, on frames from the emulator's
independent encoder."""

from __future__ import annotations

import asyncio
import struct
import time
import zlib
from collections.abc import AsyncIterator

import orjson
import pytest

from providers.bedrock.eventstream import (
    EventStreamDecoder,
    EventStreamError,
    eventstream_messages,
)
from tests.emulators.bedrock_api import event_frame, exception_frame, frame_encode


def _frames() -> bytes:
    return b"".join(
        [
            event_frame("messageStart", {"role": "assistant"}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hé"}}),
            exception_frame("throttlingException", "Slow down"),
        ]
    )


def test_decodes_the_emulators_frames() -> None:
    ours = list(EventStreamDecoder().feed(_frames()))
    assert [m.headers.get(":event-type") for m in ours] == [
        "messageStart",
        "contentBlockDelta",
        None,
    ]
    assert ours[1].headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert orjson.loads(ours[1].payload) == {
        "contentBlockIndex": 0,
        "delta": {"text": "Hé"},
        "p": "abcdefghij",
    }
    assert ours[2].headers[":exception-type"] == "throttlingException"


def test_frames_split_at_every_byte_boundary() -> None:
    data = _frames()
    whole = [(m.headers, m.payload) for m in EventStreamDecoder().feed(data)]
    for cut in range(1, len(data)):
        decoder = EventStreamDecoder()
        parts = list(decoder.feed(data[:cut])) + list(decoder.feed(data[cut:]))
        assert [(m.headers, m.payload) for m in parts] == whole
        assert decoder.pending == 0


def test_a_message_comes_out_as_soon_as_its_last_byte_arrives() -> None:
    first = event_frame("messageStart", {"role": "assistant"})
    second = event_frame("messageStop", {"stopReason": "end_turn"})
    decoder = EventStreamDecoder()
    assert list(decoder.feed(first[:-1])) == []
    assert decoder.pending == len(first) - 1
    [message] = decoder.feed(first[-1:] + second[:5])
    assert message.headers[":event-type"] == "messageStart"
    assert decoder.pending == 5
    [message] = decoder.feed(second[5:])
    assert message.headers[":event-type"] == "messageStop"


def test_a_large_message_read_byte_by_byte_costs_linear_time() -> None:
    # Fed to botocore's buffer as it arrives, each byte would copy all before it: ~20 s here.
    text = "x" * 1_000_000
    big = event_frame("contentBlockDelta", {"delta": {"text": text}})
    decoder = EventStreamDecoder()
    started = time.monotonic()
    decoded = [m for i in range(len(big)) for m in decoder.feed(big[i : i + 1])]
    assert time.monotonic() - started < 5
    assert len(decoded) == 1 and orjson.loads(decoded[0].payload)["delta"]["text"] == text


def test_prelude_crc_mismatch_is_refused_before_the_rest_arrives() -> None:
    frame = bytearray(frame_encode({":event-type": "x"}, b"{}"))
    frame[9] ^= 0xFF
    with pytest.raises(EventStreamError, match=r"^prelude CRC mismatch$"):
        list(EventStreamDecoder().feed(bytes(frame[:12])))


def test_message_crc_mismatch_is_refused_after_the_good_messages() -> None:
    good = event_frame("messageStart", {"role": "assistant"})
    bad = bytearray(event_frame("messageStop", {"stopReason": "end_turn"}))
    bad[20] ^= 0x01
    decoded = []
    with pytest.raises(EventStreamError, match=r"^message CRC mismatch$"):
        for message in EventStreamDecoder().feed(good + bytes(bad)):
            decoded.append(message.headers[":event-type"])
    assert decoded == ["messageStart"]


def test_impossible_lengths_are_refused() -> None:
    prelude = struct.pack(">II", 10, 0)
    with pytest.raises(EventStreamError, match="smaller than its parts"):
        list(EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude))))
    prelude = struct.pack(">II", 64 * 1024 * 1024, 0)  # over botocore's payload limit
    with pytest.raises(EventStreamError, match="exceeded the maximum"):
        list(EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude))))


def test_malformed_headers_in_a_well_framed_message_are_refused() -> None:
    headers = b"\x05:typ\x0b"  # value type 11 does not exist
    total = 12 + len(headers) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers
    message += struct.pack(">I", zlib.crc32(message))
    with pytest.raises(EventStreamError, match="malformed headers"):
        list(EventStreamDecoder().feed(message))


def test_a_stream_ending_inside_a_message_is_an_error() -> None:
    async def chunks(data: bytes) -> AsyncIterator[bytes]:
        yield data

    async def collect(data: bytes) -> list[str]:
        return [m.headers[":event-type"] async for m in eventstream_messages(chunks(data))]

    first = event_frame("messageStart", {"role": "assistant"})
    assert asyncio.run(collect(first)) == ["messageStart"]
    for cut in (5, 12, len(first) - 1):
        with pytest.raises(EventStreamError, match="ended inside a message"):
            asyncio.run(collect(first + first[:cut]))
