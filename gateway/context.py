"""What the /v1 pipeline knows about one request, passed from step to step."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from providers.base import Deployment, Endpoint


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated caller, as cached by the key resolver (no ORM objects on the hot path).

    The master key is a Caller with ``is_master`` set and no key or tenant ids.
    """

    is_master: bool = False
    key_id: int | None = None
    key_prefix: str = ""
    key_name: str = ""
    organization_id: int | None = None
    team_id: int | None = None
    user_id: int | None = None
    allowed_models: tuple[str, ...] = ()  # empty: every model
    # The key's team's and organization's allow-lists (empty: no bound); a model must pass all.
    team_models: tuple[str, ...] = ()
    organization_models: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    # Routing settings, each from the key, else its team, else its organization (auth.py).
    regions: tuple[str, ...] = ()  # empty: any region
    priority: int | None = None  # queue priority, lower first; None: the default
    rpm_limit: int | None = None
    tpm_limit: int | None = None
    max_parallel_requests: int | None = None
    # Per-endpoint limits: {"images/generations": {"rpm": 5}} (keys/limits.py); empty: none.
    endpoint_limits: dict[str, dict[str, int]] = field(default_factory=dict)
    expires_at: float | None = None  # unix time; checked on every request, cache or not
    # The response cache's settings in metadata (`cache`), the key's over its team's over its
    # organization's, field by field (gateway/cache.py, docs/caching.md).
    cache: dict[str, Any] = field(default_factory=dict)
    # Concurrent Realtime sessions allowed, by scope ("key", "team", "organization"): each
    # level's `max_realtime_sessions` metadata (gateway/realtime/, docs/realtime.md).
    realtime_sessions: dict[str, int] = field(default_factory=dict)
    # Guardrails from the organization's, team's and key's metadata (gateway/auth.py):
    # "on" (run on every request; the organization's and team's cannot be switched off below),
    # "off" (default_on guardrails switched off), "optional" (may be requested by name). Empty:
    # none set, and the guard stage costs nothing unless the configuration has guardrails.
    guardrails: dict[str, list[str]] = field(default_factory=dict)
    # Team and key based logging: LiteLLM's `logging` metadata (a list of `{callback_name,
    # callback_type, callback_vars}`), the key's own, else its team's (gateway/callbacks/,
    # docs/callbacks.md). Empty: the configuration's callbacks only.
    logging: list[dict[str, Any]] = field(default_factory=list)
    # The key's debug mode (metadata `debug_until`), unix time: until then its requests and
    # answers are captured (gateway/debugging.py, docs/debugging.md). None: off.
    debug_until: float | None = None


def routing_settings_resolve(
    *, levels: list[dict[str, Any]]
) -> tuple[tuple[str, ...], tuple[str, ...], int | None]:
    """(tags, regions, priority), each from the first (most specific) level that sets it."""

    def first(name: str) -> Any:
        # Set means present and not empty; a priority of 0 is set.
        unset = (None, "", [], ())
        return next((level[name] for level in levels if level.get(name) not in unset), None)

    tags = first("tags")
    regions = first("regions")
    priority = first("priority")
    try:
        priority = int(priority) if priority is not None else None
    except (TypeError, ValueError):
        priority = None
    return (
        tuple(str(t) for t in tags) if isinstance(tags, list | tuple) else (),
        tuple(str(r) for r in regions) if isinstance(regions, list | tuple) else (),
        priority,
    )


def guardrail_settings_resolve(*, levels: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The guardrails of the organization's, team's and key's metadata, in that order
    (docs/guardrails.md): `guardrails` (on), `guardrails_off` and `guardrails_optional`, lists of
    names, each level adding to the others. What any level turns on stays on whatever another
    says (the guard stage never lets `off` remove an `on` name): a key cannot switch off its
    team's guardrails."""
    merged: dict[str, list[str]] = {}
    for metadata in levels:
        for field_name, kind in (
            ("guardrails", "on"),
            ("guardrails_off", "off"),
            ("guardrails_optional", "optional"),
        ):
            names = metadata.get(field_name)
            if isinstance(names, list):
                bucket = merged.setdefault(kind, [])
                bucket.extend(n for n in names if isinstance(n, str) and n not in bucket)
    return merged


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    cache_creation_1h_tokens: int = 0  # of the cache writes, those kept for an hour
    reasoning_tokens: int = 0
    # Of the tokens above, those that were audio (the Realtime API), priced apart.
    audio_prompt_tokens: int = 0
    audio_cached_tokens: int = 0
    audio_completion_tokens: int = 0
    # Non-token units for images, audio and TTS endpoints.
    images: int = 0
    audio_seconds: float = 0.0
    characters: int = 0
    # Images endpoints: what was generated, for per-image prices ("1024x1024", "hd").
    image_size: str = ""
    image_quality: str = ""
    # Which counts the upstream reported (possible ones only); the rest Ogem estimates, and
    # `estimated` says so in the answer and the request log (gateway/streaming.py).
    prompt_reported: bool = False
    completion_reported: bool = False
    estimated: bool = False


@dataclass(slots=True)
class StoredRequest:
    """What a `store: true` chat request keeps for its stored completion (gateway/stored.py)."""

    completion_id: str
    messages: list[Any]
    metadata: dict[str, str]


@dataclass(slots=True)
class RequestContext:
    request_id: str
    endpoint: Endpoint
    caller: Caller
    # The endpoint the client called, when Ogem serves it over another one (a Responses request
    # over chat completions): the request log and the key's per-endpoint limits name it.
    recorded_as: Endpoint | None = None
    model: str = ""
    stream: bool = False
    end_customer: str | None = None  # the request's `user` field
    tags: list[str] = field(default_factory=list)
    max_tokens: int | None = None  # what the client asked for, if anything
    # A typical prompt size (about 4 bytes a token): TPM reservations, cancelled requests.
    estimated_prompt_tokens: int = 0
    # Upper bounds of what the request can be billed, for its budget reservation
    # (gateway.governance.request_bounds_fill): prompt tokens, completions of max_tokens each,
    # images, speech characters, audio seconds.
    prompt_tokens_bound: int = 0
    outputs_bound: int = 1
    images_bound: int = 0
    characters_bound: int = 0
    audio_seconds_bound: int = 0
    deployment: Deployment | None = None
    # The deployments the router may choose from, known before admission (for worst-case cost).
    candidates: tuple[Deployment, ...] = ()
    usage: Usage = field(default_factory=Usage)
    status_code: int = 200
    cancelled: bool = False  # the client went away before the response finished
    started_at: float = field(default_factory=time.perf_counter)
    upstream_seconds: float = 0.0  # time spent waiting on the upstream, excluded from overhead
    # Streams: seconds from the request's start to the first chunk read from the upstream (the
    # time to first token of the request log, metrics and traces); None otherwise.
    first_token_seconds: float | None = None
    # W3C trace context of this request (32 and 16 hex characters): from the client's
    # `traceparent` or made by Ogem; "" until the tracing stage sets them (docs/tracing.md).
    trace_id: str = ""
    span_id: str = ""
    trace: Any = None  # the request's spans while tracing is on (gateway.tracing.RequestTrace)
    metrics_recorded: bool = False  # gateway.metrics.request_metrics_record ran (once a request)
    # tpm taken from deployments' own limits, corrected at settlement (gateway.capacity)
    capacity_takes: list[Any] | None = None
    # Set while the admission's decision is on its way from Redis (gateway.governance): the
    # router awaits it once, before it takes anything from a deployment or calls one.
    admission_wait: Callable[[], Awaitable[None]] | None = None
    created_unix: float = field(default_factory=time.time)
    debug: Any = None  # a DebugCapture while the request is captured (gateway/debugging.py)
    stored: StoredRequest | None = None  # `store: true`: the completion is kept (gateway/stored.py)
    # The response cache (gateway/cache.py): this request's plan, when a cache is configured and
    # serves it; what happened (the x-ogem-cache header); a hit that costs nothing.
    cache: Any = None
    cache_status: str = ""
    cache_age: float | None = None
    cache_similarity: float | None = None  # a semantic hit's cosine similarity
    cache_free: bool = False
    # A hit's savings (gateway.cache._saved), recorded in the usage event for cache analytics.
    cache_saved_cost: Decimal | None = None
    cache_saved_tokens: int | None = None
    cache_saved_latency_ms: int | None = None
    # The response cache's Redis entry, read and written by the governance scripts rather than
    # by commands of its own (gateway/limits.py): the key the admission script may read (the
    # cache's plan sets it), whether it took it, what it read; the write (key, entry, ttl ms,
    # and the entry with its ttl framed for the settle: `redis_pipeline.Framed`) the settle
    # script may carry, left here for the cache to send when it did not.
    fetch_key: str | None = None
    fetch_taken: bool = False
    fetched: bytes | None = None
    settle_write: tuple[str, bytes, int, Any] | None = None
    # A line of a batch run by Ogem (batches/runner.py): its batch's id. Its cost is recorded at
    # OGEM_BATCH_PRICE_FACTOR and its settle applied once per request id (a resumed line).
    batch_id: str = ""
    # The guard stage's plan for this request (gateway/guardrails/stage.py), None without
    # guardrails; its decisions go into the usage event.
    guard: Any = None
    # Callbacks (gateway/callbacks/emit.py): the request's cost once settled, the error that
    # ended it, what a stream assembled for the sinks (set only while callbacks deliver).
    cost: Decimal | None = None
    error: BaseException | None = None
    callback_output: Any = None
