"""The OTLP exporter that tracing (gateway/tracing.py) hands its batches to: over HTTP
(`http/protobuf`, the default) or gRPC, from OpenTelemetry's exporter packages, which read the
standard OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout, certificates) themselves."""

from __future__ import annotations

import os
from typing import Any

HTTP_PATH = "/v1/traces"


def exporter_build(*, protocol: str, endpoint: str | None) -> tuple[Any, str]:
    """(the exporter, where it sends) for `protocol`; `endpoint` as OTEL_EXPORTER_OTLP_ENDPOINT
    means it (the collector's base URL: `/v1/traces` is added over HTTP), None: the variables'."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        target = (
            endpoint
            or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
            or "http://localhost:4317"
        )
        insecure = target.startswith("http://") or None
        return OTLPSpanExporter(endpoint=target, insecure=insecure), target
    if protocol not in ("http/protobuf", "http"):
        raise ValueError(f"OTLP protocol {protocol!r} is not supported: use http/protobuf or grpc")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    if endpoint:
        url = (
            endpoint
            if endpoint.rstrip("/").endswith(HTTP_PATH)
            else endpoint.rstrip("/") + HTTP_PATH
        )
    else:
        url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
            os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318").rstrip("/")
            + HTTP_PATH
        )
    return Http(endpoint=url), url
