"""Helicone: each request logged through Helicone's custom (async) logging API.

API: `POST https://api.worker.helicone.ai/custom/v1/log` with `Authorization: Bearer
HELICONE_API_KEY` and `{"providerRequest": {"url", "json", "meta"}, "providerResponse":
{"headers", "status", "json"}, "timing": {"startTime": {"seconds", "milliseconds"}, "endTime":
{...}, "timeToFirstToken"}}` (Helicone's "Manual Logger - cURL"). The request's `json` carries
the model (and the messages with content logging on); the response's `json` is an OpenAI-shaped
answer with `model`, `usage` (Helicone prices it) and, with content on, `choices`, or the
error for a failure; `meta` carries Helicone's headers (`Helicone-User-Id`,
`Helicone-Session-Id`, `Helicone-Property-*`: Ogem's cost, request id, team, key, tags).

One event a request: the API logs one call at a time.

Settings: `HELICONE_API_KEY` (required), `HELICONE_WORKER_URL` (default
`https://api.worker.helicone.ai`; `https://api.us.helicone.ai` or `https://api.helicone.ai` per
Helicone's docs, or a self-hosted worker).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
import orjson

from gateway.callbacks.base import CallbackEvent
from gateway.callbacks.common import cost_float
from gateway.callbacks.vendor import bounded, http_url, post, required

DEFAULT_WORKER = "https://api.worker.helicone.ai"


def _time(seconds: float) -> dict[str, int]:
    whole = int(seconds)
    return {"seconds": whole, "milliseconds": round((seconds - whole) * 1000) % 1000}


def helicone_log(event: CallbackEvent) -> dict[str, Any]:
    request_json: dict[str, Any] = {"model": event["model"], "stream": event["stream"]}
    if "input" in event:
        key = "messages" if event["endpoint"].startswith("chat") else "input"
        request_json[key] = bounded(event["input"])
    meta = {
        "Helicone-Property-Ogem-Request-Id": event["request_id"],
        "Helicone-Property-Ogem-Cost-Usd": event["cost"] or "0",
        "Helicone-Property-Ogem-Provider": event["provider"],
        "Helicone-Property-Ogem-Deployment": event["deployment"],
    }
    if event["end_user"]:
        meta["Helicone-User-Id"] = event["end_user"]
    session = event["metadata"].get("session_id")
    if isinstance(session, str) and session:
        meta["Helicone-Session-Id"] = session
    for name, value in (
        ("Organization-Id", event["organization_id"]),
        ("Team-Id", event["team_id"]),
        ("Key-Id", event["key_id"]),
    ):
        if value is not None:
            meta[f"Helicone-Property-Ogem-{name}"] = str(value)
    if event["key_name"]:
        meta["Helicone-Property-Ogem-Key-Name"] = event["key_name"]
    if event["tags"]:
        meta["Helicone-Property-Ogem-Tags"] = ",".join(str(t) for t in event["tags"])
    response_json: dict[str, Any] = {
        "id": event["request_id"],
        "object": "embedding" if event["endpoint"] == "embeddings" else "chat.completion",
        "model": event["response_model"] or event["model"],
        "usage": {
            "prompt_tokens": event["prompt_tokens"],
            "completion_tokens": event["completion_tokens"],
            "total_tokens": event["total_tokens"],
            "prompt_tokens_details": {"cached_tokens": event["cached_tokens"]},
            "cost": cost_float(event),
        },
    }
    if "output" in event:
        key = "data" if event["endpoint"] == "embeddings" else "choices"
        response_json[key] = bounded(event["output"])
    error = event["error"]
    if error is not None:
        response_json["error"] = {"type": error["type"], "message": error["message"]}
    timing: dict[str, Any] = {
        "startTime": _time(event["started_at"]),
        "endTime": _time(event["ended_at"]),
    }
    if event["ttft_ms"] is not None:
        timing["timeToFirstToken"] = event["ttft_ms"]
    return {
        "providerRequest": {"url": "custom-model-nopath", "json": request_json, "meta": meta},
        "providerResponse": {"headers": {}, "status": event["status_code"], "json": response_json},
        "timing": timing,
    }


class HeliconeSink:
    name: ClassVar[str] = "helicone"
    max_batch: ClassVar[int] = 1
    environment: ClassVar[tuple[str, ...]] = ("HELICONE_API_KEY", "HELICONE_WORKER_URL")

    def __init__(self, settings: Mapping[str, str]) -> None:
        api_key = required(settings, "HELICONE_API_KEY", self.name)
        base = http_url(settings, "HELICONE_WORKER_URL", DEFAULT_WORKER)
        self.url = f"{base}/custom/v1/log"
        self.headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        for event in events:
            body = orjson.dumps(helicone_log(event))
            await post(client, self.url, headers=self.headers, content=body)
