"""New Relic AI Monitoring: the LLM events New Relic's agents record (and LiteLLM's `newrelic`
callback sends), through the Event API.

API: `POST https://insights-collector.newrelic.com/v1/accounts/{NEW_RELIC_ACCOUNT_ID}/events`
(EU accounts: `insights-collector.eu01.nr-data.net`) with the license key in `Api-Key` (or an
insert key in `X-Insert-Key`), a JSON array of flat events, each with `eventType` and attributes
whose values are strings (at most 4096 characters), numbers or booleans. New Relic answers 200
`{"success": true, "uuid": ...}`.

Each request becomes one `LlmChatCompletionSummary` (`LlmEmbedding` for embeddings) with
`request.model`, `response.model`, `vendor`, `response.usage.prompt_tokens` / `completion_tokens`
/ `total_tokens`, `duration` (ms), `trace_id`, `span_id`, `error` and, beyond New Relic's
attributes, `ogem.cost_usd`, `ogem.ttft_ms` and the tenancy ids; with content logging on, one
`LlmChatCompletionMessage` per message (`content`, `role`, `sequence`, `completion_id`,
`is_response`).

Settings: `NEW_RELIC_LICENSE_KEY` (or `NEW_RELIC_API_KEY`, LiteLLM's team-level name for the
same ingest key) or `NEW_RELIC_INSERT_KEY`; `NEW_RELIC_ACCOUNT_ID` (required); `NEW_RELIC_REGION`
(`us` or `eu`; default `eu` for a license key starting `eu01`, else `us`); `NEW_RELIC_APP_NAME`
(the `appName` attribute, default `ogem`); `NEW_RELIC_EVENT_API_URL` (replaces the collector's
`https://host`, for a proxy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
import orjson

from gateway.callbacks.base import CallbackEvent
from gateway.callbacks.common import cost_float
from gateway.callbacks.vendor import (
    error_text,
    event_ids,
    http_url,
    input_messages,
    json_text,
    output_messages,
    post,
    required,
    setting,
    size_chunks,
)

HOSTS = {
    "us": "https://insights-collector.newrelic.com",
    "eu": "https://insights-collector.eu01.nr-data.net",
}
STRING_LIMIT = 4096
REQUEST_BYTES = 900_000  # the Event API takes 1 MB (uncompressed) and 2000 events a request


def _text(value: str) -> str:
    return value[:STRING_LIMIT]


def newrelic_events(event: CallbackEvent, *, app_name: str) -> list[dict[str, Any]]:
    trace_id, span_id = event_ids(event)
    embedding = event["endpoint"] == "embeddings"
    common = {
        "appName": app_name,
        "ingest_source": "ogem",
        "vendor": event["provider"],
        "request_id": event["request_id"],
        "trace_id": trace_id,
        "span_id": span_id,
        "response.model": event["response_model"] or event["model"],
        "timestamp": int(event["ended_at"] * 1000),
    }
    inputs = input_messages(event) or []
    outputs = output_messages(event) or []
    summary: dict[str, Any] = {
        **common,
        "eventType": "LlmEmbedding" if embedding else "LlmChatCompletionSummary",
        "id": event["request_id"],
        "request.model": event["model"],
        "response.usage.prompt_tokens": event["prompt_tokens"],
        "response.usage.completion_tokens": event["completion_tokens"],
        "response.usage.total_tokens": event["total_tokens"],
        "response.usage.cached_tokens": event["cached_tokens"],
        "duration": event["latency_ms"],
        "http.statusCode": event["status_code"],
        "error": event["kind"] == "failure",
        "ogem.cost_usd": cost_float(event),
        "ogem.endpoint": event["endpoint"],
        "ogem.deployment": event["deployment"],
        "ogem.stream": event["stream"],
        "ogem.cache_hit": event["cache_hit"],
        "ogem.key_name": event["key_name"],
        "ogem.end_user": event["end_user"],
        "ogem.tags": _text(",".join(str(t) for t in event["tags"])),
        "ogem.metadata": _text(json_text(event["metadata"])),
    }
    if not embedding:
        summary["response.number_of_messages"] = len(inputs) + len(outputs)
    for name, value in (
        ("ogem.ttft_ms", event["ttft_ms"]),
        ("ogem.organization_id", event["organization_id"]),
        ("ogem.team_id", event["team_id"]),
        ("ogem.key_id", event["key_id"]),
        ("ogem.user_id", event["user_id"]),
    ):
        if value is not None:
            summary[name] = value
    if event["error"] is not None:
        summary["error.message"] = _text(error_text(event))
    if embedding and "input" in event:
        summary["input"] = _text(json_text(event["input"]))
    events = [summary]
    if embedding:
        return events
    for sequence, (message, is_response) in enumerate(
        [(m, False) for m in inputs] + [(m, True) for m in outputs]
    ):
        record = {
            **common,
            "eventType": "LlmChatCompletionMessage",
            "id": f"{event['request_id']}-{sequence}",
            "completion_id": event["request_id"],
            "sequence": sequence,
            "role": message["role"],
            "content": _text(message["content"]),
            "token_count": 0,
        }
        if is_response:
            record["is_response"] = True
        events.append(record)
    return events


class NewRelicSink:
    name: ClassVar[str] = "newrelic"
    max_batch: ClassVar[int] = 100  # each may add a message event per message: 2000 a request
    environment: ClassVar[tuple[str, ...]] = (
        "NEW_RELIC_LICENSE_KEY",
        "NEW_RELIC_API_KEY",
        "NEW_RELIC_INSERT_KEY",
        "NEW_RELIC_ACCOUNT_ID",
        "NEW_RELIC_REGION",
        "NEW_RELIC_APP_NAME",
        "NEW_RELIC_EVENT_API_URL",
    )

    def __init__(self, settings: Mapping[str, str]) -> None:
        license_key = setting(settings, "NEW_RELIC_LICENSE_KEY") or setting(
            settings, "NEW_RELIC_API_KEY"
        )
        insert_key = setting(settings, "NEW_RELIC_INSERT_KEY")
        if license_key:
            self.headers = {"Api-Key": license_key}
        elif insert_key:
            self.headers = {"X-Insert-Key": insert_key}
        else:
            raise ValueError("the newrelic callback needs NEW_RELIC_LICENSE_KEY")
        account = required(settings, "NEW_RELIC_ACCOUNT_ID", self.name)
        if not account.isdigit():
            raise ValueError("NEW_RELIC_ACCOUNT_ID is a number")
        region = setting(settings, "NEW_RELIC_REGION").lower() or (
            "eu" if license_key.startswith("eu") else "us"
        )
        if region not in HOSTS:
            raise ValueError("NEW_RELIC_REGION is us or eu")
        base = http_url(settings, "NEW_RELIC_EVENT_API_URL", HOSTS[region])
        self.url = f"{base}/v1/accounts/{account}/events"
        self.app_name = setting(settings, "NEW_RELIC_APP_NAME", "ogem")

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None:
        records = [r for event in events for r in newrelic_events(event, app_name=self.app_name)]
        headers = {**self.headers, "Content-Type": "application/json"}
        for chunk in size_chunks(records, limit=REQUEST_BYTES, max_items=2000):
            await post(client, self.url, headers=headers, content=orjson.dumps(chunk))
