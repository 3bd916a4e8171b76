"""Datadog's LLM Observability spans intake, from its HTTP API reference: `POST
/api/intake/llm-obs/v1/trace/spans` with `DD-API-KEY` (403 when wrong) and `{"data": {"type":
"span", "attributes": {"ml_app", "tags"?, "session_id"?, "spans": [Span]}}}`. A Span needs the
strings `trace_id`, `span_id`, `parent_id`, `name`, the integers `start_ns` and `duration`, and a
`meta` object whose `kind` is a span kind; `status` is `ok` or `error`; `meta.input`/`output` are
IO objects (`value`, `messages` of `{role, content}`, `documents`, `parameters`); `metrics` map
names to numbers; `tags` are `key:value` strings. A body over 5 MB is 413. Accepted spans answer
202 with an empty body.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.callbacks.vendor_emulators.ingest import IngestEmulator, Refused, json_body, require
from tests.emulators.scripted import Received, json_response

API_KEY = "dd-emulator-api-key"
KINDS = {"llm", "embedding", "agent", "workflow", "task", "tool", "retrieval"}
IO_FIELDS = {"value", "messages", "documents", "parameters", "embedding"}
META_FIELDS = {
    "kind",
    "model_name",
    "model_provider",
    "model_version",
    "input",
    "output",
    "metadata",
    "error",
    "span",
    "expected_output",
    "tool_definitions",
    "intent",
}


def _io(io: Any, where: str) -> None:
    require(isinstance(io, dict) and set(io) <= IO_FIELDS, f"{where} is no IO object")
    if "value" in io:
        require(isinstance(io["value"], str), f"{where}.value must be a string")
    for message in io.get("messages", []):
        require(isinstance(message, dict), f"{where}.messages holds a non-object")
        require(isinstance(message.get("content", ""), str), f"{where} content is no string")
        require(isinstance(message.get("role", ""), str), f"{where} role is no string")


def _span(span: Any) -> None:
    require(isinstance(span, dict), "a span is no object")
    for field in ("trace_id", "span_id", "parent_id", "name"):
        require(isinstance(span.get(field), str) and bool(span[field]), f"span.{field} missing")
    for field in ("start_ns", "duration"):
        value = span.get(field)
        require(isinstance(value, int) and value >= 0, f"span.{field} must be an integer")
    require(span.get("status", "ok") in ("ok", "error"), "span.status is ok or error")
    meta = span.get("meta")
    require(isinstance(meta, dict) and set(meta) <= META_FIELDS, "span.meta is invalid")
    require(meta.get("kind", "llm") in KINDS, "span.meta.kind is no span kind")
    for field in ("input", "output"):
        if field in meta:
            _io(meta[field], f"meta.{field}")
    if "error" in meta:
        require(isinstance(meta["error"].get("message"), str), "meta.error.message missing")
    metrics = span.get("metrics", {})
    require(isinstance(metrics, dict), "span.metrics is no object")
    for name, value in metrics.items():
        require(isinstance(value, int | float) and not isinstance(value, bool), f"metric {name}")
    tags = span.get("tags", [])
    require(all(isinstance(t, str) and ":" in t for t in tags), "tags are key:value strings")


class DatadogEmulator(IngestEmulator):
    name = "datadog-emulator"
    path = "/api/intake/llm-obs/v1/trace/spans"
    accepted_status = 202
    agent = False  # True: stands for the Datadog Agent rather than Datadog's intake

    def ingest(self, received: Received, match_info: dict[str, str]) -> list[Any]:
        # The Agent adds the account's key to what it forwards: it takes requests without one.
        if not self.agent and received.headers.get("dd-api-key") != API_KEY:
            raise Refused(403, "Forbidden")
        if len(received.raw) > 5_000_000:
            raise Refused(413, "Payload too large")
        body = json_body(received)
        data = body.get("data") if isinstance(body, dict) else None
        require(isinstance(data, dict), "data is required")
        require(data.get("type", "span") == "span", "data.type must be span")
        attributes = data.get("attributes")
        require(isinstance(attributes, dict), "data.attributes must be an object")
        require(isinstance(attributes.get("ml_app"), str), "ml_app is required")
        spans = attributes.get("spans")
        require(isinstance(spans, list) and bool(spans), "spans must be a non-empty list")
        for span in spans:
            _span(span)
        return [
            {"ml_app": attributes["ml_app"], "batch_tags": attributes.get("tags", []), **span}
            for span in spans
        ]

    def reply(self, records: list[Any]) -> web.Response:
        return web.Response(status=202)

    def refusal(self, refused: Refused) -> web.Response:
        return json_response({"errors": [refused.message]}, status=refused.status)
