"""Arize Phoenix's OTLP/HTTP collector (`POST /v1/traces`), from Phoenix's "Setup using base
OTEL" guide: with authentication on, `Authorization: Bearer <PHOENIX_API_KEY>` (401 otherwise);
spans go to the resource's `openinference.project.name`, else the `default` project."""

from __future__ import annotations

from typing import Any

from tests.callbacks.vendor_emulators.ingest import OtlpEmulator, Refused
from tests.emulators.scripted import Received

API_KEY = "phoenix-emulator-key"


class PhoenixEmulator(OtlpEmulator):
    name = "phoenix-emulator"

    def authorize(self, received: Received) -> dict[str, Any]:
        if received.headers.get("authorization") != f"Bearer {API_KEY}":
            raise Refused(401, "Invalid token")
        return {}

    def check_resource(self, resource: dict[str, Any]) -> None:
        resource.setdefault("openinference.project.name", "default")
