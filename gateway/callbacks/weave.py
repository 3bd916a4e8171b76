"""Weights & Biases Weave: one call per request, through the Weave trace server's batch API.

API: `POST {WF_TRACE_SERVER_URL}/call/upsert_batch` (default `https://trace.wandb.ai`) with
HTTP basic auth `api:WANDB_API_KEY` and `{"batch": [{"mode": "start", "req": {"start": {...}}},
{"mode": "end", "req": {"end": {...}}}, ...]}`, the `StartedCallSchemaForInsert` and
`EndedCallSchemaForInsert` shapes of Weave's trace server interface: `project_id`
(`entity/project`), `id`, `op_name`, `display_name`, `trace_id`, `thread_id`, `started_at`,
`attributes`, `inputs`, then `ended_at`, `output`, `exception` and `summary`, where
`summary.usage[model]` holds `requests`, `prompt_tokens`, `completion_tokens` and `total_tokens`
as Weave's own LLM integrations report them (Weave prices them), and `summary.ogem` Ogem's cost.
Content (`inputs.messages`, `output`) is sent only with content logging on.

Settings: `WANDB_API_KEY` (required), `WANDB_PROJECT_ID` (`entity/project`, as LiteLLM's
`weave_otel` callback reads it; else `WANDB_ENTITY` and `WANDB_PROJECT`), `WF_TRACE_SERVER_URL`
(the Weave SDK's name for the trace server; for dedicated cloud, `https://HOST/traces`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
import orjson

from gateway.callbacks.base import CallbackEvent
from gateway.callbacks.common import cost_float, iso
from gateway.callbacks.vendor import (
    basic_auth,
    bounded,
    error_text,
    event_ids,
    http_url,
    post,
    required,
    setting,
    size_chunks,
    span_name,
)

DEFAULT_SERVER = "https://trace.wandb.ai"
REQUEST_BYTES = 4_000_000


def weave_calls(event: CallbackEvent, *, project_id: str) -> list[dict[str, Any]]:
    trace_id, _ = event_ids(event)
    call_id = str(uuid.UUID(hashlib.sha256(event["request_id"].encode()).hexdigest()[:32]))
    model = event["response_model"] or event["model"]
    inputs: dict[str, Any] = {"model": event["model"]}
    if "input" in event:
        key = "messages" if event["endpoint"].startswith("chat") else "input"
        inputs[key] = bounded(event["input"])
    start: dict[str, Any] = {
        "project_id": project_id,
        "id": call_id,
        # Weave reads `/` in an op name as a ref's path: `ogem.chat.completions`.
        "op_name": span_name(event).replace("/", "."),
        "display_name": f"{event['provider']}/{model}",
        "trace_id": str(uuid.UUID(trace_id)),
        "parent_id": None,
        "started_at": iso(event["started_at"]),
        "attributes": {
            "ogem": {
                "request_id": event["request_id"],
                "endpoint": event["endpoint"],
                "provider": event["provider"],
                "deployment": event["deployment"],
                "organization_id": event["organization_id"],
                "team_id": event["team_id"],
                "key_id": event["key_id"],
                "key_name": event["key_name"],
                "user_id": event["user_id"],
                "end_user": event["end_user"],
                "stream": event["stream"],
                "tags": event["tags"],
            },
            "metadata": event["metadata"],
        },
        "inputs": inputs,
    }
    session = event["metadata"].get("session_id")
    if isinstance(session, str) and session:
        start["thread_id"] = session
    end: dict[str, Any] = {
        "project_id": project_id,
        "id": call_id,
        "ended_at": iso(event["ended_at"]),
        "exception": error_text(event) or None,
        "output": bounded(event["output"]) if "output" in event else None,
        "summary": {
            "usage": {
                model: {
                    "requests": 1,
                    "prompt_tokens": event["prompt_tokens"],
                    "completion_tokens": event["completion_tokens"],
                    "total_tokens": event["total_tokens"],
                    "cached_tokens": event["cached_tokens"],
                }
            },
            "ogem": {
                "cost_usd": cost_float(event),
                "latency_ms": event["latency_ms"],
                "ttft_ms": event["ttft_ms"],
                "status_code": event["status_code"],
                "cache_hit": event["cache_hit"],
            },
        },
    }
    return [
        {"mode": "start", "req": {"start": start}},
        {"mode": "end", "req": {"end": end}},
    ]


class WeaveSink:
    name: ClassVar[str] = "weave"
    max_batch: ClassVar[int] = 100
    environment: ClassVar[tuple[str, ...]] = (
        "WANDB_API_KEY",
        "WANDB_PROJECT_ID",
        "WANDB_ENTITY",
        "WANDB_PROJECT",
        "WF_TRACE_SERVER_URL",
    )

    def __init__(self, settings: Mapping[str, str]) -> None:
        api_key = required(settings, "WANDB_API_KEY", self.name)
        project_id = setting(settings, "WANDB_PROJECT_ID")
        if not project_id:
            entity, project = setting(settings, "WANDB_ENTITY"), setting(settings, "WANDB_PROJECT")
            project_id = f"{entity}/{project}" if entity and project else ""
        if project_id.count("/") != 1 or not all(project_id.split("/")):
            raise ValueError("the weave callback needs WANDB_PROJECT_ID as entity/project")
        self.project_id = project_id
        self.url = http_url(settings, "WF_TRACE_SERVER_URL", DEFAULT_SERVER) + "/call/upsert_batch"
        self.headers = {"Authorization": basic_auth("api", api_key)}

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        headers = {**self.headers, "Content-Type": "application/json"}
        calls = [weave_calls(event, project_id=self.project_id) for event in events]
        for chunk in size_chunks(calls, limit=REQUEST_BYTES, max_items=self.max_batch):
            batch = [item for pair in chunk for item in pair]
            await post(client, self.url, headers=headers, content=orjson.dumps({"batch": batch}))
