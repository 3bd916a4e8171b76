from __future__ import annotations

import pytest

from providers.sse import SSEParser, sse_data


def _feed_all(parts: list[bytes]) -> list[str]:
    parser = SSEParser()
    events: list[str] = []
    for part in parts:
        events.extend(parser.feed(part))
    events.extend(parser.close())
    return events


def test_events_split_anywhere() -> None:
    raw = b'data: {"a": 1}\n\ndata: {"b": 2}\n\ndata: [DONE]\n\n'
    expected = ['{"a": 1}', '{"b": 2}', "[DONE]"]
    for size in range(1, len(raw) + 1):
        parts = [raw[i : i + size] for i in range(0, len(raw), size)]
        assert _feed_all(parts) == expected, size


def test_crlf_split_between_cr_and_lf() -> None:
    assert _feed_all([b"data: one\r", b"\n\r", b"\ndata: two\r\n\r\n"]) == ["one", "two"]
    assert _feed_all([b"data: lone-cr\r\r"]) == ["lone-cr"]


def test_multiline_data_comments_and_fields() -> None:
    raw = b": keep-alive\nevent: message\nid: 7\ndata: line1\ndata:line2\nretry: 10\n\n"
    assert _feed_all([raw]) == ["line1\nline2"]


def test_unterminated_last_event_is_flushed() -> None:
    assert _feed_all([b"data: tail"]) == ["tail"]
    assert _feed_all([b": only a comment\n"]) == []


@pytest.mark.asyncio
async def test_async_iteration() -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for part in (b"da", b"ta: x\n", b"\ndata: y\n\n"):
            yield part

    assert [event async for event in sse_data(chunks())] == ["x", "y"]
