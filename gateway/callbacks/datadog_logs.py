"""Datadog Logs (LiteLLM's `datadog` callback): one log entry per request through the Logs HTTP
intake.

API: `POST https://http-intake.logs.{DD_SITE}/api/v2/logs` with the header `DD-API-KEY` and a
JSON array of entries (at most 1,000 a request, 5 MB uncompressed, 1 MB an entry); each entry has
`ddsource`, `ddtags` (comma-separated `key:value`), `hostname`, `service`, `status` and a
`message`, here the request's record as a JSON string, in the field names of LiteLLM's standard
logging payload (`response_cost`, `model_group`, `startTime`...) so Datadog facets and monitors
built on LiteLLM's logs keep working. Datadog answers 202.

Settings (the names LiteLLM's `datadog` callback reads): `DD_API_KEY` (required unless the Agent is
used), `DD_SITE` (default `datadoghq.com`), `DD_SOURCE` (default `ogem`), `DD_SERVICE` (default
`ogem`), `DD_ENV`, `DD_VERSION` (tags when set), `HOSTNAME`, `DD_BASE_URL` (replaces
`https://http-intake.logs.{DD_SITE}`, for a proxy), `LITELLM_DD_AGENT_HOST` with
`LITELLM_DD_AGENT_PORT` (default 10518): the Datadog Agent, `http://{host}:{port}`, unless
`DD_BASE_URL` is set.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
import orjson

from gateway.callbacks.base import CallbackEvent
from gateway.callbacks.common import cost_float, iso
from gateway.callbacks.datadog_llm_obs import (
    datadog_api_key,
    datadog_base,
    datadog_headers,
    datadog_site,
)
from gateway.callbacks.vendor import (
    bounded,
    error_text,
    post,
    setting,
    size_chunks,
)

INTAKE_PATH = "/api/v2/logs"
REQUEST_BYTES = 4_000_000  # the intake takes 5 MB a request
MAX_ENTRIES = 1_000  # the intake's array limit


def log_payload(event: CallbackEvent) -> dict[str, Any]:
    """The request as LiteLLM's standard logging payload names it (the fields Ogem has)."""
    payload: dict[str, Any] = {
        "id": event["request_id"],
        "trace_id": event["trace_id"] or None,
        "call_type": event["endpoint"],
        "stream": event["stream"],
        "status": "success" if event["kind"] == "success" else "failure",
        "response_cost": cost_float(event),
        "prompt_tokens": event["prompt_tokens"],
        "completion_tokens": event["completion_tokens"],
        "total_tokens": event["total_tokens"],
        "cache_hit": event["cache_hit"],
        "startTime": event["started_at"],
        "endTime": event["ended_at"],
        "completionStartTime": (
            event["started_at"] + event["ttft_ms"] / 1000 if event["ttft_ms"] is not None else None
        ),
        "response_time": event["latency_ms"] / 1000,
        "model": event["response_model"] or event["model"],
        "model_group": event["model"],
        "model_id": event["deployment"],
        "custom_llm_provider": event["provider"],
        "end_user": event["end_user"],
        "request_tags": event["tags"],
        "metadata": {
            "user_api_key_alias": event["key_name"] or None,
            "user_api_key_org_id": event["organization_id"],
            "user_api_key_team_id": event["team_id"],
            "user_api_key_user_id": event["user_id"],
            "user_api_key_id": event["key_id"],
            "requester_metadata": event["metadata"],
            "cached_tokens": event["cached_tokens"],
            "status_code": event["status_code"],
            "started_at": iso(event["started_at"]),
        },
        "error_str": error_text(event) or None,
    }
    if "input" in event:
        payload["messages"] = bounded(event["input"])
    if "output" in event:
        payload["response"] = bounded(event["output"])
    return payload


class DatadogLogsSink:
    name: ClassVar[str] = "datadog"
    max_batch: ClassVar[int] = 500
    environment: ClassVar[tuple[str, ...]] = (
        "DD_API_KEY",
        "DD_SITE",
        "DD_SOURCE",
        "DD_SERVICE",
        "DD_ENV",
        "DD_VERSION",
        "HOSTNAME",
        "DD_BASE_URL",
        "LITELLM_DD_AGENT_HOST",
        "LITELLM_DD_AGENT_PORT",
    )

    def __init__(self, settings: Mapping[str, str]) -> None:
        self.api_key = datadog_api_key(settings, self.name)
        site = datadog_site(settings)
        base = datadog_base(
            settings,
            direct=f"https://http-intake.logs.{site}",
            port="LITELLM_DD_AGENT_PORT",
            default_port="10518",
        )
        self.url = base + INTAKE_PATH
        self.source = setting(settings, "DD_SOURCE", "ogem")
        self.service = setting(settings, "DD_SERVICE", "ogem")
        self.hostname = setting(settings, "HOSTNAME") or socket.gethostname()
        tags = [f"service:{self.service}"]
        for name, tag in (("DD_ENV", "env"), ("DD_VERSION", "version")):
            value = setting(settings, name)
            if value:
                tags.append(f"{tag}:{value}")
        self.tags = ",".join(tags)

    def entry(self, event: CallbackEvent) -> dict[str, Any]:
        return {
            "ddsource": self.source,
            "ddtags": self.tags,
            "hostname": self.hostname,
            "service": self.service,
            "status": "info" if event["kind"] == "success" else "error",
            "message": orjson.dumps(log_payload(event), default=str).decode(),
        }

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        headers = datadog_headers(self.api_key)
        entries = [self.entry(event) for event in events]
        for chunk in size_chunks(entries, limit=REQUEST_BYTES, max_items=MAX_ENTRIES):
            await post(client, self.url, headers=headers, content=orjson.dumps(chunk))
