"""The MLflow tracking server's OTLP endpoint (`POST /v1/traces`, MLflow 3.6+), from MLflow's
"Collect OpenTelemetry traces into MLflow": the `x-mlflow-experiment-id` header names an
existing experiment (400 when missing, 404 when unknown); with auth on, a bearer token or basic
credentials (401 otherwise). Records carry the experiment id."""

from __future__ import annotations

from typing import Any

from tests.callbacks.vendor_emulators.ingest import OtlpEmulator, Refused
from tests.emulators.scripted import Received

TOKEN = "mlflow-emulator-token"
EXPERIMENTS = {"0", "42"}


class MlflowEmulator(OtlpEmulator):
    name = "mlflow-emulator"

    def authorize(self, received: Received) -> dict[str, Any]:
        if received.headers.get("authorization") != f"Bearer {TOKEN}":
            raise Refused(401, "You are not authenticated.")
        experiment = received.headers.get("x-mlflow-experiment-id")
        if not experiment:
            raise Refused(400, "Missing required header: x-mlflow-experiment-id")
        if experiment not in EXPERIMENTS:
            raise Refused(404, f"Could not find experiment with ID {experiment}")
        return {"experiment_id": experiment}
