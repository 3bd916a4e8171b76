"""The worker's end of tracing's export (gateway/tracing_export.py's process).

A finished request's record (a tuple, gateway/tracing.py's; a Realtime session's spans, lists)
is appended to a bounded queue: an append, nothing more, on the request path. The worker's
hand-over thread (gateway/child_pipe.py, shared with the callbacks' pipe) takes the queue every
second, or sooner when a batch is waiting, marshals it (C code; cheaper than pickle, which tracks
every object) and writes it down a pipe to the exporter process, which makes the records' spans,
gathers, encodes and sends. When the collector is down or slow the exporter drops what waits
past its bound and counts it (`lost`); when the exporter itself does not keep up, the queue
fills: new spans are then dropped and counted, never waited for.
"""

from __future__ import annotations

import json
import logging
import marshal
import struct
import time
from typing import Any

from gateway.child_pipe import ChildPipe
from gateway.tracing_export import record_span_count

logger = logging.getLogger(__name__)

MAX_TRACES = 1024  # the queue's bound, in requests (a request has 3 to 8 spans)
# The thread is woken at BATCH_TRACES queued requests, else every DELAY seconds (child_pipe.py):
# small batches often, so that no marshal holds the GIL long enough to show in a request's p99.
BATCH_TRACES = 32


class SpanPipe(ChildPipe):
    """The queue of spans, the thread that empties it and the exporter process it feeds."""

    module = "gateway.tracing_export"

    def __init__(self, *, protocol: str, target: str, service_name: str) -> None:
        self.config = {"protocol": protocol, "target": target, "service_name": service_name}
        self.dropped = 0  # spans not exported: queue full, exporter gone, or export failed
        self._failed = 0  # of which the exporter process reported failing to send
        self._reported = 0
        self._reported_at = 0.0
        super().__init__(json.dumps(self.config))

    def put(self, spans: list[Any] | tuple[Any, ...]) -> None:
        """The request path's part: a request's record (a tuple, gateway/tracing.py's trace_end)
        or a list of spans (a Realtime session's, a refused request's) queued, or dropped when
        full."""
        queue = self.queue
        if len(queue) >= MAX_TRACES:
            self.dropped += record_span_count(spans) if type(spans) is tuple else len(spans)
            return
        queue.append(spans)
        if len(queue) >= BATCH_TRACES and not self._wake.is_set():
            self._wake.set()

    def _send_queued(self) -> None:
        queue = self.queue
        if not queue:
            return
        spans: list[Any] = []
        records: list[tuple[Any, ...]] = []
        for _ in range(len(queue)):
            item = queue.popleft()
            if type(item) is tuple:
                records.append(item)
            else:
                spans += item
        # What dates the records' marks: read here, once a batch, not on the request path.
        anchor = time.time_ns() - int(time.perf_counter() * 1e9)
        try:
            process = self._child()
            sent = process is not None and self._send(process, _spans_frame(spans, records, anchor))
        except Exception:  # what it held is lost, and counted
            logger.exception("tracing: could not hand %d traces to the exporter", len(records))
            sent = False
        if not sent:
            self.dropped += len(spans) + sum(map(record_span_count, records))

    def _answer(self, words: list[bytes]) -> None:
        if words[0] == b"flushed":  # flushed N FAILED
            self._failed = int(words[2])
            self._flushed = int(words[1])

    def _idle(self) -> None:
        dropped = self.lost
        now = time.monotonic()
        if dropped > self._reported and now - self._reported_at >= 1.0:  # a line a second
            logger.warning("tracing dropped %d spans so far", dropped)
            self._reported, self._reported_at = dropped, now

    @property
    def lost(self) -> int:
        """Spans not exported: the queue full, the exporter gone or its sends failed."""
        return self.dropped + self._failed


def _spans_frame(spans: list[Any], records: list[tuple[Any, ...]], anchor: int) -> bytes:
    message = ("spans", spans, records, anchor)
    try:
        data = marshal.dumps(message)
    except ValueError:  # an attribute of a type marshal does not know: sent as its text
        data = marshal.dumps(_plain(message))
    return struct.pack("<I", len(data)) + data


_PLAIN = frozenset((str, int, float, bool, bytes, type(None)))


def _plain(message: tuple[Any, ...]) -> tuple[Any, ...]:
    """A message whose attribute values are all of marshal's types (others as their text)."""
    kind, spans, records, anchor = message
    return kind, [
        (*span[:8], _plain_attributes(span[8]), [
            (name, at, {k: _value(v) for k, v in values.items()}) for name, at, values in span[9]
        ], span[10])
        for span in spans
    ], [_plain_value(record) for record in records], anchor  # fmt: skip


def _plain_value(value: Any) -> Any:
    """A record's values, all of marshal's types: its containers walked, others as `_value`."""
    kind = type(value)
    if kind is dict:
        return {k: _plain_value(v) for k, v in value.items()}
    if kind is list:
        return [_plain_value(item) for item in value]
    if kind is tuple:
        return tuple(_plain_value(item) for item in value)
    return _value(value)


def _plain_attributes(attributes: Any) -> Any:
    if type(attributes) is tuple:  # parts (SPAN_FIELDS): dicts and facts
        return tuple(
            tuple(_value(v) for v in part) if type(part) is tuple else _plain_attributes(part)
            for part in attributes
        )
    return {k: _value(v) for k, v in attributes.items()}


def _value(value: Any) -> Any:
    if type(value) in _PLAIN:  # exactly: marshal refuses subclasses (a StrEnum)
        return value
    if isinstance(value, list | tuple):
        return tuple(_value(item) for item in value)
    return str(value)
