"""Arize Phoenix (self-hosted or Phoenix Cloud): OTLP/HTTP traces with OpenInference
attributes (otlp.py).

API: `POST {collector}/v1/traces`, protobuf `ExportTraceServiceRequest`, with
`Authorization: Bearer PHOENIX_API_KEY` when a key is set (Phoenix's "Setup using base OTEL"
guide); the project is the resource attribute `openinference.project.name`.

Settings (LiteLLM's `arize_phoenix` callback names them): `PHOENIX_COLLECTOR_HTTP_ENDPOINT` or
`PHOENIX_COLLECTOR_ENDPOINT` (default `http://localhost:6006`; `/v1/traces` is appended unless the
URL already ends with it), `PHOENIX_API_KEY` (optional for a self-hosted Phoenix without auth),
`PHOENIX_PROJECT_NAME` (default `default`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import httpx

from gateway.callbacks.base import CallbackEvent
from gateway.callbacks.otlp import export, export_request
from gateway.callbacks.vendor import http_url, setting

DEFAULT_COLLECTOR = "http://localhost:6006"


def traces_url(collector: str) -> str:
    collector = collector.rstrip("/")
    if collector.endswith("/v1/traces"):
        return collector
    if collector.endswith("/v1"):
        return f"{collector}/traces"
    return f"{collector}/v1/traces"


class PhoenixSink:
    name: ClassVar[str] = "arize_phoenix"
    max_batch: ClassVar[int] = 25  # spans of up to ~130 kB with content: ~3 MB a request
    environment: ClassVar[tuple[str, ...]] = (
        "PHOENIX_COLLECTOR_HTTP_ENDPOINT",
        "PHOENIX_COLLECTOR_ENDPOINT",
        "PHOENIX_API_KEY",
        "PHOENIX_PROJECT_NAME",
    )

    def __init__(self, settings: Mapping[str, str]) -> None:
        name = "PHOENIX_COLLECTOR_HTTP_ENDPOINT"
        if not setting(settings, name):
            name = "PHOENIX_COLLECTOR_ENDPOINT"
        self.url = traces_url(http_url(settings, name, DEFAULT_COLLECTOR))
        api_key = setting(settings, "PHOENIX_API_KEY")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.project = setting(settings, "PHOENIX_PROJECT_NAME", "default")

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        body = export_request(events, resource={"openinference.project.name": self.project})
        await export(client, self.url, body, headers=self.headers)
