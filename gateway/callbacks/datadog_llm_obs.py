"""Datadog LLM Observability: one `llm` (or `embedding`) span per request, through the LLM
Observability HTTP API.

API: `POST https://api.{DD_SITE}/api/intake/llm-obs/v1/trace/spans` with the header
`DD-API-KEY` and `{"data": {"type": "span", "attributes": {"ml_app", "tags", "spans": [...]}}}`;
each span has `trace_id`, `span_id`, `parent_id` (`"undefined"` for a root), `name`, `start_ns`,
`duration` (ns), `status` (`ok`/`error`), `meta` (`kind`, `model_name`, `model_provider`,
`input`/`output` as `messages` or `value`, `metadata`, `error`) and `metrics` (`input_tokens`,
`output_tokens`, `total_tokens`, `cache_read_input_tokens`, `time_to_first_token` in seconds,
and `total_cost` in USD as LiteLLM sends it); the request's tags become `request_tag:` tags, as
LiteLLM names them. Datadog answers 202.

Settings (the names ddtrace and LiteLLM's `datadog_llm_observability` read): `DD_API_KEY` (required
unless the Agent is used: it adds its own), `DD_SITE` (default `datadoghq.com`), `DD_LLMOBS_ML_APP`
(else `DD_SERVICE`, else `ogem`), `DD_ENV` (an `env:` tag when set), `DD_BASE_URL` (replaces
`https://api.{DD_SITE}`, for a proxy), `LITELLM_DD_AGENT_HOST` with `LITELLM_DD_LLM_OBS_PORT`
(default 8126): the Datadog Agent, `http://{host}:{port}`, unless `DD_BASE_URL` is set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
import orjson

from gateway.callbacks.base import CallbackEvent
from gateway.callbacks.common import cost_float
from gateway.callbacks.vendor import (
    event_ids,
    http_url,
    input_messages,
    json_text,
    nanos,
    output_messages,
    post,
    required,
    setting,
    size_chunks,
    span_name,
)

INTAKE_PATH = "/api/intake/llm-obs/v1/trace/spans"
REQUEST_BYTES = 4_000_000  # the intake takes 5 MB a request
# Datadog's sites (docs.datadoghq.com/getting_started/site): a site names a Datadog host only.
SITE = re.compile(r"^([a-z0-9]+\.)?(datadoghq\.com|datadoghq\.eu|ddog-gov\.com)$")


def datadog_site(settings: Mapping[str, str]) -> str:
    """`DD_SITE`, checked: it goes into a host name the API key is sent to."""
    site = setting(settings, "DD_SITE", "datadoghq.com").lower()
    if not SITE.match(site):
        raise ValueError(f"DD_SITE is no Datadog site: {site}")
    return site


def datadog_api_key(settings: Mapping[str, str], sink: str) -> str:
    """`DD_API_KEY`: required for Datadog's own intake; optional through the Agent
    (`LITELLM_DD_AGENT_HOST`), which signs what it forwards with its own key, as LiteLLM allows."""
    if setting(settings, "LITELLM_DD_AGENT_HOST"):
        return setting(settings, "DD_API_KEY")
    return required(settings, "DD_API_KEY", sink)


def datadog_headers(api_key: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["DD-API-KEY"] = api_key
    return headers


def datadog_base(settings: Mapping[str, str], *, direct: str, port: str, default_port: str) -> str:
    """`DD_BASE_URL`; else, as LiteLLM reads them, the Datadog Agent at `LITELLM_DD_AGENT_HOST`
    on this product's own port setting (`port`: the Logs and LLM Observability intakes listen
    on different ones); else `direct`, Datadog's own intake."""
    host = setting(settings, "LITELLM_DD_AGENT_HOST")
    if host:
        number = setting(settings, port, default_port)
        if not number.isdigit():
            raise ValueError(f"{port} must be a port number")
        direct = f"http://{host}:{number}"
    return http_url(settings, "DD_BASE_URL", direct)


def _io(event: CallbackEvent, field: str) -> dict[str, Any] | None:
    if field not in event:
        return None
    messages = input_messages(event) if field == "input" else output_messages(event)
    if messages is not None:
        return {"messages": messages}
    return {"value": json_text(event.get(field))}


def llm_obs_span(event: CallbackEvent) -> dict[str, Any]:
    trace_id, span_id = event_ids(event)
    meta: dict[str, Any] = {
        "kind": "embedding" if event["endpoint"] == "embeddings" else "llm",
        "model_name": event["response_model"] or event["model"],
        "model_provider": event["provider"] or "custom",
        "metadata": {
            "request_id": event["request_id"],
            "endpoint": event["endpoint"],
            "model_group": event["model"],
            "deployment": event["deployment"],
            "status_code": event["status_code"],
            "stream": event["stream"],
            "cache_hit": event["cache_hit"],
            "latency_ms": event["latency_ms"],
            "cost_usd": event["cost"],
            "request_metadata": event["metadata"],
        },
    }
    for field in ("input", "output"):
        io = _io(event, field)
        if io is not None:
            meta[field] = io
    error = event["error"]
    if event["kind"] == "failure" and error is not None:
        meta["error"] = {"message": error["message"], "type": error["type"]}
    metrics: dict[str, float] = {
        "input_tokens": float(event["prompt_tokens"]),
        "output_tokens": float(event["completion_tokens"]),
        "total_tokens": float(event["total_tokens"]),
        "cache_read_input_tokens": float(event["cached_tokens"]),
        "total_cost": cost_float(event),
    }
    if event["ttft_ms"] is not None:
        metrics["time_to_first_token"] = event["ttft_ms"] / 1000
    tags = [
        f"model:{event['model']}",
        f"provider:{event['provider']}",
        f"endpoint:{event['endpoint']}",
        *(f"request_tag:{tag}" for tag in event["tags"]),
    ]
    tenancy = {
        "organization_id": event["organization_id"],
        "team_id": event["team_id"],
        "key_id": event["key_id"],
        "user_id": event["user_id"],
    }
    tags.extend(f"{name}:{value}" for name, value in tenancy.items() if value is not None)
    if event["key_name"]:
        tags.append(f"key_name:{event['key_name']}")
    if event["end_user"]:
        tags.append(f"user_handle:{event['end_user']}")
    span: dict[str, Any] = {
        "parent_id": "undefined",
        "trace_id": trace_id,
        "span_id": span_id,
        "name": span_name(event),
        "start_ns": nanos(event["started_at"]),
        "duration": max(nanos(event["ended_at"]) - nanos(event["started_at"]), 0),
        "status": "error" if event["kind"] == "failure" else "ok",
        "meta": meta,
        "metrics": metrics,
        "tags": tags,
    }
    session = event["metadata"].get("session_id")
    if isinstance(session, str) and session:
        span["session_id"] = session
    return span


class DatadogLLMObsSink:
    name: ClassVar[str] = "datadog_llm_observability"
    max_batch: ClassVar[int] = 100
    environment: ClassVar[tuple[str, ...]] = (
        "DD_API_KEY",
        "DD_SITE",
        "DD_LLMOBS_ML_APP",
        "DD_SERVICE",
        "DD_ENV",
        "DD_BASE_URL",
        "LITELLM_DD_AGENT_HOST",
        "LITELLM_DD_LLM_OBS_PORT",
    )

    def __init__(self, settings: Mapping[str, str]) -> None:
        self.api_key = datadog_api_key(settings, self.name)
        site = datadog_site(settings)
        self.url = (
            datadog_base(
                settings,
                direct=f"https://api.{site}",
                port="LITELLM_DD_LLM_OBS_PORT",
                default_port="8126",
            )
            + INTAKE_PATH
        )
        self.ml_app = setting(settings, "DD_LLMOBS_ML_APP") or setting(
            settings, "DD_SERVICE", "ogem"
        )
        self.tags = ["source:ogem", f"service:{self.ml_app}"]
        env = setting(settings, "DD_ENV")
        if env:
            self.tags.append(f"env:{env}")

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        headers = datadog_headers(self.api_key)
        spans = [llm_obs_span(event) for event in events]
        for chunk in size_chunks(spans, limit=REQUEST_BYTES, max_items=self.max_batch):
            payload = {
                "data": {
                    "type": "span",
                    "attributes": {"ml_app": self.ml_app, "tags": self.tags, "spans": chunk},
                }
            }
            await post(client, self.url, headers=headers, content=orjson.dumps(payload))
