"""The OTLP exporter that tracing (gateway/tracing.py) hands its batches to: over HTTP
(`http/protobuf`, the default) or gRPC, from OpenTelemetry's exporter packages, which read the
standard OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout, certificates) themselves."""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Sequence
from typing import Any

logger = logging.getLogger(__name__)

HTTP_PATH = "/v1/traces"


def exporter_build(*, protocol: str, endpoint: str | None) -> tuple[Any, str]:
    """(the exporter, where it sends) for `protocol`; `endpoint` as OTEL_EXPORTER_OTLP_ENDPOINT
    means it (the collector's base URL: `/v1/traces` is added over HTTP), None: the variables'."""
    if protocol == "grpc":
        target = (
            endpoint
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or "http://localhost:4317"
        )
        insecure = target.startswith("http://") or None
        return _grpc_exporter_class()(endpoint=target, insecure=insecure), target
    if protocol not in ("http/protobuf", "http"):
        raise ValueError(f"OTLP protocol {protocol!r} is not supported: use http/protobuf or grpc")
    if endpoint:
        base = endpoint.rstrip("/")
        url = base if base.endswith(HTTP_PATH) else base + HTTP_PATH
    else:
        url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318").rstrip("/")
            + HTTP_PATH
        )
    return _http_exporter_class()(endpoint=url), url


def _grpc_exporter_class() -> type:
    # Imported when chosen: grpcio is loaded only by a process that exports over gRPC.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    class LeanGrpcExporter(OTLPSpanExporter):
        """OpenTelemetry's gRPC exporter (channel, retries, headers, TLS) with the lean
        encoder: its bytes parsed into the request message by protobuf's C code."""

        def _translate_data(self, data: Sequence[Any]) -> Any:
            return ExportTraceServiceRequest.FromString(spans_encode(data))

    return LeanGrpcExporter


def _http_exporter_class() -> type:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    class LeanHttpExporter(OTLPSpanExporter):
        """OpenTelemetry's HTTP exporter (session, retries, headers, compression, TLS) with the
        lean encoder. It sends through the exporter's own client; a release without one falls
        back to the exporter's whole export."""

        def export(self, spans: Sequence[Any]) -> Any:
            client = getattr(self, "_client", None)
            if self._shutdown or not hasattr(client, "export"):
                return super().export(spans)
            try:
                data = spans_encode(spans)
            except Exception:
                logger.exception("could not encode %d spans", len(spans))
                return SpanExportResult.FAILURE
            if len(data) > getattr(self, "_max_request_size", len(data)):
                logger.warning("dropped a batch of %d spans: %d bytes", len(spans), len(data))
                return SpanExportResult.FAILURE
            result = client.export(data)  # type: ignore[union-attr]
            if getattr(result, "success", False):
                return SpanExportResult.SUCCESS
            return SpanExportResult.FAILURE

    return LeanHttpExporter


# -- a lean OTLP encoder ----------------------------------------------------------------------
# OpenTelemetry's encoder builds a protobuf object per span, attribute and value, about eight
# times the CPU of writing the same bytes directly (docs/tracing.md); the export thread shares
# the worker's core with the requests, so its cost is theirs. Written from
# opentelemetry-proto's trace.proto and common.proto; tests decode what it writes with
# opentelemetry-proto.


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]
_TAGS = [_varint(number << 3 | 2) for number in range(16)]  # length-delimited fields 0-15


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
    if isinstance(value, list | tuple):
        return _field(5, b"".join(_field(1, _any_value(item)) for item in value))
    return _field(1, str(value).encode())


# Encoded attributes by (field number, key, value), framed as that field: most repeat from
# span to span (operation, provider, model, deployment, status). Bounded: emptied when full, so
# unique values (ids) cost only a miss.
_encoded: dict[tuple[int, str, str], bytes] = {}
_ENCODED_MAX = 4096


def _key_values(number: int, attributes: Any) -> bytes:
    if not attributes:
        return b""
    parts = []
    cache = _encoded
    for key, value in attributes.items():
        if type(value) is not str:  # only strings: True == 1 == 1.0 would share an entry
            parts.append(_field(number, _field(1, key.encode()) + _field(2, _any_value(value))))
            continue
        item = (number, key, value)
        encoded = cache.get(item)
        if encoded is None:
            encoded = _field(number, _field(1, key.encode()) + _field(2, _field(1, value.encode())))
            if len(cache) >= _ENCODED_MAX:
                cache.clear()
            cache[item] = encoded
        parts.append(encoded)
    return b"".join(parts)


_STATUS_UNSET = _field(15, b"")
_TIMES = struct.Struct("<BQBQ")  # start_time_unix_nano (7) and end_time_unix_nano (8), fixed64


def _span(span: Any) -> bytes:
    context = span.context
    parent = span.parent
    parts = [
        b"\x0a\x10" + context.trace_id.to_bytes(16, "big"),  # trace_id (1): 16 bytes
        b"\x12\x08" + context.span_id.to_bytes(8, "big"),  # span_id (2): 8 bytes
    ]
    flags = b"\x85\x01\x00\x01\x00\x00"  # flags (16): CONTEXT_HAS_IS_REMOTE, as the SDK's
    if parent is not None:
        parts.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))  # parent_span_id (4)
        if parent.is_remote:
            flags = b"\x85\x01\x00\x03\x00\x00"  # ... and CONTEXT_IS_REMOTE
    parts.append(_field(5, span.name.encode()))
    parts.append(_KINDS[span.kind.value])
    parts.append(_TIMES.pack(0x39, span.start_time, 0x41, span.end_time))
    parts.append(_key_values(9, span.attributes))
    for event in span.events:
        parts.append(
            _field(
                11,
                b"\x09"
                + struct.pack("<Q", event.timestamp)
                + _field(2, event.name.encode())
                + _key_values(3, event.attributes),
            )
        )
    status = span.status
    code = status.status_code.value
    if code or status.description:
        message = _field(2, status.description.encode()) if status.description else b""
        parts.append(_field(15, message + (b"\x18" + _varint(code) if code else b"")))
    else:
        parts.append(_STATUS_UNSET)
    parts.append(flags)
    return b"".join(parts)


# kind (6): the SDK's SpanKind starts at INTERNAL = 0, the protocol's at UNSPECIFIED = 0.
_KINDS = [b"\x30" + _varint(value + 1) for value in range(5)]


def spans_encode(spans: Sequence[Any]) -> bytes:
    """An ExportTraceServiceRequest of `spans` (SDK ReadableSpans), grouped by resource and by
    instrumentation scope as the protocol wants."""
    # By identity: a Resource hashes by serializing its attributes to JSON, and Ogem's spans
    # share one Resource and one scope object.
    grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource = span.resource
        by_scope = grouped.get(id(resource))
        if by_scope is None:
            by_scope = grouped[id(resource)] = (resource, {})
        scope = span.instrumentation_scope
        entry = by_scope[1].get(id(scope))
        if entry is None:
            entry = by_scope[1][id(scope)] = (scope, [])
        entry[1].append(_field(2, _span(span)))
    out = []
    for resource, by_scope in grouped.values():
        body = [_field(1, _key_values(1, resource.attributes))]
        if resource.schema_url:
            body.append(_field(3, resource.schema_url.encode()))
        for scope, encoded in by_scope.values():
            scope_fields = b""
            if scope is not None:
                scope_fields = _field(1, scope.name.encode())
                if scope.version:
                    scope_fields += _field(2, scope.version.encode())
            body.append(_field(2, _field(1, scope_fields) + b"".join(encoded)))
        out.append(_field(1, b"".join(body)))
    return b"".join(out)
