"""MLflow Tracing: spans to the tracking server's OTLP endpoint (MLflow 3.6+), one trace per
request in the configured experiment.

API: `POST {MLFLOW_TRACKING_URI}/v1/traces`, protobuf `ExportTraceServiceRequest` (otlp.py), with
the header `x-mlflow-experiment-id` (MLflow's "Collect OpenTelemetry traces into MLflow"). MLflow
translates the OpenInference attributes into its span type, inputs, outputs and token usage; the
sink also sets MLflow's own `mlflow.spanType`, `mlflow.spanInputs`/`mlflow.spanOutputs` (content
logging on) and `mlflow.chat.tokenUsage`, JSON-encoded as MLflow stores span attributes.

Settings (as the MLflow client names them): `MLFLOW_TRACKING_URI` (required, an http(s) URL),
`MLFLOW_EXPERIMENT_ID` (default `0`, the Default experiment), and for a server with auth either
`MLFLOW_TRACKING_TOKEN` (bearer) or `MLFLOW_TRACKING_USERNAME` + `MLFLOW_TRACKING_PASSWORD`
(basic).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
import orjson

from gateway.callbacks.base import CallbackEvent
from gateway.callbacks.common import cost_float
from gateway.callbacks.otlp import AttributeValue, export, export_request, openinference_attributes
from gateway.callbacks.vendor import (
    TEXT_LIMIT,
    basic_auth,
    http_url,
    required,
    setting,
)


def _json(value: Any) -> str:
    """MLflow stores span attributes JSON-encoded; content past the limit becomes a cut string."""
    text = orjson.dumps(value, default=str).decode()
    return text if len(text) <= TEXT_LIMIT else orjson.dumps(text[:TEXT_LIMIT]).decode()


def mlflow_attributes(event: CallbackEvent) -> dict[str, AttributeValue]:
    attributes = openinference_attributes(event)
    span_type = "EMBEDDING" if event["endpoint"] == "embeddings" else "CHAT_MODEL"
    attributes["mlflow.spanType"] = _json(span_type)
    attributes["mlflow.chat.tokenUsage"] = _json(
        {
            "input_tokens": event["prompt_tokens"],
            "output_tokens": event["completion_tokens"],
            "total_tokens": event["total_tokens"],
        }
    )
    attributes["mlflow.llm.cost"] = _json({"total_cost": cost_float(event)})
    attributes["mlflow.llm.model"] = _json(event["response_model"] or event["model"])
    if "input" in event:
        attributes["mlflow.spanInputs"] = _json(event["input"])
    if "output" in event:
        attributes["mlflow.spanOutputs"] = _json(event["output"])
    return attributes


class MlflowSink:
    name: ClassVar[str] = "mlflow"
    max_batch: ClassVar[int] = 20  # spans of up to ~200 kB with content: ~4 MB a request
    environment: ClassVar[tuple[str, ...]] = (
        "MLFLOW_TRACKING_URI",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
    )

    def __init__(self, settings: Mapping[str, str]) -> None:
        required(settings, "MLFLOW_TRACKING_URI", "mlflow")
        self.url = http_url(settings, "MLFLOW_TRACKING_URI", "") + "/v1/traces"
        self.headers = {"x-mlflow-experiment-id": setting(settings, "MLFLOW_EXPERIMENT_ID", "0")}
        token = setting(settings, "MLFLOW_TRACKING_TOKEN")
        username = setting(settings, "MLFLOW_TRACKING_USERNAME")
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        elif username:
            password = setting(settings, "MLFLOW_TRACKING_PASSWORD")
            self.headers["Authorization"] = basic_auth(username, password)

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        body = export_request(events, resource={}, attributes=mlflow_attributes)
        await export(client, self.url, body, headers=self.headers)
