"""Arize AX's OTLP/HTTP traces endpoint (`POST /v1/traces`), from Arize's "Send traces via
OTLP" guide: the `space_id` and `api_key` headers must name the space and its key (401
otherwise), and the spans' resource must name the project (`openinference.project.name`), else
400."""

from __future__ import annotations

from typing import Any

from tests.callbacks.vendor_emulators.ingest import OtlpEmulator, Refused, require
from tests.emulators.scripted import Received

SPACE_ID = "U3BhY2U6MTIzNDU="
API_KEY = "arize-emulator-key"


class ArizeEmulator(OtlpEmulator):
    name = "arize-emulator"

    def authorize(self, received: Received) -> dict[str, Any]:
        if received.headers.get("space_id") != SPACE_ID:
            raise Refused(401, "unknown space_id")
        if received.headers.get("api_key") != API_KEY:
            raise Refused(401, "invalid api_key")
        return {}

    def check_resource(self, resource: dict[str, Any]) -> None:
        project = resource.get("openinference.project.name")
        require(isinstance(project, str) and bool(project), "no openinference.project.name")
