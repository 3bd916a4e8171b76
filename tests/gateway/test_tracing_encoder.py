"""The OTLP encoder of the exporter process (gateway/tracing_export.py) writes what
OpenTelemetry's own encoder does for the same spans: both decoded with opentelemetry-proto
compare equal, for every value type, events, error statuses, remote and local parents."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from gateway.tracing_export import SCOPE, resource_encode, spans_encode

TRACE = 0x0AF7651916CD43DD8448EB211C80319C
FLAGS = TraceFlags(1)
KINDS = {1: SpanKind.INTERNAL, 2: SpanKind.SERVER, 3: SpanKind.CLIENT}


def _sdk_span(span: tuple[Any, ...], resource: Resource) -> ReadableSpan:
    """The same span as OpenTelemetry's SDK makes it."""
    trace_id, span_id, parent_id, remote, name, kind, start, end, attributes, events, error = span
    return ReadableSpan(
        name=name,
        context=SpanContext(trace_id, span_id, False, FLAGS),
        parent=SpanContext(trace_id, parent_id, remote, FLAGS) if parent_id else None,
        resource=resource,
        attributes=attributes,
        events=[Event(event, values, at) for event, at, values in events],
        kind=KINDS[kind],
        status=Status(StatusCode.ERROR, error) if error is not None else Status(StatusCode.UNSET),
        start_time=start,
        end_time=end,
        instrumentation_scope=InstrumentationScope(SCOPE),
    )


def test_the_encoding_decodes_as_the_sdk_encoding() -> None:
    start, end = 1_700_000_000_000_000_000, 1_700_000_000_500_000_000
    spans = [
        (
            TRACE, 1, 0xB7AD6B7169203331, True, "chat gpt-4o", 2, start, end,
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.usage.input_tokens": 12,
                "negative": -5,
                "big": 2**62,
                "ratio": 0.25,
                "stream": True,
                "off": False,
                "gen_ai.response.finish_reasons": ("stop", "length"),
                "ints": (1, 2, 3),
                "unicode": "héllo ✓",
                "long": "x" * 300,
            },
            [
                ("gen_ai.first_token", start + 100, {"gen_ai.server.time_to_first_token": 0.031}),
                ("bare", start + 200, {}),
            ],
            None,
        ),
        (TRACE, 2, 1, False, "chat small", 3, start + 1, end - 1,
         {"error.type": "upstream_error", "http.response.status_code": 502}, [],
         "upstream answered 500"),
        (TRACE, 3, 1, False, "ogem.admission", 1, start + 2, start + 3, {}, [], None),
        (TRACE, 4, 0, False, "chat", 2, start, end, {"error.type": "401"}, [], ""),
    ]  # fmt: skip
    resource = Resource.create({"service.name": "ogem", "deployment.environment": "test"})
    ours = ExportTraceServiceRequest.FromString(
        spans_encode(spans, resource=resource_encode(dict(resource.attributes)))
    )
    assert ours == encode_spans([_sdk_span(span, resource) for span in spans])
    assert len(ours.resource_spans[0].scope_spans[0].spans) == 4
