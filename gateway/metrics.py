"""The gateway's metrics: each /v1 request's series, recorded once at its end, and gauges of the
gateway's state (Redis streams, circuits, Celery's queues) read at every /metrics scrape.

docs/metrics.md lists every series.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings

from billing.usage import usage_dead_stream, usage_stream_key
from gateway.health import OPEN, health_store
from gateway.registry import registry_get
from ogem_site.hot_settings import hot_settings
from ogem_site.metrics import (
    CELERY_FAILURES_KEY,
    MODEL_LATENCY,
    MODEL_REQUESTS,
    SPEND,
    TIME_PER_OUTPUT_TOKEN,
    TIME_TO_FIRST_TOKEN,
    TOKENS,
    HistogramWriter,
    celery_failures_local,
    value_counter,
)
from ogem_site.redis import redis_client, redis_key, redis_outage

if TYPE_CHECKING:
    from gateway.context import RequestContext

# ---- one request's series ----------------------------------------------------------------------


@dataclass(slots=True)
class _Series:
    """The labelled children one kind of request writes, found once, and written through their
    values: `labels()` takes a lock and checks its arguments, `inc` and `observe` check theirs,
    on every call; the hot path pays that only for a new label set (docs/metrics.md)."""

    requests: Callable[[], Any]
    latency: HistogramWriter
    ttft: HistogramWriter
    tpot: HistogramWriter
    prompt_tokens: Callable[[float], None]
    completion_tokens: Callable[[float], None]
    spend: Callable[[float], None]


_SERIES_MAX = 10_000  # label sets kept before the cache starts over (the children stay exported)
_series: dict[tuple[str, str, int, bool, int | None, int | None, str], _Series] = {}
_keys_labelled: set[int] = set()


def _key_label(key_id: int | None) -> str:
    """The key's id when OGEM_METRICS_KEY_LABELS is on, for the first
    OGEM_METRICS_KEY_LABELS_MAX keys this process sees; "other" beyond; "" when off."""
    if key_id is None or not hot_settings().OGEM_METRICS_KEY_LABELS:
        return ""
    if key_id in _keys_labelled:
        return str(key_id)
    if len(_keys_labelled) < settings.OGEM_METRICS_KEY_LABELS_MAX:
        _keys_labelled.add(key_id)
        return str(key_id)
    return "other"


def _series_for(key: tuple[str, str, int, bool, int | None, int | None, str]) -> _Series:
    model, deployment, status_code, cancelled, organization_id, team_id, key_label = key
    status = "499" if cancelled else str(status_code)
    organization = "" if organization_id is None else str(organization_id)
    team = "" if team_id is None else str(team_id)
    if len(_series) >= _SERIES_MAX:
        _series.clear()
    tokens = (model, organization, team, key_label)
    series = _series[key] = _Series(
        requests=value_counter(MODEL_REQUESTS.labels(model, deployment, status)._value),
        latency=HistogramWriter(MODEL_LATENCY.labels(model, deployment)),
        ttft=HistogramWriter(TIME_TO_FIRST_TOKEN.labels(model, deployment)),
        tpot=HistogramWriter(TIME_PER_OUTPUT_TOKEN.labels(model, deployment)),
        prompt_tokens=TOKENS.labels(*tokens, "prompt")._value.inc,
        completion_tokens=TOKENS.labels(*tokens, "completion")._value.inc,
        spend=SPEND.labels(*tokens)._value.inc,
    )
    return series


def request_metrics_record(ctx: RequestContext) -> None:
    """A /v1 request ended (gateway/relay.py: after its settle, a stream's at its last byte):
    its count, latency, time to first token and per output token, tokens and spend. Once."""
    if ctx.metrics_recorded:
        return
    ctx.metrics_recorded = True
    seconds = time.perf_counter() - ctx.started_at
    caller = ctx.caller
    deployment = ctx.deployment
    key = (
        ctx.model,
        deployment.id if deployment is not None else "",
        ctx.status_code,
        ctx.cancelled,
        caller.organization_id,
        caller.team_id,
        _key_label(caller.key_id) if caller.key_id is not None else "",
    )
    series = _series.get(key) or _series_for(key)
    series.requests()
    series.latency.observe(seconds)
    usage = ctx.usage
    first = ctx.first_token_seconds
    if first is not None:
        series.ttft.observe(first)
        if usage.completion_tokens > 1:
            series.tpot.observe(max(seconds - first, 0.0) / (usage.completion_tokens - 1))
    if usage.prompt_tokens:
        series.prompt_tokens(usage.prompt_tokens)
    if usage.completion_tokens:
        series.completion_tokens(usage.completion_tokens)
    if ctx.cost:
        series.spend(float(ctx.cost))


# ---- read at scrape time -----------------------------------------------------------------------

# The series the renders below write (docs/metrics.md; the Grafana dashboard's test checks them).
SCRAPED_METRICS = (
    "ogem_usage_stream_backlog",
    "ogem_usage_dead_letter_backlog",
    "ogem_deployment_up",
    "ogem_deployment_circuit_state",
    "ogem_deployment_circuit_failures",
    "ogem_celery_queue_length",
    "ogem_celery_task_failures_total",
)


def _label(value: str) -> str:
    """A label value in the text format: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _family(name: str, kind: str, description: str, samples: list[str]) -> bytes:
    if not samples:
        return b""
    lines = [f"# HELP {name} {description}", f"# TYPE {name} {kind}", *samples, ""]
    return "\n".join(lines).encode()


def _redis_readable() -> bool:
    return bool(settings.REDIS_URL) and not redis_outage.down


async def _stream_length_render(*, stream: str, name: str, description: str) -> bytes:
    """A Redis stream's length as a gauge, read at scrape time (one number for the whole
    installation, whichever worker answers). Nothing without Redis, or while it is away or does
    not answer within OGEM_REDIS_TIMEOUT."""
    if not _redis_readable():
        return b""
    try:
        length = await redis_client().xlen(stream)  # within the client's timeouts
    except Exception:  # a scrape must answer even with Redis away
        return b""
    return _family(name, "gauge", description, [f"{name} {length}"])


async def usage_streams_render() -> bytes:
    """The usage events not yet drained into PostgreSQL, and those the drain could not record,
    waiting in the dead-letter stream for an operator (alert when above zero)."""
    backlog = await _stream_length_render(
        stream=usage_stream_key(),
        name="ogem_usage_stream_backlog",
        description="Usage events in Redis not yet drained into PostgreSQL.",
    )
    dead = await _stream_length_render(
        stream=usage_dead_stream(),
        name="ogem_usage_dead_letter_backlog",
        description="Usage events the drain could not record, in the dead-letter stream.",
    )
    return backlog + dead


_CIRCUIT_STATES = ("closed", "half_open", "open")
DEPLOYMENTS_MAX = 5_000  # deployments a scrape reports (one Redis MGET)


async def deployments_health_render() -> bytes:
    """Every deployment's circuit (gateway/health.py): `ogem_deployment_up` (1 unless its circuit
    is open), `ogem_deployment_circuit_state` (1 for the state it is in) and its recent failures.
    With Redis one view for the installation; without, the answering worker's."""
    deployments = list(registry_get().by_id.values())[:DEPLOYMENTS_MAX]
    if not deployments:
        return b""
    try:
        circuits = await asyncio.wait_for(
            health_store().circuits([d.id for d in deployments]),
            timeout=max(settings.OGEM_REDIS_TIMEOUT * 2, 0.1),
        )
    except Exception:  # a scrape must answer
        return b""
    now = time.time()
    up: list[str] = []
    states: list[str] = []
    failures: list[str] = []
    for deployment, circuit in zip(deployments, circuits, strict=True):
        labels = (
            f'model="{_label(deployment.model_name)}",deployment="{_label(deployment.id)}",'
            f'provider="{_label(deployment.provider)}"'
        )
        state = circuit.effective(now)
        up.append(f"ogem_deployment_up{{{labels}}} {0 if state == OPEN else 1}")
        for name in _CIRCUIT_STATES:
            value = 1 if state == name else 0
            states.append(f'ogem_deployment_circuit_state{{{labels},state="{name}"}} {value}')
        failures.append(f"ogem_deployment_circuit_failures{{{labels}}} {circuit.fails}")
    return (
        _family(
            "ogem_deployment_up",
            "gauge",
            "1 when the deployment may serve (its circuit closed or half-open), 0 when open.",
            up,
        )
        + _family(
            "ogem_deployment_circuit_state",
            "gauge",
            "The deployment's circuit: 1 for the state it is in (closed, half_open, open).",
            states,
        )
        + _family(
            "ogem_deployment_circuit_failures",
            "gauge",
            "Failures counted in the deployment's current failure window.",
            failures,
        )
    )


def _celery_queues() -> list[str]:
    return [getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"]


# kombu's Redis transport keeps a queue's messages of priority steps 3, 6 and 9 in lists of
# their own: "<queue>\x06\x163" and so on (kombu.transport.redis.PrioritySteps).
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def _celery_broker_client() -> Any | None:
    """Ogem's Redis client when the broker is that Redis (the default: CELERY_BROKER_URL made
    from REDIS_URL), else None: another broker's depth is not read."""
    broker: str = settings.CELERY_BROKER_URL or ""
    if not broker or not _redis_readable():
        return None
    if broker == settings.REDIS_URL or (
        broker.startswith("sentinel://") and settings.REDIS_URL.startswith("sentinel")
    ):
        return redis_client()
    return None


async def celery_render() -> bytes:
    """Celery: messages waiting in each queue (kombu's lists on the broker, when it is Ogem's
    Redis) and task failures (counted by ogem_site.celery's base task class)."""
    depth: list[str] = []
    failed: dict[str, int] = dict(celery_failures_local)
    client = _celery_broker_client()
    if client is not None:
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {}
        prefix = options.get("global_keyprefix", "")
        queues = _celery_queues()
        try:
            async with asyncio.timeout(max(settings.OGEM_REDIS_TIMEOUT * 2, 0.1)):
                lengths = [
                    await client.llen(f"{prefix}{queue}{suffix}")
                    for queue in queues
                    for suffix in _PRIORITY_SUFFIXES
                ]
                counted = await client.hgetall(redis_key(CELERY_FAILURES_KEY))
        except Exception:  # a scrape must answer
            lengths, counted = [], {}
        steps = len(_PRIORITY_SUFFIXES)
        for index, queue in enumerate(queues if lengths else []):
            total = sum(lengths[index * steps : (index + 1) * steps])
            depth.append(f'ogem_celery_queue_length{{queue="{_label(queue)}"}} {total}')
        for task, count in counted.items():
            name = task.decode() if isinstance(task, bytes) else str(task)
            failed[name] = failed.get(name, 0) + int(count)
    return _family(
        "ogem_celery_queue_length",
        "gauge",
        "Celery messages waiting on the broker, by queue (not yet taken by a worker).",
        depth,
    ) + _family(
        "ogem_celery_task_failures_total",
        "counter",
        "Celery tasks that raised, by task name (every worker, counted in Redis).",
        [
            f'ogem_celery_task_failures_total{{task="{_label(task)}"}} {count}'
            for task, count in sorted(failed.items())
        ],
    )
