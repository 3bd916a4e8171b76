"""The Weave trace server's batch call API, from its trace server interface: `POST
/call/upsert_batch` with HTTP basic auth `api:<WANDB_API_KEY>` (401 when wrong) and `{"batch":
[{"mode": "start", "req": {"start": StartedCallSchemaForInsert}} | {"mode": "end", "req":
{"end": EndedCallSchemaForInsert}}]}`. A start needs `project_id` (`entity/project`),
`op_name`, an ISO 8601 `started_at`, `attributes` and `inputs` objects; an end needs
`project_id`, the `id` of a started call, an ISO 8601 `ended_at` and a `summary` object whose
`usage` maps a model to integer counts. Records are the calls, start and end merged."""

from __future__ import annotations

import base64
import datetime
from typing import Any

from tests.callbacks.vendor_emulators.ingest import IngestEmulator, Refused, json_body, require
from tests.emulators.scripted import Received

API_KEY = "wandb-emulator-key-0123456789abcdef01234567"
START_FIELDS = {
    "project_id",
    "id",
    "op_name",
    "display_name",
    "trace_id",
    "parent_id",
    "thread_id",
    "turn_id",
    "started_at",
    "attributes",
    "inputs",
    "wb_user_id",
    "wb_run_id",
    "wb_run_step",
}
END_FIELDS = {"project_id", "id", "ended_at", "exception", "output", "summary"}


def _datetime(value: Any, where: str) -> None:
    require(isinstance(value, str), f"{where} must be an ISO 8601 string")
    try:
        datetime.datetime.fromisoformat(value)
    except ValueError as exc:
        raise Refused(400, f"{where}: {exc}") from exc


def _project(value: Any) -> None:
    require(isinstance(value, str) and value.count("/") == 1, "project_id is entity/project")


class WeaveEmulator(IngestEmulator):
    name = "weave-emulator"
    path = "/call/upsert_batch"

    def __init__(self) -> None:
        super().__init__()
        self.calls: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.calls.clear()

    def ingest(self, received: Received, match_info: dict[str, str]) -> list[Any]:
        expected = "Basic " + base64.b64encode(f"api:{API_KEY}".encode()).decode()
        if received.headers.get("authorization") != expected:
            raise Refused(401, "Unauthorized")
        body = json_body(received)
        batch = body.get("batch") if isinstance(body, dict) else None
        require(isinstance(batch, list) and bool(batch), "batch must be a non-empty list")
        started = dict(self.calls)
        ended: list[dict[str, Any]] = []
        for item in batch:
            require(isinstance(item, dict), "a batch item is no object")
            mode, req = item.get("mode"), item.get("req")
            require(mode in ("start", "end") and isinstance(req, dict), "mode is start or end")
            call = req.get(mode)
            require(isinstance(call, dict), f"req.{mode} is required")
            if mode == "start":
                unknown = set(call) - START_FIELDS
                require(not unknown, f"unknown start fields {sorted(unknown)}")
                _project(call.get("project_id"))
                require(isinstance(call.get("op_name"), str) and call["op_name"], "op_name")
                _datetime(call.get("started_at"), "started_at")
                require(isinstance(call.get("attributes"), dict), "attributes is an object")
                require(isinstance(call.get("inputs"), dict), "inputs is an object")
                require(isinstance(call.get("id"), str), "the call id is a string")
                started[call["id"]] = {"start": call}
            else:
                unknown = set(call) - END_FIELDS
                require(not unknown, f"unknown end fields {sorted(unknown)}")
                _project(call.get("project_id"))
                require(call.get("id") in started, "an end for a call never started")
                _datetime(call.get("ended_at"), "ended_at")
                summary = call.get("summary")
                require(isinstance(summary, dict), "summary is an object")
                for model, usage in summary.get("usage", {}).items():
                    require(
                        isinstance(usage, dict) and all(isinstance(n, int) for n in usage.values()),
                        f"usage of {model} holds non-integer counts",
                    )
                exception = call.get("exception")
                require(exception is None or isinstance(exception, str), "exception")
                started[call["id"]] = {**started[call["id"]], "end": call}
                ended.append(started[call["id"]])
        self.calls = started
        return ended
