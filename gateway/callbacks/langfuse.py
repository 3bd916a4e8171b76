"""Langfuse: `POST {host}/api/public/ingestion` (basic auth: public key, secret key) with a batch
of events, one `trace-create` and one `generation-create` per request, the generation carrying
the model, usage (input, output, total tokens) and cost. Langfuse answers 207 with `successes`
and `errors` per event.

Settings (LiteLLM's names): `langfuse_public_key`, `langfuse_secret_key` (required),
`langfuse_host` (or `langfuse_base_url`; default https://cloud.langfuse.com).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx

from gateway.callbacks.base import CallbackEvent, SinkRejected, SinkRetryable, response_check
from gateway.callbacks.common import cost_float, event_uuid, iso, json_bytes

DEFAULT_HOST = "https://cloud.langfuse.com"


class LangfuseSink:
    name: ClassVar[str] = "langfuse"
    max_batch: ClassVar[int] = 100  # requests per send (two ingestion events each)
    environment: ClassVar[tuple[str, ...]] = (
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
        "LANGFUSE_HOST",
        "LANGFUSE_BASE_URL",
    )

    def __init__(self, settings: Mapping[str, str]) -> None:
        public = settings.get("langfuse_public_key")
        secret = settings.get("langfuse_secret_key")
        if not public or not secret:
            raise ValueError("langfuse needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY")
        host = settings.get("langfuse_host") or settings.get("langfuse_base_url") or DEFAULT_HOST
        if not host.startswith(("http://", "https://")):
            host = f"https://{host}"
        self.url = f"{host.rstrip('/')}/api/public/ingestion"
        self.auth = httpx.BasicAuth(public, secret)

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        batch: list[dict[str, Any]] = []
        for event in events:
            batch.extend(langfuse_events(event))
        body = json_bytes({"batch": batch, "metadata": {"sdk_name": "ogem"}})
        try:
            response = await client.post(
                self.url,
                content=body,
                auth=self.auth,
                headers={"Content-Type": "application/json"},
            )
        except httpx.TransportError as exc:
            raise SinkRetryable(f"langfuse: {type(exc).__name__}") from exc
        response_check(response)
        if response.status_code == 207:
            _partial_check(response)


def _partial_check(response: httpx.Response) -> None:
    """207: a 5xx on any event retries the batch (Langfuse upserts by id); when every event was
    refused, the batch is rejected."""
    try:
        answer = response.json()
    except ValueError:
        return
    errors = answer.get("errors") or [] if isinstance(answer, dict) else []
    if not errors:
        return
    if any(int(error.get("status") or 500) >= 500 for error in errors):
        raise SinkRetryable(f"langfuse: {len(errors)} events failed")
    if not answer.get("successes"):
        first = errors[0]
        raise SinkRejected(f"langfuse refused the batch: {first.get('message') or first}")


def langfuse_events(event: CallbackEvent) -> list[dict[str, Any]]:
    metadata = event["metadata"]
    trace_id = str(
        metadata.get("trace_id")
        or metadata.get("existing_trace_id")
        or event["trace_id"]
        or event["request_id"]
    )
    started, ended = iso(event["started_at"]), iso(event["ended_at"])
    error = event["error"]
    name = str(metadata.get("generation_name") or f"ogem-{event['endpoint']}")
    shared_metadata = {
        "request_id": event["request_id"],
        "endpoint": event["endpoint"],
        "provider": event["provider"],
        "deployment": event["deployment"],
        "status_code": event["status_code"],
        "stream": event["stream"],
        "cache_hit": event["cache_hit"],
        "latency_ms": event["latency_ms"],
        "organization_id": event["organization_id"],
        "team_id": event["team_id"],
        "key_id": event["key_id"],
        "key_name": event["key_name"],
        "user_id": event["user_id"],
        "requester_metadata": metadata,
    }
    trace: dict[str, Any] = {
        "id": trace_id,
        "timestamp": started,
        "name": str(metadata.get("trace_name") or name),
        "metadata": shared_metadata,
        "tags": event["tags"],
    }
    user = metadata.get("trace_user_id") or event["end_user"]
    if user:
        trace["userId"] = str(user)
    if metadata.get("session_id"):
        trace["sessionId"] = str(metadata["session_id"])
    cost = cost_float(event)
    generation: dict[str, Any] = {
        "id": event_uuid(event, "generation"),
        "traceId": trace_id,
        "name": name,
        "startTime": started,
        "endTime": ended,
        "model": event["response_model"] or event["model"],
        "modelParameters": {},
        "usage": {
            "input": event["prompt_tokens"],
            "output": event["completion_tokens"],
            "total": event["total_tokens"],
            "unit": "TOKENS",
            "totalCost": cost,
        },
        "usageDetails": {
            "input": event["prompt_tokens"],
            "output": event["completion_tokens"],
            "total": event["total_tokens"],
        },
        "costDetails": {"total": cost},
        "metadata": shared_metadata,
        "level": "ERROR" if error is not None else "DEFAULT",
    }
    if event["cached_tokens"]:
        generation["usageDetails"]["input_cached_tokens"] = event["cached_tokens"]
    if event["ttft_ms"] is not None:
        generation["completionStartTime"] = iso(event["started_at"] + event["ttft_ms"] / 1000)
    if error is not None:
        generation["statusMessage"] = f"{error['status']} {error['type']}: {error['message']}"
    if "input" in event:
        trace["input"] = generation["input"] = event["input"]
    if "output" in event:
        trace["output"] = generation["output"] = event["output"]
    return [
        {
            "id": event_uuid(event, "trace-create"),
            "timestamp": started,
            "type": "trace-create",
            "body": trace,
        },
        {
            "id": event_uuid(event, "generation-create"),
            "timestamp": ended,
            "type": "generation-create",
            "body": generation,
        },
    ]
