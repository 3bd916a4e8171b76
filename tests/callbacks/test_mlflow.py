"""The MLflow sink (gateway/callbacks/mlflow.py) against an emulator of the MLflow tracking
server's OTLP endpoint."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from gateway.callbacks.base import SinkRejected
from gateway.callbacks.mlflow import MlflowSink
from gateway.callbacks.registry import sink_class
from tests.callbacks.vendor_emulators.ingest import emulator_fixture
from tests.callbacks.vendor_emulators.mlflow import TOKEN, MlflowEmulator
from tests.callbacks.vendor_events import (
    callback_event,
    check_error_paths,
    content_event,
    failure_event,
)

mlflow = emulator_fixture(MlflowEmulator)


def settings(emulator: MlflowEmulator, **extra: str) -> dict[str, str]:
    return {"MLFLOW_TRACKING_URI": emulator.url, "MLFLOW_TRACKING_TOKEN": TOKEN, **extra}


async def test_traces_land_in_the_experiment_with_usage_and_cost(mlflow: MlflowEmulator) -> None:
    sink = MlflowSink(settings(mlflow, MLFLOW_EXPERIMENT_ID="42"))
    async with httpx.AsyncClient() as client:
        await sink.send([callback_event(), failure_event()], client=client)
    ok, failed = mlflow.records
    assert ok["experiment_id"] == "42"
    attributes = ok["attributes"]
    assert orjson.loads(attributes["mlflow.spanType"]) == "CHAT_MODEL"
    assert orjson.loads(attributes["mlflow.chat.tokenUsage"]) == {
        "input_tokens": 12,
        "output_tokens": 5,
        "total_tokens": 17,
    }
    assert orjson.loads(attributes["mlflow.llm.cost"]) == {"total_cost": 0.000123}
    assert attributes["llm.token_count.prompt"] == 12
    assert "mlflow.spanInputs" not in attributes
    assert failed["status"] == 2
    assert failed["attributes"]["http.response.status_code"] == 429


async def test_content_becomes_span_inputs_and_outputs(mlflow: MlflowEmulator) -> None:
    async with httpx.AsyncClient() as client:
        await MlflowSink(settings(mlflow)).send([content_event()], client=client)
    (span,) = mlflow.records
    assert span["experiment_id"] == "0"
    assert orjson.loads(span["attributes"]["mlflow.spanInputs"])[0] == {
        "role": "system",
        "content": "Be brief.",
    }
    assert orjson.loads(span["attributes"]["mlflow.spanOutputs"])[0]["message"]["content"] == "Hi!"


async def test_an_unknown_experiment_is_rejected(mlflow: MlflowEmulator) -> None:
    sink = MlflowSink(settings(mlflow, MLFLOW_EXPERIMENT_ID="999"))
    async with httpx.AsyncClient() as client:
        with pytest.raises(SinkRejected, match="404"):
            await sink.send([callback_event()], client=client)
    assert mlflow.records == []


async def test_error_paths(mlflow: MlflowEmulator) -> None:
    await check_error_paths(
        mlflow,
        MlflowSink,
        good=settings(mlflow),
        wrong_key={**settings(mlflow), "MLFLOW_TRACKING_TOKEN": "wrong"},
        url_setting="MLFLOW_TRACKING_URI",
    )


def test_registry_and_auth_settings() -> None:
    assert sink_class("mlflow") is MlflowSink
    basic = MlflowSink(
        {
            "MLFLOW_TRACKING_URI": "https://mlflow.example/",
            "MLFLOW_TRACKING_USERNAME": "ci",
            "MLFLOW_TRACKING_PASSWORD": "secret",
        }
    )
    assert basic.url == "https://mlflow.example/v1/traces"
    assert basic.headers["Authorization"] == "Basic " + base64.b64encode(b"ci:secret").decode()
    with pytest.raises(ValueError, match="MLFLOW_TRACKING_URI"):
        MlflowSink({})
    with pytest.raises(ValueError, match="http"):
        MlflowSink({"MLFLOW_TRACKING_URI": "databricks"})
