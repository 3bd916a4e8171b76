"""The lean OTLP encoder (gateway/tracing_export.py) writes what OpenTelemetry's own encoder
does: both decoded with opentelemetry-proto compare equal, for every value type, events,
statuses, remote and local parents, several resources and scopes."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from gateway.tracing_export import spans_encode

TRACE = 0x0AF7651916CD43DD8448EB211C80319C
FLAGS = TraceFlags(1)


def _span(span_id: int, **fields) -> ReadableSpan:  # type: ignore[no-untyped-def]
    return ReadableSpan(
        name=fields.pop("name", "chat gpt-4o"),
        context=SpanContext(TRACE, span_id, False, FLAGS),
        start_time=1_700_000_000_000_000_000 + span_id,
        end_time=1_700_000_000_500_000_000 + span_id,
        **fields,
    )


def test_lean_encoding_decodes_as_the_sdk_encoding() -> None:
    ogem = Resource.create({"service.name": "ogem", "deployment.environment": "test"})
    other = Resource(
        {"service.name": "other"}, schema_url="https://opentelemetry.io/schemas/1.30.0"
    )
    scope = InstrumentationScope("ogem.gateway")
    versioned = InstrumentationScope("ogem.other", "1.2.3")
    spans = [
        _span(
            1,
            kind=SpanKind.SERVER,
            parent=SpanContext(TRACE, 0xB7AD6B7169203331, True, FLAGS),
            resource=ogem,
            instrumentation_scope=scope,
            attributes={
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
            events=[
                Event(
                    "gen_ai.first_token",
                    {"gen_ai.server.time_to_first_token": 0.031},
                    1_700_000_000_100_000_000,
                ),
                Event("bare", None, 1_700_000_000_200_000_000),
            ],
        ),
        _span(
            2,
            kind=SpanKind.CLIENT,
            parent=SpanContext(TRACE, 1, False, FLAGS),
            resource=ogem,
            instrumentation_scope=scope,
            status=Status(StatusCode.ERROR, "upstream answered 500"),
            attributes={"error.type": "upstream_error", "http.response.status_code": 502},
        ),
        _span(
            3,
            kind=SpanKind.INTERNAL,
            parent=SpanContext(TRACE, 1, False, FLAGS),
            resource=ogem,
            instrumentation_scope=versioned,
            status=Status(StatusCode.OK),
            name="ogem.admission",
        ),
        _span(4, resource=other, instrumentation_scope=scope, attributes={}),
    ]
    lean = ExportTraceServiceRequest.FromString(spans_encode(spans))
    assert lean == encode_spans(spans)
    assert len(lean.resource_spans) == 2
    assert [len(s.spans) for s in lean.resource_spans[0].scope_spans] == [2, 1]
