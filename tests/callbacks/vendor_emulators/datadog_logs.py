"""Datadog's Logs HTTP intake, from its API reference ("Send logs", v2): `POST /api/v2/logs` with
`DD-API-KEY` (403 when wrong), a JSON array of log entries (or one entry), at most 1,000 entries
and 5 MB uncompressed a request (413 beyond). An entry is an object whose `message` is required;
`ddsource`, `ddtags` (comma-separated tags), `hostname` and `service` are strings and `status` a
log level. Accepted logs answer 202 with `{}`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.callbacks.vendor_emulators.ingest import IngestEmulator, Refused, json_body, require
from tests.emulators.scripted import Received, json_response

API_KEY = "dd-logs-emulator-api-key"
LEVELS = {"emerg", "alert", "critical", "error", "warning", "notice", "info", "debug"}


def _entry(entry: Any) -> None:
    require(isinstance(entry, dict), "a log entry is no object")
    require(isinstance(entry.get("message"), str), "message is required and a string")
    for field in ("ddsource", "ddtags", "hostname", "service"):
        require(isinstance(entry.get(field, ""), str), f"{field} must be a string")
    require(entry.get("status", "info") in LEVELS, "status is no log level")
    tags = [tag for tag in entry.get("ddtags", "").split(",") if tag]
    require(all(":" in tag for tag in tags), "ddtags are key:value")


class DatadogLogsEmulator(IngestEmulator):
    name = "datadog-logs-emulator"
    path = "/api/v2/logs"
    accepted_status = 202
    agent = False  # True: stands for the Datadog Agent rather than Datadog's intake

    def ingest(self, received: Received, match_info: dict[str, str]) -> list[Any]:
        # The Agent adds the account's key to what it forwards: it takes requests without one.
        if not self.agent and received.headers.get("dd-api-key") != API_KEY:
            raise Refused(403, "Forbidden")
        if len(received.raw) > 5_000_000:
            raise Refused(413, "Payload too large")
        body = json_body(received)
        entries = body if isinstance(body, list) else [body]
        require(len(entries) <= 1_000, "at most 1000 entries a request")
        for entry in entries:
            _entry(entry)
        return list(entries)

    def refusal(self, refused: Refused) -> web.Response:
        return json_response(
            {"errors": [{"status": str(refused.status), "detail": refused.message}]},
            status=refused.status,
        )
