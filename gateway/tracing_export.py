"""The OTLP exporter process of tracing (gateway/tracing.py, gateway/tracing_pipe.py).

A web worker records its spans as plain lists and writes them, marshalled in batches, down a pipe
to this process (`python -m gateway.tracing_export`, one per worker), which encodes them as
OTLP protobuf and sends them to the collector over HTTP (`http/protobuf`, the default) or gRPC
with OpenTelemetry's exporters (they read the standard OTEL_EXPORTER_OTLP_* variables: headers,
timeout, compression, certificates). Encoding and sending so take none of the worker's CPU
time or GIL. The process ends when its pipe closes (the worker stopped or reconfigured), after
sending what it has read.

A span, as the pipe carries it (`SPAN_FIELDS`; a worker's are lists, a tuple reads the same):
(trace id, span id, parent span id or 0, parent is remote, name, kind (the protocol's: 1
internal, 2 server, 3 client), start ns, end ns, attributes: a dict, or a tuple of parts with no
key in two (dicts, which a worker shares when they repeat: marshal writes each once a batch; or
facts, a tuple of a `FACTS` name and its values in order, None for one absent), events [(name,
ns, attributes)], error description or None).

A request's trace comes as one flat record (`RECORD_FIELDS`), which this process expands into its
spans (`record_spans`): the worker makes none. Messages down the pipe: a 4-byte little-endian
length, then a marshalled tuple: ("spans", [span, ...], [record, ...], anchor: the worker's wall
clock less its perf_counter, in ns, which dates the records' marks) or ("flush", n). The process
answers a flush, once everything before it is exported, with the line `flushed n FAILED` on its
standard output (FAILED: spans it could not export so far).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import queue
import struct
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, BinaryIO

from gateway.child_pipe import child_collector, child_scheduled, frame_read

logger = logging.getLogger(__name__)

HTTP_PATH = "/v1/traces"
SCOPE = "ogem.gateway"
BATCH_SPANS = 512  # spans per export request, as OpenTelemetry's BatchSpanProcessor
EXPORT_DELAY = 1.0  # seconds a span may wait for others to share its export (OpenTelemetry: 5)
READ_AHEAD = 64  # batches read from the pipe and not yet exported
SPAN_FIELDS = (
    "trace_id", "span_id", "parent_id", "remote", "name", "kind",
    "start_ns", "end_ns", "attributes", "events", "error",
)  # fmt: skip


def exporter_target(*, protocol: str, endpoint: str | None) -> str:
    """Where the exporter sends, for `protocol`: `endpoint` as OTEL_EXPORTER_OTLP_ENDPOINT means
    it (the collector's base URL: `/v1/traces` is added over HTTP), None: the variables'."""
    if protocol == "grpc":
        return (
            endpoint
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or "http://localhost:4317"
        )
    if protocol not in ("http/protobuf", "http"):
        raise ValueError(f"OTLP protocol {protocol!r} is not supported: use http/protobuf or grpc")
    if endpoint:
        base = endpoint.rstrip("/")
        return base if base.endswith(HTTP_PATH) else base + HTTP_PATH
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318").rstrip("/")
        + HTTP_PATH
    )


def exporter_build(*, protocol: str, target: str) -> Any:
    """OpenTelemetry's exporter for `protocol`, taking encoded requests: `export_bytes(data,
    count)` is True when the collector took them."""
    if protocol == "grpc":
        return _grpc_exporter_class()(
            endpoint=target, insecure=target.startswith("http://") or None
        )
    return _http_exporter_class()(endpoint=target)


def _grpc_exporter_class() -> type:
    # Imported when chosen: grpcio is loaded only by a process that exports over gRPC.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.trace.export import SpanExportResult

    class BytesGrpcExporter(OTLPSpanExporter):
        """OpenTelemetry's gRPC exporter (channel, retries, headers, TLS) fed encoded bytes,
        parsed into the request message by protobuf's C code."""

        def _translate_data(self, data: Any) -> Any:
            return ExportTraceServiceRequest.FromString(data[0])

        def _count_data(self, data: Any) -> int:
            return data[1]

        def export_bytes(self, data: bytes, count: int) -> bool:
            return self._export((data, count)) == SpanExportResult.SUCCESS

    return BytesGrpcExporter


def _http_exporter_class() -> type:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    try:  # a module of OpenTelemetry's own (1.45): without it, the exporter's requests path
        from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport
    except ImportError:
        BaseHTTPResult = BaseHTTPTransport = None

    class BytesHttpExporter(OTLPSpanExporter):
        """OpenTelemetry's HTTP exporter (retries, headers, compression, TLS) fed encoded bytes,
        sent through its own client, over its session's urllib3 pool (`pooled_transport`)."""

        pooled = True  # `_unpooled` turns it off

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            if not self.pooled:
                return
            client = getattr(self, "_client", None)
            pooled = pooled_transport(getattr(client, "_transport", None), self._endpoint)
            if pooled is not None:
                client._transport = pooled  # type: ignore[union-attr]

        def export_bytes(self, data: bytes, count: int) -> bool:
            if self._shutdown:
                return False
            if len(data) > getattr(self, "_max_request_size", len(data)):
                logger.warning("dropped a batch of %d spans: %d bytes", count, len(data))
                return False
            return bool(getattr(self._client.export(data), "success", False))

    if BaseHTTPTransport is None:
        return _unpooled(BytesHttpExporter)

    @dataclasses.dataclass(frozen=True, slots=True)
    class PooledResult(BaseHTTPResult):  # type: ignore[misc]
        response: Any = dataclasses.field(default=None, hash=False, compare=False)

        def content(self) -> bytes:
            return self.response.data if self.response is not None else b""

        def headers(self) -> Any:
            return self.response.headers if self.response is not None else {}

    class PooledTransport(BaseHTTPTransport):  # type: ignore[misc]
        """The export's POST on the urllib3 pool that requests' adapter would pick for the
        collector's URL (its TLS, proxy and proxy credentials, CA bundle from the environment,
        all read once), without requests' per-request work around it."""

        def __init__(self, session: Any, url: str) -> None:
            import requests
            from urllib3.exceptions import HTTPError

            self._session = session
            self._url = url
            settings = session.merge_environment_settings(url, {}, None, None, None)
            prepared = requests.Request("POST", url).prepare()
            adapter = session.get_adapter(url)
            self._pool = adapter.get_connection_with_tls_context(
                prepared, settings["verify"], proxies=settings["proxies"], cert=settings["cert"]
            )
            adapter.cert_verify(self._pool, url, settings["verify"], settings["cert"])
            self._target = adapter.request_url(prepared, settings["proxies"])
            self._retries = adapter.max_retries
            # Names in lower case, as OpenTelemetry's: merged as requests merges them (once a name).
            self._defaults = {name.lower(): value for name, value in session.headers.items()}
            self._errors = (HTTPError, OSError)

        def request(
            self,
            method: str,
            url: str,
            *,
            headers: dict[str, str] | None = None,
            timeout: float | None = None,
            data: bytes | None = None,
        ) -> Any:
            from urllib3 import Timeout

            if url != self._url:  # not the collector this pool was made for
                raise ValueError(f"this transport posts to {self._url} only")
            try:
                response = self._pool.urlopen(
                    method=method,
                    url=self._target,
                    body=data,
                    headers={
                        **self._defaults,
                        **{name.lower(): value for name, value in (headers or {}).items()},
                    },
                    redirect=False,
                    assert_same_host=False,
                    retries=self._retries,
                    timeout=Timeout(connect=timeout, read=timeout),
                )
            except Exception as error:  # as requests' transport: a result, not a raise
                return PooledResult(error=error)
            return PooledResult(
                status_code=response.status, reason=response.reason, response=response
            )

        def is_connection_error(self, exception: Exception | None) -> bool:
            return isinstance(exception, self._errors)

        def close(self) -> None:
            self._session.close()

    def pooled_transport(transport: Any, url: str) -> Any:
        # Only over OpenTelemetry's default session: a credential provider's may sign or
        # authenticate each request, which only requests' own path does.
        session = getattr(transport, "_session", None)
        if type(session).__name__ != "Session" or type(session).__module__ != "requests.sessions":
            return None
        if session.auth is not None or session.hooks.get("response"):
            return None
        try:
            return PooledTransport(session, url)
        except (AttributeError, TypeError):  # another requests than 2.32's adapter API
            logger.warning("tracing: the exporter posts through requests (no pooled transport)")
            return None

    return BytesHttpExporter


def _unpooled(exporter: type) -> type:
    """The exporter on requests' own path: an OpenTelemetry without the transport module."""
    logger.warning("tracing: the exporter posts through requests (no pooled transport)")
    exporter.pooled = False  # type: ignore[attr-defined]
    return exporter


# -- the OTLP encoder -------------------------------------------------------------------------
# Written from opentelemetry-proto's trace.proto and common.proto; tests decode what it writes
# with opentelemetry-proto and compare it with OpenTelemetry's own encoder's. It writes the
# bytes directly: OpenTelemetry's encoder builds a protobuf object per span, attribute and
# value, several times the CPU. A Python call or loop turn is what costs here, so what repeats
# is encoded once and looked up whole: an attribute (key and string value), a facts tuple, a
# span name, and within a batch each object spans share (an attribute dict, events, a trace id:
# marshal hands a shared object over as one).


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    if value < 0x4000:
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]
_TAGS = [_varint(number << 3 | 2) for number in range(16)]  # length-delimited fields 0-15
_SEQUENCES = (list, tuple)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, messages)."""
    size = len(payload)
    return _TAGS[number] + (_SMALL[size] if size < 0x80 else _varint(size)) + payload


def _any_value(value: Any) -> bytes:
    kind = type(value)
    if kind is str:
        return _field(1, value.encode())
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if kind is float:
        return b"\x21" + struct.pack("<d", value)
    if kind is bytes:
        return _field(7, value)
    if isinstance(value, _SEQUENCES):
        return _field(5, b"".join([_field(1, _any_value(item)) for item in value]))
    return _field(1, str(value).encode())


# Encoded attributes (KeyValue messages framed as the field they are written in: a span's 9, an
# event's 3, a resource's 1), by that field number, then by (key, value) as a dict's items()
# hands them: string values in `_strings`, int values in `_ints` and tuples of strings in
# `_tuples`, each looked up only for a value of its type (a found entry must be the value's
# own: True == 1 == 1.0 would share one). Most repeat from span to span (operation, provider,
# model, deployment, route, status, counts, finish reasons). Bounded: emptied when full, so
# unique values (ids) cost only a miss.
_strings: list[dict[tuple[str, Any], bytes]] = [{} for _ in range(16)]
_ints: list[dict[tuple[str, Any], bytes]] = [{} for _ in range(16)]
_tuples: list[dict[tuple[str, Any], bytes]] = [{} for _ in range(16)]  # of strings only
_KNOWN_MAX = 4096


def _attribute(number: int, item: tuple[str, Any]) -> bytes:
    """One attribute as a KeyValue field `number`, found in neither table (kept in its own)."""
    key, value = item
    kind = type(value)
    if kind is str:  # the common miss (an id), written out: a call fewer for each length
        data = value.encode()
        size = len(data)
        any_value = b"\x0a" + (_SMALL[size] if size < 0x80 else _varint(size)) + data
        size = len(any_value)
        payload = (
            _field(1, key.encode()) + b"\x12" + (_SMALL[size] if size < 0x80 else _varint(size))
        ) + any_value
        known = _strings[number]
    else:
        payload = _field(1, key.encode()) + _field(2, _any_value(value))
        known = (
            _ints[number]
            if kind is int
            else _tuples[number]
            if kind is tuple and all(type(part) is str for part in value)
            else None
        )
    size = len(payload)
    encoded = _TAGS[number] + (_SMALL[size] if size < 0x80 else _varint(size)) + payload
    if known is not None:
        if len(known) >= _KNOWN_MAX:
            known.clear()
        known[item] = encoded
    return encoded


def _key_values(number: int, attributes: dict[str, Any]) -> bytes:
    if not attributes:
        return b""
    strings, ints = _strings[number], _ints[number]
    parts = []
    for item in attributes.items():
        encoded = strings.get(item)
        if encoded is None:
            encoded = ints.get(item) if type(item[1]) is int else None
            if encoded is None:
                encoded = _attribute(number, item)
        parts.append(encoded)
    return b"".join(parts)


# The attribute names of the facts a worker sends as values only (SPAN_FIELDS): named here once
# rather than in every span. Each position holds values of one type (or None), so equal facts
# encode alike.
FACTS = {
    "answered": (
        "gen_ai.response.model",
        "gen_ai.response.id",
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_creation.input_tokens",
        "ogem.usage.estimated",
    ),
    "asked": (
        "gen_ai.request.model",
        "gen_ai.request.stream",
        "gen_ai.request.max_tokens",
    ),
    "routing": (
        "ogem.routing.candidates",
        "ogem.routing.attempts",
        "ogem.deployment.id",
        "ogem.model_group",
    ),
    "request": (
        "gen_ai.provider.name",
        "ogem.deployment.id",
        "http.response.status_code",
        "ogem.cache.status",
        "ogem.cancelled",
    ),
}
# Encoded facts (as span attributes), by the facts tuple: the request's (provider, deployment,
# status) repeat, as does an answer's but for its id. Bounded as `_strings`.
_facts: dict[tuple[Any, ...], bytes] = {}
_FACTS_MAX = 4096


def _facts_encode(facts: tuple[Any, ...]) -> bytes:
    """Facts (SPAN_FIELDS) as span attributes: the fields of their dict without the Nones."""
    try:
        encoded = _facts.get(facts)
    except TypeError:  # a value that is no key (a list): not kept
        return _key_values(9, {k: v for k, v in _facts_items(facts) if v is not None})
    if encoded is not None:
        return encoded
    strings, ints, tuples = _strings[9], _ints[9], _tuples[9]
    parts = []
    for item in _facts_items(facts):
        kind = type(item[1])
        if kind is str:
            found = strings.get(item)
        elif kind is int:
            found = ints.get(item)
        elif kind is tuple:
            found = tuples.get(item)
        elif item[1] is None:
            continue
        else:
            found = None
        parts.append(found if found is not None else _attribute(9, item))
    encoded = b"".join(parts)
    if len(_facts) >= _FACTS_MAX:
        _facts.clear()
    _facts[facts] = encoded
    return encoded


def _facts_items(facts: tuple[Any, ...]) -> Any:
    return zip(FACTS[facts[0]], facts[1:], strict=True)


# -- a request's flat record (gateway/tracing.py's trace_end) as its spans -----------------------
# (trace id, root span id, client's span or 0, operation, the request's shared attributes (a
# dict), what it asked (request id, model, stream or None, max tokens or None), facts "answered"
# and "request", marks (perf_counter seconds by the marks' slots, 0.0: the stage did not run),
# attempts or None, the routing's facts or None, the cache's (status, similarity) or None,
# stages' own attributes {start mark: dict} or None, stages' failures {start mark: (error.type or
# None, HTTP status or None, description)} or None, a stream's time to first token (seconds) or
# None)
RECORD_FIELDS = (
    "trace_id", "span_id", "parent_id", "operation", "constants", "asked", "answered", "ended",
    "marks", "attempts", "routing", "cache", "extra", "errors", "first_token",
)  # fmt: skip
# The marks' slots and the stages' spans: gateway/tracing.py's (kept in step by its tests: the
# exported spans are what they assert).
ROOT_START, ROOT_END, FIRST_TOKEN = 0, 1, 12
STAGES = (
    (2, "ogem.admission", 1, None),
    (4, "ogem.guardrails", 2, "pre_call"),
    (6, "ogem.cache", 3, None),
    (8, "ogem.routing", 4, None),
    (10, "ogem.guardrails", 5, "post_call"),
)
CACHE_START, ROUTING_START = 6, 8
_ID_STEP = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def record_spans(record: Sequence[Any], anchor: int) -> list[list[Any]]:
    """A request's spans (SPAN_FIELDS) of its record; `anchor`: the worker's wall clock less its
    perf_counter, in ns (a mark `m` is at `int(m * 1e9) + anchor`)."""
    (trace_id, root_id, parent, operation, constants, asked, answered, ended, marks, attempts,
     routing, cache, extra, errors, first_token) = record  # fmt: skip
    extra = extra or {}
    errors = errors or {}
    root_end = int(marks[ROOT_END] * 1e9) + anchor
    # The request's id on its own: the rest of what it asked repeats, and its facts are then
    # found encoded (`_facts`) rather than filling that table with unique entries.
    own = dict(extra.get(ROOT_START) or ())
    own["ogem.request_id"] = asked[0]
    model = asked[1]
    asked = ("asked", *asked[1:])
    events: Any = ()
    if first_token is not None:
        own["gen_ai.server.time_to_first_token"] = first_token
        events = (
            (
                "gen_ai.first_token",
                int(marks[FIRST_TOKEN] * 1e9) + anchor,
                {"gen_ai.server.time_to_first_token": first_token},
            ),
        )
    failure = errors.get(ROOT_START)
    root = [trace_id, root_id, parent, parent != 0,
            operation + " " + model if model else operation, 2,
            int(marks[ROOT_START] * 1e9) + anchor, root_end,
            (constants, asked, answered, ended, _failed(own, failure)), events,
            None if failure is None else failure[2]]  # fmt: skip
    spans = [root]
    for start, name, number, phase in STAGES:
        began = marks[start]
        if not began:
            continue
        attributes = dict(extra.get(start) or ())
        if phase is not None:
            attributes["ogem.guardrails.phase"] = phase
        parts: tuple[Any, ...] = ()
        if start == CACHE_START:
            status, similarity = cache or ("miss", None)
            attributes["ogem.cache.status"] = status
            if similarity is not None:
                attributes["ogem.cache.similarity"] = similarity
        elif start == ROUTING_START and routing is not None:
            parts = (routing,)
        failure = errors.get(start)
        finished = marks[start + 1]
        spans.append([trace_id, (root_id + number * _ID_STEP) & _MASK64 or 1, root_id, False,
                      name, 1, int(began * 1e9) + anchor,
                      int(finished * 1e9) + anchor if finished else root_end,
                      (*parts, _failed(attributes, failure)), (),
                      None if failure is None else failure[2]])  # fmt: skip
    if attempts:
        last = attempts[-1]
        for span_id, parent_id, shared, began, finished, facts, own, failure in attempts:
            name = shared["gen_ai.operation.name"] + " " + shared["gen_ai.request.model"]
            attributes = dict(own or ())
            parts = (shared,) if facts is None else (shared, facts)
            spans.append([trace_id, span_id, parent_id, False, name, 3,
                          int(began * 1e9) + anchor,
                          int(finished * 1e9) + anchor if finished else root_end,
                          (*parts, _failed(attributes, failure)),
                          events if first_token is not None and span_id == last[0] else (),
                          None if failure is None else failure[2]])  # fmt: skip
    return spans


def _failed(attributes: dict[str, Any], failure: Sequence[Any] | None) -> dict[str, Any]:
    """A span's own attributes, with its failure's type and HTTP status when it failed."""
    if failure is not None:
        if failure[0] is not None:
            attributes["error.type"] = failure[0]
        if failure[1] is not None:
            attributes["http.response.status_code"] = failure[1]
    return attributes


def record_span_count(record: Sequence[Any]) -> int:
    """How many spans a record makes (what its loss counts)."""
    marks = record[8]
    return 1 + sum(1 for start, *_ in STAGES if marks[start]) + len(record[9] or ())


# Span names as their field (5), by name (an operation and a model: few), bounded.
_names: dict[str, bytes] = {}
_NAMES_MAX = 1024
_IDS = struct.Struct(">BBQ")  # span_id (2): 8 bytes, big-endian as W3C writes ids
_IDS_PARENT = struct.Struct(">BBQBBQ")  # span_id (2) and parent_span_id (4)
# kind (6, a varint of one byte: 1 to 5), start_time_unix_nano (7) and end_time_unix_nano (8)
_KIND_TIMES = struct.Struct("<BBBQBQ")
_EVENT_TIME = struct.Struct("<BQ")  # an event's time_unix_nano (1), fixed64
# status (15), then flags (16, fixed32): CONTEXT_HAS_IS_REMOTE, and CONTEXT_IS_REMOTE for a
# remote parent
_LOCAL, _REMOTE = b"\x85\x01\x00\x01\x00\x00", b"\x85\x01\x00\x03\x00\x00"
_STATUS_UNSET = _field(15, b"")
_UNSET_LOCAL, _UNSET_REMOTE = _STATUS_UNSET + _LOCAL, _STATUS_UNSET + _REMOTE


def _spans_fields(spans: Sequence[Sequence[Any]], memo: dict[int, bytes]) -> list[bytes]:
    """Span messages (trace.proto) of span tuples (SPAN_FIELDS), each framed as a ScopeSpans'
    field 2. `memo`: what the batch has encoded of objects its spans share, by their identity
    (alive while the batch is)."""
    names = _names
    facts_known = _facts
    fields = []
    last_trace, trace = None, b""
    for span in spans:
        trace_id, span_id, parent_id, remote, name, kind, start, end, attributes, events, error = (
            span
        )
        if trace_id is not last_trace:  # a trace's spans come together
            last_trace, trace = trace_id, b"\x0a\x10" + trace_id.to_bytes(16, "big")
        named = names.get(name)
        if named is None:
            if len(names) >= _NAMES_MAX:
                names.clear()
            named = names[name] = _field(5, name.encode())
        if not attributes:
            encoded = b""
        elif type(attributes) is tuple:
            # Parts (SPAN_FIELDS) with no key in common: the fields of the merged dict, in its
            # order. A dict is found by its identity (the batch's), facts by their values.
            pieces = []
            for part in attributes:
                if type(part) is tuple:
                    try:
                        found = facts_known.get(part)
                    except TypeError:  # a value that is no key (a list)
                        found = None
                    if found is None:
                        found = _facts_encode(part)
                elif not part:  # an empty dict (most stages' own attributes): nothing to write
                    continue
                else:
                    found = memo.get(id(part))
                    if found is None:
                        found = memo[id(part)] = _key_values(9, part)
                pieces.append(found)
            encoded = b"".join(pieces)
        else:
            encoded = _key_values(9, attributes)
        if error is None:
            tail = _UNSET_REMOTE if remote else _UNSET_LOCAL
        else:  # status ERROR (code 2) with its description
            status = _field(15, (_field(2, error.encode()) if error else b"") + b"\x18\x02")
            tail = status + (_REMOTE if remote else _LOCAL)
        if events:
            found = memo.get(id(events))
            if found is None:
                found = memo[id(events)] = _events_encode(events)
            tail = found + tail
        message = b"".join(
            (
                trace,
                _IDS_PARENT.pack(0x12, 8, span_id, 0x22, 8, parent_id)
                if parent_id
                else _IDS.pack(0x12, 8, span_id),
                named,
                _KIND_TIMES.pack(0x30, kind, 0x39, start, 0x41, end),
                encoded,
                tail,
            )
        )
        size = len(message)
        fields.append(b"\x12" + (_SMALL[size] if size < 0x80 else _varint(size)) + message)
    return fields


def _events_encode(events: Sequence[Any]) -> bytes:
    fields = []
    for event_name, at, values in events:
        message = _EVENT_TIME.pack(0x09, at) + _field(2, event_name.encode())
        fields.append(_field(11, message + _key_values(3, values)))
    return b"".join(fields)


def resource_encode(attributes: dict[str, Any], schema_url: str = "") -> bytes:
    """The Resource field (1) of a ResourceSpans message, written once a process."""
    encoded = _field(1, _key_values(1, attributes))
    return encoded + (_field(3, schema_url.encode()) if schema_url else b"")


def spans_encode(spans: Sequence[Sequence[Any]], *, resource: bytes, scope: str = SCOPE) -> bytes:
    """An ExportTraceServiceRequest of span tuples, all of one resource (`resource_encode`'s)
    and one instrumentation scope."""
    fields = _spans_fields(spans, {})
    fields.insert(0, _field(1, _field(1, scope.encode())))
    return _field(1, resource + _field(2, b"".join(fields)))


# -- the exporter process ---------------------------------------------------------------------


def _resource(service_name: str) -> bytes:
    """The resource as OpenTelemetry's SDK makes it (OTEL_RESOURCE_ATTRIBUTES, the SDK's own
    attributes), its `service.name` Ogem's setting, else OTEL_SERVICE_NAME, else `ogem`."""
    from opentelemetry.sdk.resources import Resource

    attributes = {"service.name": service_name} if service_name else {}
    resource = Resource.create(attributes)
    if "service.name" not in attributes and str(
        resource.attributes.get("service.name", "")
    ).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "ogem"}))
    return resource_encode(dict(resource.attributes), resource.schema_url)


def exporter_main(config: dict[str, Any], inbound: BinaryIO, outbound: BinaryIO) -> None:
    """Read span batches from `inbound` until it closes, export them; answer flushes. A worker
    writes a batch every 0.2 s or 32 requests: they are gathered here into exports of up to
    BATCH_SPANS spans, at most EXPORT_DELAY seconds late, as OpenTelemetry's BatchSpanProcessor
    gathers (an export's HTTP request costs this process more than encoding a few hundred
    spans, docs/benchmark.md)."""
    exports = _Exports(
        exporter_build(protocol=config["protocol"], target=config["target"]),
        _resource(config.get("service_name") or ""),
    )
    # Read by a thread of its own, so that waiting for a batch has a deadline. It never stops
    # reading (the worker's hand-over thread must not wait on a collector): past READ_AHEAD
    # batches waiting, a batch is dropped and counted.
    messages: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=READ_AHEAD)
    reader = threading.Thread(target=_read, args=(inbound, messages, exports), daemon=True)
    reader.start()
    pending: list[Any] = []
    due = 0.0  # when the oldest pending span must be exported
    # Where each message's spans begin in `pending`, and when it came: what is left after full
    # exports keeps the deadline of its own oldest span.
    arrivals: list[tuple[int, float]] = []
    while True:
        try:
            message = messages.get(timeout=max(due - time.monotonic(), 0.0) if pending else None)
        except queue.Empty:
            message = ("due",)
        if message is None:
            break
        kind = message[0]
        if kind == "spans":
            if not pending:
                arrivals = []
            arrivals.append((len(pending), time.monotonic()))
            due = arrivals[0][1] + EXPORT_DELAY
            pending += message[1]
            for record in message[2] if len(message) > 2 else ():
                try:
                    pending += record_spans(record, message[3])
                except Exception:  # a record not understood: that request's spans, counted
                    logger.exception("could not read a request's trace")
                    exports.failed += 1
            if len(pending) < BATCH_SPANS:
                continue
            # Full exports only: a remainder sent at once would double the posts (a post costs
            # about what encoding its 512 spans does); it waits for more, or its deadline.
            cut = len(pending) - len(pending) % BATCH_SPANS
            exports.send(pending[:cut])
            pending = pending[cut:]
            first = max(i for i, (at, _) in enumerate(arrivals) if at <= cut)
            arrivals = [(max(at - cut, 0), when) for at, when in arrivals[first:]]
            due = arrivals[0][1] + EXPORT_DELAY
            continue
        exports.send(pending)
        pending = []
        arrivals = []
        if kind == "flush":
            lost = exports.failed + exports.overflowed
            outbound.write(f"flushed {message[1]} {lost}\n".encode())
            outbound.flush()
    exports.send(pending)
    exports.exporter.shutdown()


def _read(
    inbound: BinaryIO, messages: queue.Queue[tuple[Any, ...] | None], exports: _Exports
) -> None:
    try:
        while (message := frame_read(inbound)) is not None:
            if message[0] != "spans":
                messages.put(message)  # a flush waits its turn, never dropped
                continue
            try:
                messages.put_nowait(message)
            except queue.Full:
                exports.overflowed += len(message[1])
                if len(message) > 2:
                    exports.overflowed += sum(map(record_span_count, message[2]))
    finally:  # the pipe's end, or a message not understood: the process sends what it has
        messages.put(None)


class _Exports:
    """The exporter, the encoded resource, and the spans that could not be sent so far."""

    def __init__(self, exporter: Any, resource: bytes) -> None:
        self.exporter = exporter
        self.resource = resource
        self.failed = 0  # spans the collector did not take
        self.overflowed = 0  # spans dropped unread while it was slow (the reading thread's)
        self._warned = -60.0

    def send(self, spans: list[Any]) -> None:
        for start in range(0, len(spans), BATCH_SPANS):
            chunk = spans[start : start + BATCH_SPANS]
            try:
                data = spans_encode(chunk, resource=self.resource)
                sent = self.exporter.export_bytes(data, len(chunk))
            except Exception:  # a bad span or a transport bug: that batch, not the process
                logger.exception("could not export %d spans", len(chunk))
                sent = False
            if not sent:
                self.failed += len(chunk)
                if time.monotonic() - self._warned > 60.0:  # a collector down: a line a minute
                    logger.warning(
                        "could not send %d spans so far (%d more dropped unsent meanwhile)",
                        self.failed,
                        self.overflowed,
                    )
                    self._warned = time.monotonic()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="ogem tracing exporter: %(message)s")
    child_scheduled()
    child_collector()
    config = json.loads(sys.argv[1])
    exporter_main(config, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
