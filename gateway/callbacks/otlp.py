"""OTLP/HTTP trace export for the sinks whose vendor ingests OpenTelemetry spans (Arize,
Phoenix, MLflow): one span per event, encoded as an `ExportTraceServiceRequest` protobuf
(opentelemetry-proto), with OpenInference's LLM attributes (`openinference.span.kind`,
`llm.model_name`, `llm.token_count.*`, `llm.cost.*`, `input.value`, `output.value`, ...) and the
GenAI semantic conventions' `gen_ai.*` usage names, which these vendors read.

Reference: the OTLP specification (opentelemetry.io/docs/specs/otlp, "OTLP/HTTP": POST
`/v1/traces`, `Content-Type: application/x-protobuf`) and OpenInference's semantic conventions
(github.com/Arize-ai/openinference, spec/semantic_conventions.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from gateway.callbacks.base import CallbackEvent
from gateway.callbacks.common import cost_float
from gateway.callbacks.vendor import (
    error_text,
    event_ids,
    input_messages,
    json_text,
    nanos,
    output_messages,
    post,
    span_name,
)

AttributeValue = str | bool | int | float | list[str]
CONTENT_TYPE = "application/x-protobuf"


def _any_value(value: AttributeValue) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value]))
    return AnyValue(string_value=value)


def key_values(attributes: Mapping[str, AttributeValue]) -> list[KeyValue]:
    return [KeyValue(key=k, value=_any_value(v)) for k, v in attributes.items()]


def openinference_attributes(event: CallbackEvent) -> dict[str, AttributeValue]:
    """The span attributes an OpenInference reader (Arize, Phoenix) shows for one request."""
    cost = cost_float(event)
    attributes: dict[str, AttributeValue] = {
        "openinference.span.kind": "EMBEDDING" if event["endpoint"] == "embeddings" else "LLM",
        "llm.model_name": event["response_model"] or event["model"],
        "llm.provider": event["provider"],
        "llm.system": event["provider"],
        "llm.token_count.prompt": event["prompt_tokens"],
        "llm.token_count.completion": event["completion_tokens"],
        "llm.token_count.total": event["total_tokens"],
        "llm.token_count.prompt_details.cache_read": event["cached_tokens"],
        "llm.cost.total": cost,
        "gen_ai.request.model": event["model"],
        "gen_ai.response.model": event["response_model"] or event["model"],
        "gen_ai.usage.input_tokens": event["prompt_tokens"],
        "gen_ai.usage.output_tokens": event["completion_tokens"],
        "ogem.request_id": event["request_id"],
        "ogem.endpoint": event["endpoint"],
        "ogem.deployment": event["deployment"],
        "ogem.cost_usd": cost,
        "ogem.latency_ms": event["latency_ms"],
        "ogem.cache_hit": event["cache_hit"],
        "ogem.stream": event["stream"],
        "http.response.status_code": event["status_code"],
    }
    if event["ttft_ms"] is not None:
        attributes["ogem.ttft_ms"] = event["ttft_ms"]
    if event["end_user"]:
        attributes["user.id"] = event["end_user"]
    session = event["metadata"].get("session_id")
    if isinstance(session, str) and session:
        attributes["session.id"] = session
    if event["tags"]:
        attributes["tag.tags"] = [str(t) for t in event["tags"]]
    tenancy = {
        "organization_id": event["organization_id"],
        "team_id": event["team_id"],
        "key_id": event["key_id"],
        "key_name": event["key_name"],
        "user_id": event["user_id"],
    }
    attributes["metadata"] = json_text({**event["metadata"], **tenancy})
    if "input" in event:
        attributes["input.value"] = json_text(event["input"])
        attributes["input.mime_type"] = "application/json"
        for i, message in enumerate(input_messages(event) or ()):
            attributes[f"llm.input_messages.{i}.message.role"] = message["role"]
            attributes[f"llm.input_messages.{i}.message.content"] = message["content"]
    if "output" in event:
        attributes["output.value"] = json_text(event["output"])
        attributes["output.mime_type"] = "application/json"
        for i, message in enumerate(output_messages(event) or ()):
            attributes[f"llm.output_messages.{i}.message.role"] = message["role"]
            attributes[f"llm.output_messages.{i}.message.content"] = message["content"]
    return attributes


def event_span(
    event: CallbackEvent,
    attributes: Callable[[CallbackEvent], Mapping[str, AttributeValue]],
) -> Span:
    trace_id, span_id = event_ids(event)
    failed = event["kind"] == "failure"
    span = Span(
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
        name=span_name(event),
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=nanos(event["started_at"]),
        end_time_unix_nano=nanos(event["ended_at"]),
        attributes=key_values(attributes(event)),
        status=Status(
            code=Status.STATUS_CODE_ERROR if failed else Status.STATUS_CODE_OK,
            message=error_text(event),
        ),
    )
    error = event["error"]
    if failed and error is not None:
        span.events.add(
            time_unix_nano=span.end_time_unix_nano,
            name="exception",
            attributes=key_values(
                {"exception.type": error["type"], "exception.message": error["message"]}
            ),
        )
    return span


def export_request(
    events: Sequence[CallbackEvent],
    *,
    resource: Mapping[str, AttributeValue],
    attributes: Callable[[CallbackEvent], Mapping[str, AttributeValue]] = openinference_attributes,
) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans: ResourceSpans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(key_values({"service.name": "ogem", **resource}))
    scope: ScopeSpans = resource_spans.scope_spans.add()
    scope.scope.name = "ogem.callbacks"
    scope.spans.extend(event_span(event, attributes) for event in events)
    return request.SerializeToString()


async def export(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    headers: Mapping[str, str],
) -> None:
    await post(client, url, headers={**headers, "Content-Type": CONTENT_TYPE}, content=body)
