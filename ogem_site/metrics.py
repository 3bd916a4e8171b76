"""Prometheus metrics: the shared instruments, and `/metrics` as a pure ASGI wrapper.

Other modules import the instruments (or the helpers) from here. When several processes serve
(`OGEM_WORKERS` > 1), `manage.py serve` sets PROMETHEUS_MULTIPROC_DIR before they start; each
process then writes its values to files there and a scrape of any worker sums them all.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import functools
import hmac
import itertools
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess

from ogem_site.asgi_types import ASGIApp, Receive, Scope, Send, asgi_respond

logger = logging.getLogger(__name__)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

# Request latency as the client sees it (for streams: until the last byte).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

REQUESTS = Counter(
    "ogem_requests",
    "HTTP requests answered, by endpoint and status code.",
    ["endpoint", "status"],
)
REQUEST_LATENCY = Histogram(
    "ogem_request_duration_seconds",
    "Time from request start to the end of the response, by endpoint.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
# Unlabelled: the endpoint is only known to be valid once the response status is known.
IN_FLIGHT = Gauge(
    "ogem_requests_in_flight",
    "Requests being served right now.",
    multiprocess_mode="livesum",
)
UPSTREAM_LATENCY = Histogram(
    "ogem_upstream_duration_seconds",
    "Time spent waiting on the upstream provider, by provider and outcome.",
    ["provider", "outcome"],
    buckets=LATENCY_BUCKETS,
)
UNPRICED_MODEL = Counter(
    "ogem_unpriced_model_requests",
    "Requests whose model has no price, so their cost was recorded as zero.",
    ["model"],
)
REALTIME_SESSIONS = Gauge(
    "ogem_realtime_sessions",
    "Realtime sessions open right now (/v1/realtime).",
    multiprocess_mode="livesum",
)
REALTIME_SESSIONS_ENDED = Counter(
    "ogem_realtime_sessions_ended",
    "Realtime sessions ended, by why they ended.",
    ["reason"],
)
ROUTING_QUEUE_DEPTH = Gauge(
    "ogem_routing_queue_depth",
    "Requests waiting for a free deployment, by model group.",
    ["model"],
    multiprocess_mode="livesum",
)
ROUTING_QUEUE_WAIT = Histogram(
    "ogem_routing_queue_wait_seconds",
    "Time requests waited for a free deployment, by model group and outcome.",
    ["model", "outcome"],
    buckets=LATENCY_BUCKETS,
)
SHADOW_REQUESTS = Counter(
    "ogem_shadow_requests",
    "Requests mirrored to a shadow model, by shadow model and outcome (ok, error, over_budget).",
    ["model", "outcome"],
)

GUARDRAIL_DECISIONS = Counter(
    "ogem_guardrail_decisions",
    "Guardrail decisions, by guardrail, phase (pre_call, during_call, post_call), action (block, "
    "mask, warn) and category (EMAIL_ADDRESS, OPENAI_API_KEY, a topic, ...).",
    ["guardrail", "phase", "action", "category"],
)

CALLBACK_EVENTS_SENT = Counter(
    "ogem_callback_events_sent",
    "Callback events an observability platform accepted, by callback (gateway/callbacks/).",
    ["sink"],
)
CALLBACK_EVENTS_DROPPED = Counter(
    "ogem_callback_events_dropped",
    "Callback events given up, by callback and reason: queue_full (the process's queue or the "
    "callback's buffer was full), retries_exhausted, rejected (the platform refused them), "
    "invalid (a team's callback without its keys), refused_url (a team's URL to a private "
    "address), exited (the delivery process died), shutdown (still held when the process "
    "stopped).",
    ["sink", "reason"],
)
USAGE_IMPOSSIBLE = Counter(
    "ogem_usage_impossible",
    "Usage counts an upstream reported that cannot be (negative, not an integer, over 10^9 "
    "tokens), by provider and field; Ogem estimated them instead.",
    ["provider", "field"],
)
USAGE_DEAD_LETTERS = Counter(
    "ogem_usage_dead_letters",
    "Usage events the drain could not record (unreadable, or refused by the database), moved to "
    "the dead-letter stream (alert on any increase).",
)

# Per model group and deployment, recorded once at each /v1 request's end (gateway/metrics.py).
MODEL_REQUESTS = Counter(
    "ogem_model_requests",
    "/v1 requests that reached a model group, by group, deployment (empty: none was called) and "
    "status code (499: the client went away).",
    ["model", "deployment", "status"],
)
MODEL_LATENCY = Histogram(
    "ogem_model_request_duration_seconds",
    "Time from a /v1 request's start to its end (a stream's last byte), by model group and "
    "deployment.",
    ["model", "deployment"],
    buckets=LATENCY_BUCKETS,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "ogem_time_to_first_token_seconds",
    "Streams: time from the request's start to the upstream's first chunk.",
    ["model", "deployment"],
    buckets=LATENCY_BUCKETS,
)
TIME_PER_OUTPUT_TOKEN = Histogram(
    "ogem_time_per_output_token_seconds",
    "Streams of two or more completion tokens: (duration - time to first token) / (completion "
    "tokens - 1).",
    ["model", "deployment"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1),
)
TOKENS = Counter(
    "ogem_tokens",
    "Tokens of /v1 requests (as recorded in the request log), by model group, organization and "
    "team id, key id (only with OGEM_METRICS_KEY_LABELS) and type (prompt, completion).",
    ["model", "organization", "team", "key", "type"],
)
SPEND = Counter(
    "ogem_spend_usd",
    "What /v1 requests cost (as recorded in the request log; governance on), in USD, by model "
    "group, organization and team id, key id (only with OGEM_METRICS_KEY_LABELS).",
    ["model", "organization", "team", "key"],
)
UPSTREAM_ERRORS = Counter(
    "ogem_upstream_errors",
    "Upstream calls that failed, by provider and status (the HTTP status Ogem mapped the error "
    "to, or timeout).",
    ["provider", "status"],
)
REFUSALS = Counter(
    "ogem_refusals",
    "Requests refused by Ogem itself, by reason (rate_limit, budget, guardrail) and rule (the "
    "limit's scope and metric, key:rpm, team:budget, ...; the guardrail's name).",
    ["reason", "rule"],
)

CACHE_REQUESTS = Counter(
    "ogem_cache_requests",
    "Requests the response cache saw, by result (hit, semantic-hit, miss, bypass, or error: a "
    "tier or the embedding call failed, served uncached), model group, organization and team id.",
    ["result", "model", "organization", "team"],
)
CACHE_SAVED_TOKENS = Counter(
    "ogem_cache_saved_tokens",
    "Tokens cache hits answered without an upstream call (the stored answer's usage).",
    ["model", "organization", "team"],
)
CACHE_SAVED_COST = Counter(
    "ogem_cache_saved_cost_usd",
    "What the upstream calls that cache hits replaced would have cost, in USD.",
    ["model", "organization", "team"],
)
CACHE_REDIS_ERRORS = Counter(
    "ogem_cache_redis_errors",
    "Response cache reads and writes on Redis that failed (the request was served anyway).",
    ["operation"],
)
CACHE_S3_ERRORS = Counter(
    "ogem_cache_s3_errors",
    "Response cache reads and writes on the S3 tier that failed or timed out (served anyway).",
    ["operation"],
)

CACHE_SEMANTIC_ERRORS = Counter(
    "ogem_cache_semantic_errors",
    "Failures of the semantic tier, by operation: embed (the embedding call failed or timed "
    "out), fetch (an entry's answer could not be read), write (entries not stored), load (the "
    "index could not be rebuilt or caught up), dropped (the write queue was full). The request "
    "was served anyway.",
    ["operation"],
)
CACHE_SEMANTIC_ENTRIES = Gauge(
    "ogem_cache_semantic_entries",
    "Entries in a process's semantic vector indexes (every worker indexes them all: the largest).",
    multiprocess_mode="livemax",
)


# The labelled children, so that a call on the /v1 hot path skips `labels()`'s validation.
_upstream_children: dict[tuple[str, str], HistogramWriter] = {}
BATCH_LINES = Counter(
    "ogem_batch_lines",
    "Lines of batches answered (run by Ogem or passed through), by endpoint and outcome.",
    ["endpoint", "outcome"],
)
BATCHES_ENDED = Counter(
    "ogem_batches_ended",
    "Batches that ended (run by Ogem or passed through), by final status.",
    ["status"],
)


BATCHES_OPEN = Gauge(
    "ogem_batches_open",
    "Batches not ended, by mode (ogem, passthrough) and status; set by the batches sweep.",
    ["mode", "status"],
    multiprocess_mode="mostrecent",
)
# The (mode, status) pairs last set, so that a pair with no batch left goes back to 0.
_open_labels: set[tuple[str, str]] = set()


def batches_open_set(*, counts: dict[tuple[str, str], int]) -> None:
    for labels in _open_labels - counts.keys():
        BATCHES_OPEN.labels(mode=labels[0], status=labels[1]).set(0)
    for (mode, status), count in counts.items():
        BATCHES_OPEN.labels(mode=mode, status=status).set(count)
    _open_labels.update(counts)


def batch_lines_record(*, endpoint: str, ok: int, failed: int) -> None:
    if ok:
        BATCH_LINES.labels(endpoint=endpoint, outcome="ok").inc(ok)
    if failed:
        BATCH_LINES.labels(endpoint=endpoint, outcome="failed").inc(failed)


def batch_ended_record(*, status: str) -> None:
    BATCHES_ENDED.labels(status=status).inc()


_upstream_error_children: dict[tuple[str, str], Any] = {}


def upstream_error_record(*, provider: str, status: str) -> None:
    child = _upstream_error_children.get((provider, status))
    if child is None:
        child = _upstream_error_children[(provider, status)] = UPSTREAM_ERRORS.labels(
            provider, status
        )
    child.inc()


def refusal_record(*, reason: str, rule: str) -> None:
    REFUSALS.labels(reason, rule).inc()


# Celery task failures (ogem_site/celery.py's base task class): counted in Redis, where every
# worker of every host adds to the same hash and any web worker reads it at scrape time
# (gateway/metrics.py); without Redis tasks run in the web process, counted here.
CELERY_FAILURES_KEY = "metrics:celery_task_failures"
celery_failures_local: dict[str, int] = {}


def celery_task_failure_record(*, task: str) -> None:
    from django.conf import settings

    from ogem_site.redis import redis_client_sync, redis_key

    if not settings.REDIS_URL:
        celery_failures_local[task] = celery_failures_local.get(task, 0) + 1
        return
    try:
        redis_client_sync().hincrby(redis_key(CELERY_FAILURES_KEY), task, 1)
    except Exception:  # Redis away (a task failing then may well be why): not counted
        logger.warning("could not count the failure of Celery task %s: Redis is away", task)


def upstream_observe(*, provider: str, outcome: str, seconds: float) -> None:
    """Record one upstream call: "ok", "error", "timeout" or "cancelled" (gateway.streaming)."""
    child = _upstream_children.get((provider, outcome))
    if child is None:
        child = HistogramWriter(UPSTREAM_LATENCY.labels(provider=provider, outcome=outcome))
        _upstream_children[(provider, outcome)] = child
    child.observe(seconds)


_cache_children: dict[tuple[str, str, str, str], Any] = {}


def cache_request_record(*, result: str, model: str, organization: str, team: str) -> None:
    """One request through the response cache (gateway/cache.py)."""
    labels = (result, model, organization, team)
    child = _cache_children.get(labels)
    if child is None:
        if len(_cache_children) > 10_000:
            _cache_children.clear()
        child = _cache_children[labels] = CACHE_REQUESTS.labels(*labels)
    child.inc()


class _Tally:
    """Calls of `add` (itertools.count's `__next__`: one C call, no lock, no Python frame),
    added to a counter child when /metrics renders (`metrics_render`). One process only: with
    several, a scrape reads every worker's file, so their counts are written through."""

    __slots__ = ("_count", "_inc", "_lock", "_seen", "add")

    def __init__(self, inc: Callable[[float], None]) -> None:
        self._count = itertools.count()
        self.add = self._count.__next__
        self._inc = inc
        self._lock = threading.Lock()  # two scrapes at once must not both add the calls
        self._seen = 0  # the values `next` has returned: each call, and each fold's own

    def fold(self) -> None:
        with self._lock:
            total = next(self._count)
            pending = total - self._seen
            self._seen = total + 1
            if pending:
                self._inc(pending)


# A tally per value (a child's, or a histogram bucket's), kept as long as the value is: children
# stay exported once made, and so does what was counted on them.
_tallies: dict[Any, _Tally] = {}


def _tallies_fold() -> None:
    for tally in list(_tallies.values()):
        tally.fold()


def value_counter(value: Any, *, step: int = 1) -> Callable[[], Any]:
    """A call that adds `step` (1, or -1 for a gauge going down) to a child's value (`_value`, or
    a histogram bucket): on every /v1 request, so without `Counter.inc`'s checks (three Python
    calls; a labelled child is observable by construction) and, in one process, without
    prometheus_client's lock either: tallied, and folded in at each scrape. With several
    processes (PROMETHEUS_MULTIPROC_DIR) the value is written through, since a scrape reads
    every worker's file."""
    if MULTIPROCESS:
        return functools.partial(value.inc, step)
    key = (value, step)
    tally = _tallies.get(key)
    if tally is None:
        inc = value.inc if step == 1 else functools.partial(_value_add, value, step)
        tally = _tallies[key] = _Tally(inc)
    return tally.add


def _value_add(value: Any, step: int, calls: float) -> None:
    value.inc(step * calls)


class HistogramWriter:
    """A labelled histogram child's `observe` without its per-call checks: its sum, and the one
    bucket a value falls in (prometheus_client keeps buckets uncounted and sums them at
    collection; `observe` walks them in Python), that bucket counted by `value_counter`."""

    __slots__ = ("bounds", "buckets", "total")

    def __init__(self, child: Any) -> None:
        self.bounds: list[float] = list(child._upper_bounds)
        self.buckets = [value_counter(bucket) for bucket in child._buckets]
        self.total = child._sum.inc

    def observe(self, value: float) -> None:
        self.total(value)
        self.buckets[bisect.bisect_left(self.bounds, value)]()


def cache_request_counter(*, result: str, labels: tuple[str, str, str]) -> Callable[[], Any]:
    """`cache_request_record` of these labels, found once (the response cache keeps it for a
    caller's model group, gateway/cache.py)."""
    key = (result, *labels)
    child = _cache_children.get(key)
    if child is None:
        if len(_cache_children) > 10_000:
            _cache_children.clear()
        child = _cache_children[key] = CACHE_REQUESTS.labels(*key)
    # One process: counted without prometheus_client's lock and call (a miss's largest piece
    # after its key, docs/benchmark.md), folded in at each scrape.
    return value_counter(child._value)


def cache_saved_record(
    *, model: str, organization: str, team: str, tokens: int, cost_usd: float
) -> None:
    if tokens:
        CACHE_SAVED_TOKENS.labels(model, organization, team).inc(tokens)
    if cost_usd:
        CACHE_SAVED_COST.labels(model, organization, team).inc(cost_usd)


def cache_saved_counters(
    *, labels: tuple[str, str, str]
) -> tuple[Callable[[float], None], Callable[[float], None]]:
    """`cache_saved_record`'s two counters of these labels (tokens, cost in USD), found once: the
    response cache keeps them for a caller's model group (gateway/cache.py). Each takes an amount
    above 0 (`Counter.inc`'s checks left out, as `cache_request_counter` does)."""
    return (
        CACHE_SAVED_TOKENS.labels(*labels)._value.inc,
        CACHE_SAVED_COST.labels(*labels)._value.inc,
    )


def cache_redis_error_record(*, operation: str) -> None:
    CACHE_REDIS_ERRORS.labels(operation=operation).inc()


def cache_s3_error_record(*, operation: str) -> None:
    CACHE_S3_ERRORS.labels(operation=operation).inc()


def cache_semantic_error_record(*, operation: str) -> None:
    CACHE_SEMANTIC_ERRORS.labels(operation=operation).inc()


def guardrail_decision_record(*, guardrail: str, phase: str, action: str, category: str) -> None:
    GUARDRAIL_DECISIONS.labels(guardrail, phase, action, category).inc()


def unpriced_model_record(*, model: str) -> None:
    UNPRICED_MODEL.labels(model=model).inc()


def usage_impossible_record(*, provider: str, field: str) -> None:
    USAGE_IMPOSSIBLE.labels(provider=provider, field=field).inc()


# Kept verbatim: words and API versions; anything with digits or dashes is an identifier.
_NAME_SEGMENT = re.compile(r"^(?:[A-Za-z_]{1,40}|v[0-9])$")
_TOP_LEVEL = {"admin", "api", "scim", "accounts", "static", "v1"}


def endpoint_label(path: str, status: int) -> str:
    """A bounded label for a path: IDs become {id}, unknown paths collapse to one value."""
    if status == 404:
        return "not_found"
    segments = [segment for segment in path.split("/") if segment]
    if not segments:
        return "portal"
    head = segments[0]
    if head not in _TOP_LEVEL:
        return "portal"
    if head in {"admin", "static", "accounts"}:
        return head
    kept = [head]
    for segment in segments[1:5]:
        kept.append(segment if _NAME_SEGMENT.match(segment) else "{id}")
    return "/".join(kept)


def metrics_render() -> bytes:
    if not MULTIPROCESS:
        _tallies_fold()
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry)


def _mark_dead() -> None:
    prometheus_multiprocess.mark_process_dead(os.getpid())


if MULTIPROCESS:
    # Live gauges of a stopped worker must not linger in the sum.
    atexit.register(_mark_dead)


def _authorized(scope: Scope, expected: bytes) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return hmac.compare_digest(value, expected)
    return False


async def _refuse_scrape(send: Send) -> None:
    await asgi_respond(
        send,
        status=401,
        body=b"/metrics needs Authorization: Bearer <OGEM_METRICS_TOKEN>\n",
        headers=[
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"www-authenticate", b'Bearer realm="metrics"'),
        ],
    )


# (path, status) -> the writers of their children of ogem_requests_total and
# ogem_request_duration_seconds (by `endpoint_label`, bounded; the paths are not: the cache starts
# over when full).
_request_children: dict[tuple[str, int], tuple[Callable[[], Any], HistogramWriter]] = {}
_REQUEST_CHILDREN_MAX = 4096
_in_flight_up = value_counter(IN_FLIGHT._value)
_in_flight_down = value_counter(IN_FLIGHT._value, step=-1)


def _request_writers(path: str, status: int) -> tuple[Callable[[], Any], HistogramWriter]:
    endpoint = endpoint_label(path, status)
    if len(_request_children) >= _REQUEST_CHILDREN_MAX:
        _request_children.clear()
    writers = _request_children[(path, status)] = (
        value_counter(REQUESTS.labels(endpoint, str(status))._value),
        HistogramWriter(REQUEST_LATENCY.labels(endpoint)),
    )
    return writers


class MetricsASGI:
    """Serves /metrics and times every other HTTP request (health probes excepted).

    `scraped` render gauges read at scrape time from elsewhere (the usage stream's length in
    Redis: gateway/metrics.py), appended to every scrape; ogem_site.asgi passes them in.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        scraped: Sequence[Callable[[], Awaitable[bytes]]] = (),
        token: str = "",
    ) -> None:
        self.app = app
        self.scraped = tuple(scraped)
        # With a token, a scrape must send `Authorization: Bearer <token>` (compared in constant
        # time): the port /metrics shares with /v1 is often reachable from outside.
        self.authorization = f"Bearer {token}".encode() if token else b""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == "/metrics":
            if self.authorization and not _authorized(scope, self.authorization):
                await _refuse_scrape(send)
                return
            await self._serve_metrics(send)
            return
        if path.startswith("/health/"):
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status = 500

        async def send_and_observe(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        _in_flight_up()
        try:
            await self.app(scope, receive, send_and_observe)
        finally:
            _in_flight_down()
            children = _request_children.get((path, status))
            if children is None:
                children = _request_writers(path, status)
            children[0]()
            children[1].observe(time.perf_counter() - started)

    async def _serve_metrics(self, send: Send) -> None:
        body = await asyncio.to_thread(metrics_render) if MULTIPROCESS else metrics_render()
        # Each bounded in time by its own reads (Redis's timeouts); together, not one after another.
        for part in await asyncio.gather(*(render() for render in self.scraped)):
            body += part
        await asgi_respond(
            send,
            status=200,
            body=body,
            headers=[
                (b"content-type", CONTENT_TYPE_LATEST.encode()),
                (b"cache-control", b"no-store"),
            ],
        )
