"""What every callback sink receives and implements.

A sink turns a batch of `CallbackEvent`s into its vendor's ingestion request and sends it with
the dispatcher's shared client (the webhook: over a connection of its own, poster.py, closed by
its `close()` when the delivery process ends). It raises `SinkRetryable` for what a retry may
fix (a timeout, a refused connection, 429, 5xx) and `SinkRejected` for what it cannot (4xx: a
bad key, a shape the vendor refuses); the dispatcher retries, backs off and counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NotRequired, Protocol, TypedDict

import httpx


class CallbackError(TypedDict):
    type: str  # the OpenAI error type: "rate_limit_error", "upstream_error", ...
    message: str
    status: int


class CallbackEvent(TypedDict):
    """One finished /v1 request, as the sinks see it. Content fields (`input`, `output`) are
    present only when content logging is on, and already masked by the guardrails."""

    kind: str  # "success" or "failure"
    request_id: str
    trace_id: str  # 32 hex characters (W3C trace context), "" when unknown
    span_id: str  # 16 hex characters: the request's own span, "" when unknown
    started_at: float  # unix seconds
    ended_at: float  # unix seconds
    endpoint: str  # "chat/completions", "embeddings", ...
    model: str  # the model group the client asked for
    response_model: str  # the model the upstream answered with, "" when unknown
    provider: str
    deployment: str
    status_code: int
    stream: bool
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cached_tokens: int
    cost: str  # USD, a decimal string
    latency_ms: int
    ttft_ms: int | None
    cache_hit: bool
    organization_id: int | None
    team_id: int | None
    key_id: int | None
    key_name: str
    user_id: int | None
    end_user: str  # the request's `user` field
    tags: list[str]
    # The request's `metadata` (LiteLLM's: trace_id, session_id, generation_name, ...), as sent.
    metadata: dict[str, Any]
    error: CallbackError | None
    input: NotRequired[Any]  # messages, prompt or input
    output: NotRequired[Any]  # the answer's choices / data, or the assembled stream


# A CallbackEvent as the worker hands it to the delivery process (a tuple: cheaper to build and
# to marshal than the dict): its values in this order, `tags` as (the caller's, the request's)
# or () when neither has any, `input` and `output` `...` when absent.
EVENT_FIELDS: tuple[str, ...] = tuple(CallbackEvent.__annotations__)
EventValues = tuple[Any, ...]
_EVENT_KEYS: dict[str, Any] = dict.fromkeys(f for f in EVENT_FIELDS if f not in ("input", "output"))


def event_from_values(values: EventValues | CallbackEvent) -> CallbackEvent:
    """The CallbackEvent of the worker's tuple (a dict, as tests and tools may hand over, as is)."""
    if isinstance(values, dict):
        return values
    # Unpacked (a tuple of another length raises), then stored into a copy of a dict of these keys
    # (no resizing, no pairs): a third less time than that copy updated from zip(EVENT_FIELDS,
    # values), or a literal (CPython builds one of 28 items in two parts, then merges them).
    (
        kind,
        request_id,
        trace_id,
        span_id,
        started_at,
        ended_at,
        endpoint,
        model,
        response_model,
        provider,
        deployment,
        status_code,
        stream,
        prompt_tokens,
        completion_tokens,
        total_tokens,
        cached_tokens,
        cost,
        latency_ms,
        ttft_ms,
        cache_hit,
        organization_id,
        team_id,
        key_id,
        key_name,
        user_id,
        end_user,
        tags,
        metadata,
        error,
        logged_input,
        logged_output,
    ) = values
    event: CallbackEvent = _EVENT_KEYS.copy()  # type: ignore[assignment]
    event["kind"] = kind
    event["request_id"] = request_id
    event["trace_id"] = trace_id
    event["span_id"] = span_id
    event["started_at"] = started_at
    event["ended_at"] = ended_at
    event["endpoint"] = endpoint
    event["model"] = model
    event["response_model"] = response_model
    event["provider"] = provider
    event["deployment"] = deployment
    event["status_code"] = status_code
    event["stream"] = stream
    event["prompt_tokens"] = prompt_tokens
    event["completion_tokens"] = completion_tokens
    event["total_tokens"] = total_tokens
    event["cached_tokens"] = cached_tokens
    event["cost"] = cost
    event["latency_ms"] = latency_ms
    event["ttft_ms"] = ttft_ms
    event["cache_hit"] = cache_hit
    event["organization_id"] = organization_id
    event["team_id"] = team_id
    event["key_id"] = key_id
    event["key_name"] = key_name
    event["user_id"] = user_id
    event["end_user"] = end_user
    event["tags"] = sorted({*tags[0], *tags[1]}) if tags else []
    event["metadata"] = metadata
    event["error"] = error
    if logged_input is not ...:
        event["input"] = logged_input
    if logged_output is not ...:
        event["output"] = logged_output
    return event


class SinkRetryable(Exception):
    """The send may succeed later (timeout, connection refused, 408, 429, 5xx)."""


class SinkRejected(Exception):
    """The vendor refused the batch for good (a 4xx other than 408 and 429)."""


class Sink(Protocol):
    """A vendor's ingestion. `settings` are the sink's resolved settings (API keys, host,
    project), from the configuration (`os.environ/NAME` already read) or a team's metadata."""

    name: ClassVar[str]
    max_batch: ClassVar[int]  # events per send

    def __init__(self, settings: Mapping[str, str]) -> None: ...

    async def send(self, events: Sequence[CallbackEvent], *, client: httpx.AsyncClient) -> None: ...


class EncodedSink(Sink, Protocol):
    """A sink that sends the events themselves as JSON (the webhook, S3 files): the delivery
    process encodes an event once for all such sinks and hands them its bytes (`json_bytes`'s)."""

    async def send_encoded(
        self, encoded: Sequence[bytes], *, client: httpx.AsyncClient
    ) -> None: ...


def response_check(response: httpx.Response) -> None:
    """Raise the error a sink reports for a vendor's non-2xx answer."""
    status = response.status_code
    if not 200 <= status < 300:
        status_check(status, response.request.url.host, response.text)


def status_check(status: int, host: str, text: str) -> None:
    """`response_check` of an answer's parts (a sink that posts without httpx)."""
    if 200 <= status < 300:
        return
    message = f"{host} answered {status}: {text[:200]}"
    if status in (408, 429) or status >= 500:
        raise SinkRetryable(message)
    raise SinkRejected(message)
