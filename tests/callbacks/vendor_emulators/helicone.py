"""Helicone's custom logging API, from "Manual Logger - cURL": `POST /custom/v1/log` with
`Authorization: Bearer <HELICONE_API_KEY>` (401 when wrong) and `{"providerRequest": {"url",
"json", "meta"}, "providerResponse": {"headers", "status", "json" | "textBody"}, "timing"?:
{"startTime": {"seconds", "milliseconds"}, "endTime": {...}, "timeToFirstToken"?}}`; `meta`
maps header names to strings. Accepted logs answer 200."""

from __future__ import annotations

from typing import Any

from tests.callbacks.vendor_emulators.ingest import IngestEmulator, Refused, json_body, require
from tests.emulators.scripted import Received

API_KEY = "sk-helicone-emulator"


def _time(value: Any, where: str) -> None:
    require(isinstance(value, dict), f"{where} is no object")
    require(isinstance(value.get("seconds"), int), f"{where}.seconds must be an integer")
    milliseconds = value.get("milliseconds")
    require(isinstance(milliseconds, int) and 0 <= milliseconds < 1000, f"{where}.milliseconds")


class HeliconeEmulator(IngestEmulator):
    name = "helicone-emulator"
    path = "/custom/v1/log"

    def ingest(self, received: Received, match_info: dict[str, str]) -> list[Any]:
        if received.headers.get("authorization") != f"Bearer {API_KEY}":
            raise Refused(401, "Invalid API key")
        body = json_body(received)
        require(isinstance(body, dict), "the body is no object")
        request = body.get("providerRequest")
        require(isinstance(request, dict), "providerRequest is required")
        require(isinstance(request.get("url"), str), "providerRequest.url is required")
        require(isinstance(request.get("json"), dict), "providerRequest.json is required")
        meta = request.get("meta", {})
        require(
            isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values()),
            "providerRequest.meta maps names to strings",
        )
        response = body.get("providerResponse")
        require(isinstance(response, dict), "providerResponse is required")
        require(isinstance(response.get("status"), int), "providerResponse.status is required")
        require(isinstance(response.get("headers"), dict), "providerResponse.headers is required")
        require(
            isinstance(response.get("json"), dict) or isinstance(response.get("textBody"), str),
            "providerResponse needs json or textBody",
        )
        timing = body.get("timing")
        if timing is not None:
            _time(timing.get("startTime"), "timing.startTime")
            _time(timing.get("endTime"), "timing.endTime")
            ttft = timing.get("timeToFirstToken")
            require(ttft is None or isinstance(ttft, int | float), "timeToFirstToken")
        return [body]
