"""Arize AX: OTLP/HTTP traces with OpenInference attributes (otlp.py).

API: `POST {ARIZE_HTTP_ENDPOINT}` (default `https://otlp.arize.com/v1/traces`), protobuf
`ExportTraceServiceRequest`, with the headers `space_id` and `api_key` (Arize's "Send traces via
OTLP" guide); the project is the resource attribute `openinference.project.name`.

Settings (LiteLLM's `arize` callback names them): `ARIZE_SPACE_ID` (or the older
`ARIZE_SPACE_KEY`), `ARIZE_API_KEY` (both required), `ARIZE_HTTP_ENDPOINT` (full traces URL;
`ARIZE_ENDPOINT` is read too when it is an http(s) URL), `ARIZE_PROJECT_NAME` (default `ogem`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import httpx

from gateway.callbacks.base import CallbackEvent
from gateway.callbacks.otlp import export, export_request
from gateway.callbacks.vendor import http_url, required, setting

DEFAULT_ENDPOINT = "https://otlp.arize.com/v1/traces"


class ArizeSink:
    name: ClassVar[str] = "arize"
    max_batch: ClassVar[int] = 25  # spans of up to ~130 kB with content: ~3 MB a request
    environment: ClassVar[tuple[str, ...]] = (
        "ARIZE_SPACE_ID",
        "ARIZE_SPACE_KEY",
        "ARIZE_API_KEY",
        "ARIZE_HTTP_ENDPOINT",
        "ARIZE_ENDPOINT",
        "ARIZE_PROJECT_NAME",
    )

    def __init__(self, settings: Mapping[str, str]) -> None:
        space = setting(settings, "ARIZE_SPACE_ID") or setting(settings, "ARIZE_SPACE_KEY")
        if not space:
            raise ValueError("the arize callback needs ARIZE_SPACE_ID (or ARIZE_SPACE_KEY)")
        grpc_or_http = setting(settings, "ARIZE_ENDPOINT")
        default = grpc_or_http if grpc_or_http.endswith("/traces") else DEFAULT_ENDPOINT
        self.url = http_url(settings, "ARIZE_HTTP_ENDPOINT", default)
        self.headers = {"space_id": space, "api_key": required(settings, "ARIZE_API_KEY", "arize")}
        self.project = setting(settings, "ARIZE_PROJECT_NAME", "ogem")

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        body = export_request(events, resource={"openinference.project.name": self.project})
        await export(client, self.url, body, headers=self.headers)
