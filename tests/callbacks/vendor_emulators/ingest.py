"""The shared shape of the observability vendors' emulators: an HTTP ingestion endpoint (on
`ScriptedEmulator`'s real socket) that checks the key, validates the body the way the vendor's
API reference describes it, and records what it accepted.

A vendor's emulator implements `ingest(received, match_info)`: it returns the records the body
carries, or raises `Refused(status, message)` (401/403 for a key, 400 for a shape); scripted
`Fault`s answer first. `OtlpEmulator` is the OTLP/HTTP traces endpoint that Arize, Phoenix and
MLflow share: it decodes the protobuf `ExportTraceServiceRequest` and records one dict a span.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar

import pytest
from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.emulators.scripted import Fault, Received, ScriptedEmulator, json_response


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class IngestEmulator(ScriptedEmulator):
    path: ClassVar[str]  # an aiohttp route pattern
    accepted_status: ClassVar[int] = 200

    def __init__(self) -> None:
        super().__init__()
        self.records: list[Any] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post(self.path, self._handle)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.records.clear()

    def ingest(self, received: Received, match_info: dict[str, str]) -> list[Any]:
        raise NotImplementedError

    def reply(self, records: list[Any]) -> web.Response:
        return json_response({}, status=self.accepted_status)

    def refusal(self, refused: Refused) -> web.Response:
        return json_response({"error": refused.message}, status=refused.status)

    async def _handle(self, request: web.Request) -> web.Response:
        received = await self.receive(request)
        fault = self.next_reply()
        if isinstance(fault, Fault):
            return fault.response()
        try:
            records = self.ingest(received, dict(request.match_info))
        except Refused as refused:
            return self.refusal(refused)
        with self._lock:
            self.records.extend(records)
        return self.reply(records)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise Refused(400, message)


def json_body(received: Received) -> Any:
    require(
        received.headers.get("content-type", "").startswith("application/json"),
        "Content-Type must be application/json",
    )
    require(not isinstance(received.body, bytes), "the body is not JSON")
    return received.body


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        require(bool(pair.key), "an attribute has an empty key")
        result[pair.key] = _value(pair.value)
    return result


class OtlpEmulator(IngestEmulator):
    """OTLP/HTTP `POST /v1/traces` with a binary protobuf body (the OTLP specification)."""

    path = "/v1/traces"

    def authorize(self, received: Received) -> dict[str, Any]:
        """Raise `Refused` for a missing or wrong credential; return what to add to records."""
        raise NotImplementedError

    def check_resource(self, resource: dict[str, Any]) -> None:
        pass

    def ingest(self, received: Received, match_info: dict[str, str]) -> list[Any]:
        extra = self.authorize(received)
        content_type = received.headers.get("content-type", "")
        if content_type != "application/x-protobuf":
            raise Refused(415, f"unsupported content type {content_type!r}")
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(received.raw)
        except DecodeError as exc:
            raise Refused(400, f"the body is no ExportTraceServiceRequest: {exc}") from exc
        spans = []
        for resource_spans in request.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            self.check_resource(resource)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    require(len(span.trace_id) == 16 and any(span.trace_id), "bad trace_id")
                    require(len(span.span_id) == 8 and any(span.span_id), "bad span_id")
                    require(bool(span.name), "a span has no name")
                    require(
                        0 < span.start_time_unix_nano <= span.end_time_unix_nano,
                        "a span's times are out of order",
                    )
                    spans.append(
                        {
                            **extra,
                            "resource": resource,
                            "scope": scope_spans.scope.name,
                            "name": span.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "kind": span.kind,
                            "start_ns": span.start_time_unix_nano,
                            "end_ns": span.end_time_unix_nano,
                            "status": span.status.code,
                            "status_message": span.status.message,
                            "attributes": _attributes(span.attributes),
                            "events": [
                                {"name": e.name, "attributes": _attributes(e.attributes)}
                                for e in span.events
                            ],
                        }
                    )
        require(bool(spans), "the request holds no span")
        return spans

    def reply(self, records: list[Any]) -> web.Response:
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )


E = TypeVar("E", bound="IngestEmulator")
_started: dict[type[IngestEmulator], IngestEmulator] = {}


def emulator_fixture(cls: type[E]) -> Callable[[], Iterator[E]]:
    """A test module's fixture for `cls` (`datadog = emulator_fixture(DatadogEmulator)`): one
    server per test process, started at its first use, reset before each test."""

    @pytest.fixture
    def fixture() -> Iterator[E]:
        server = _started.get(cls)
        if server is None:
            server = _started[cls] = cls().start()  # type: ignore[assignment]
        server.reset()
        yield server  # type: ignore[misc]

    return fixture
