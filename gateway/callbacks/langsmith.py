"""LangSmith: `POST {endpoint}/runs/batch` (header `x-api-key`) with `{"post": [run, ...]}`, one
root `llm` run per request in the project (`session_name`), its `outputs.usage_metadata` holding
input, output and total tokens and the cost (`total_cost`), as LangSmith's cost tracking reads it.

Settings (the SDK's environment names; LiteLLM's callback_vars): `langsmith_api_key` (or
`langchain_api_key`, required), `langsmith_project` (or `langchain_project`; default
"default"), `langsmith_endpoint` (or `langsmith_base_url`, `langchain_endpoint`; default
https://api.smith.langchain.com).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from gateway.callbacks.base import CallbackEvent, SinkRetryable, response_check
from gateway.callbacks.common import cost_float, event_uuid, iso, json_bytes

DEFAULT_ENDPOINT = "https://api.smith.langchain.com"


class LangSmithSink:
    name: ClassVar[str] = "langsmith"
    max_batch: ClassVar[int] = 100
    environment: ClassVar[tuple[str, ...]] = (
        "LANGSMITH_API_KEY",
        "LANGSMITH_PROJECT",
        "LANGSMITH_ENDPOINT",
        "LANGSMITH_BASE_URL",
        "LANGCHAIN_API_KEY",
        "LANGCHAIN_PROJECT",
        "LANGCHAIN_ENDPOINT",
    )

    def __init__(self, settings: Mapping[str, str]) -> None:
        key = settings.get("langsmith_api_key") or settings.get("langchain_api_key")
        if not key:
            raise ValueError("langsmith needs LANGSMITH_API_KEY (or LANGCHAIN_API_KEY)")
        endpoint = (
            settings.get("langsmith_endpoint")
            or settings.get("langsmith_base_url")
            or settings.get("langchain_endpoint")
            or DEFAULT_ENDPOINT
        )
        self.url = f"{endpoint.rstrip('/')}/runs/batch"
        self.headers = {"x-api-key": key, "Content-Type": "application/json"}
        self.project = (
            settings.get("langsmith_project") or settings.get("langchain_project") or "default"
        )

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        body = json_bytes({"post": [langsmith_run(e, project=self.project) for e in events]})
        try:
            response = await client.post(self.url, content=body, headers=self.headers)
        except httpx.TransportError as exc:
            raise SinkRetryable(f"langsmith: {type(exc).__name__}") from exc
        response_check(response)


def _dotted(seconds: float, run_id: str) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return f"{moment.strftime('%Y%m%dT%H%M%S%f')}Z{run_id}"


def langsmith_run(event: CallbackEvent, *, project: str) -> dict[str, Any]:
    run_id = event_uuid(event, "langsmith")
    error = event["error"]
    usage: dict[str, Any] = {
        "input_tokens": event["prompt_tokens"],
        "output_tokens": event["completion_tokens"],
        "total_tokens": event["total_tokens"],
        "total_cost": cost_float(event),
    }
    if event["cached_tokens"]:
        usage["input_token_details"] = {"cache_read": event["cached_tokens"]}
    outputs: dict[str, Any] = {"usage_metadata": usage}
    if "output" in event:
        outputs["choices"] = event["output"]
    inputs: dict[str, Any] = {"model": event["model"]}
    if "input" in event:
        inputs["messages"] = event["input"]
    run: dict[str, Any] = {
        "id": run_id,
        "trace_id": run_id,
        "dotted_order": _dotted(event["started_at"], run_id),
        "name": str(event["metadata"].get("run_name") or f"ogem-{event['endpoint']}"),
        "run_type": "llm",
        "start_time": iso(event["started_at"]),
        "end_time": iso(event["ended_at"]),
        "inputs": inputs,
        "outputs": outputs,
        "session_name": project,
        "tags": event["tags"],
        "extra": {
            "metadata": {
                "ls_provider": event["provider"],
                "ls_model_name": event["response_model"] or event["model"],
                "ls_model_type": "chat",
                "request_id": event["request_id"],
                "trace_id": event["trace_id"],
                "deployment": event["deployment"],
                "status_code": event["status_code"],
                "cost": event["cost"],
                "organization_id": event["organization_id"],
                "team_id": event["team_id"],
                "key_name": event["key_name"],
                "end_user": event["end_user"],
                "requester_metadata": event["metadata"],
            }
        },
    }
    if error is not None:
        run["error"] = f"{error['status']} {error['type']}: {error['message']}"
    if event["ttft_ms"] is not None:
        run["events"] = [
            {"name": "new_token", "time": iso(event["started_at"] + event["ttft_ms"] / 1000)}
        ]
    return run
