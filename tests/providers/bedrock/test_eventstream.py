"""Ogem's eventstream decoder against frames from the emulator's independent encoder and
against botocore's own parser."""

from __future__ import annotations

import struct
import uuid
import zlib

import orjson
import pytest
from botocore.eventstream import EventStreamBuffer

from providers.bedrock.eventstream import EventStreamDecoder, EventStreamError
from tests.emulators.bedrock_api import event_frame, exception_frame, frame_encode


def _frames() -> bytes:
    return b"".join(
        [
            event_frame("messageStart", {"role": "assistant"}),
            event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hé"}}),
            exception_frame("throttlingException", "Slow down"),
        ]
    )


def test_decodes_what_botocore_decodes() -> None:
    data = _frames()
    ours = list(EventStreamDecoder().feed(data))
    botocore_buffer = EventStreamBuffer()
    botocore_buffer.add_data(data)
    theirs = list(botocore_buffer)
    assert [m.headers for m in ours] == [m.headers for m in theirs]
    assert [m.payload for m in ours] == [m.payload for m in theirs]
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


def test_every_header_value_type() -> None:
    raw_uuid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = b"".join(
        [
            b"\x01t\x00",
            b"\x01f\x01",
            b"\x01b\x02" + struct.pack(">b", -3),
            b"\x01s\x03" + struct.pack(">h", -300),
            b"\x01i\x04" + struct.pack(">i", 70000),
            b"\x01l\x05" + struct.pack(">q", 2**40),
            b"\x01y\x06" + struct.pack(">H", 3) + b"\x00\x01\x02",
            b"\x01w\x07" + struct.pack(">H", 2) + b"ok",
            b"\x01d\x08" + struct.pack(">q", 1700000000000),
            b"\x01u\x09" + raw_uuid.bytes,
        ]
    )
    total = 12 + len(headers) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + headers
    message += struct.pack(">I", zlib.crc32(message))
    [decoded] = EventStreamDecoder().feed(message)
    assert decoded.headers == {
        "t": True,
        "f": False,
        "b": -3,
        "s": -300,
        "i": 70000,
        "l": 2**40,
        "y": b"\x00\x01\x02",
        "w": "ok",
        "d": 1700000000000,
        "u": str(raw_uuid),
    }
    assert decoded.payload == b""


def test_prelude_crc_mismatch_is_refused() -> None:
    frame = bytearray(frame_encode({":event-type": "x"}, b"{}"))
    frame[9] ^= 0xFF
    with pytest.raises(EventStreamError, match="prelude CRC mismatch"):
        list(EventStreamDecoder().feed(bytes(frame)))


def test_message_crc_mismatch_is_refused_after_the_good_messages() -> None:
    good = event_frame("messageStart", {"role": "assistant"})
    bad = bytearray(event_frame("messageStop", {"stopReason": "end_turn"}))
    bad[20] ^= 0x01
    decoded = []
    with pytest.raises(EventStreamError, match="message CRC mismatch"):
        for message in EventStreamDecoder().feed(good + bytes(bad)):
            decoded.append(message.headers[":event-type"])
    assert decoded == ["messageStart"]


def test_impossible_lengths_are_refused() -> None:
    prelude = struct.pack(">II", 10, 0)
    with pytest.raises(EventStreamError, match="smaller than its parts"):
        list(EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude))))
