"""OpenTelemetry traces of /v1 requests, following the GenAI semantic conventions
(docs/tracing.md).

A request's trace is recorded as a flat record while it runs (a clock read a stage into one
list, the facts of its answer as tuples; `RequestTrace`) and queued as one tuple once it ends:
no span exists in the worker (OpenTelemetry's SDK objects are never built: its tracer, with its
context attach and detach, costs several times as much a span). A thread of the worker hands the
queue to an exporter process (gateway/tracing_pipe.py), which makes the record's spans, encodes
and sends them over OTLP (gateway/tracing_export.py): neither costs the request path, nor the
worker's CPU beyond a marshalling. The queue is bounded and drops (counted) when a collector is
down or slow.

Off (the default), a request costs one module-global read (`tracing_active`); its trace id (the
client's `traceparent`'s, else a random one) is still made at the ASGI edge for the
`x-ogem-trace-id` header (gateway/asgi.py).
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeAlias, TypeVar

import orjson

from gateway.context import Caller, RequestContext, Usage
from gateway.tracing_export import exporter_target
from gateway.tracing_pipe import SpanPipe
from providers.base import Deployment, Endpoint
from providers.http import upstream_traceparent

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Span kinds as OTLP numbers them.
INTERNAL = 1
SERVER = 2
CLIENT = 3

# Ogem's provider names (LiteLLM's prefixes) as the GenAI conventions' `gen_ai.provider.name`
# well-known values; any other is reported as Ogem names it.
PROVIDER_NAMES = {
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}

OPERATIONS = {
    Endpoint.CHAT: "chat",
    Endpoint.COMPLETIONS: "text_completion",
    Endpoint.EMBEDDINGS: "embeddings",
    Endpoint.RESPONSES: "chat",
    Endpoint.IMAGES_GENERATIONS: "generate_content",
    Endpoint.IMAGES_EDITS: "generate_content",
    Endpoint.IMAGES_VARIATIONS: "generate_content",
}

_HEX = frozenset("0123456789abcdef")
# Each endpoint's operation, by the endpoint's identity (Endpoint's hash is Enum's, in Python).
_OPERATION_OF = {id(endpoint): OPERATIONS.get(endpoint) or endpoint.value for endpoint in Endpoint}


def trace_context_parse(value: str | bytes | None) -> tuple[int, int, int] | None:
    """(trace id, parent span id, flags) of a W3C `traceparent` header; None when absent or
    invalid (all-zero ids, a bad version or length), which starts a new trace."""
    if not value:
        return None
    if type(value) is bytes:
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    text = value.strip().lower()  # type: ignore[union-attr]
    # version 00 is exactly 55 characters; a later version may append fields after a dash.
    if len(text) < 55 or text[2] != "-" or text[35] != "-" or text[52] != "-":
        return None
    version, trace, parent, flags = text[:2], text[3:35], text[36:52], text[53:55]
    if (
        version == "ff"
        or (version == "00" and len(text) != 55)
        or (len(text) > 55 and text[55] != "-")
    ):
        return None
    if not _HEX.issuperset(version + trace + parent + flags):
        return None
    trace_id, span_id = int(trace, 16), int(parent, 16)
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, int(flags, 16)


_getrandbits = random.getrandbits


def trace_id_new() -> int:
    return _getrandbits(128) or 1


def _span_id() -> int:
    return _getrandbits(64) or 1


_MASK64 = (1 << 64) - 1
_ID_STEP = 0x9E3779B97F4A7C15  # odd: a request's span ids differ, spread over 64 bits
# n steps, for the first numbers (a request's stages and attempts): a lookup, not a product of
# multi-digit ints
_STEPS = tuple(n * _ID_STEP & _MASK64 for n in range(64))


# A span while its request runs: a list (a literal: several times cheaper than an object's
# __init__, and handed over as it is), in the exporter's SPAN_FIELDS order
# (gateway/tracing_export.py) with its own attributes last. `SHARED`: attribute dicts shared with
# other spans and requests (a deployment's, a caller's: built once, written once per batch by
# marshal's references) and facts, exported before its own; no key is in both. At export its own
# attributes are popped and joined to the shared parts (`_export`): the list is then a span as
# the exporter reads it.
SpanRecord: TypeAlias = list[Any]
TRACE, SPAN_ID, PARENT, REMOTE, NAME, KIND, START, END, SHARED, EVENTS, ERROR, ATTRS = range(12)


def span_new(
    trace_id: int,
    name: str,
    kind: int,
    span_id: int,
    parent_id: int,
    start_ns: int,
    attributes: dict[str, Any] | None = None,
    shared: tuple[Any, ...] = (),
    remote: bool = False,
) -> list[Any]:
    return [trace_id, span_id, parent_id, remote, name, kind, start_ns, 0, shared, (), None,
            {} if attributes is None else attributes]  # fmt: skip


def span_fail(span: list[Any], error: BaseException) -> None:
    """The span failed with `error`: its type, HTTP status and description."""
    attributes = span[ATTRS]
    code = getattr(error, "code", None)
    attributes["error.type"] = code or type(error).__name__
    status = getattr(error, "status", None)
    if isinstance(status, int):
        attributes["http.response.status_code"] = status
    span[ERROR] = str(getattr(error, "message", "") or type(error).__name__)[:300]


# A request's trace is a flat record (docs/tracing.md): its stages' clock readings in one list
# (`MARKS`, perf_counter seconds; 0.0: the stage did not run), its upstream attempts, and facts
# read off the context when it ends. No span exists in the worker: the exporter process expands
# the record (gateway/tracing_export.py's `record_spans`) into the spans of the trace, their ids
# derived from the root's (one random a request) as the root's plus n steps, n the stage's
# number here (`STAGES`) or 6 + the attempt's. Only what leaves the process at once is made here:
# the ids as hex (the answer's trace id, the traceparent sent upstream, the callbacks' span id).
ROOT_START, ROOT_END = 0, 1
ADMISSION_START, ADMITTED = 2, 3  # relay.py writes both, and ROUTING_START
PRE_START, PRE_END, CACHE_START, CACHE_END = 4, 5, 6, 7
ROUTING_START, ROUTING_END, POST_START, POST_END = 8, 9, 10, 11
FIRST_TOKEN = 12
# (its start mark, its span's name, its number): the end mark follows the start's
STAGES = (
    (ADMISSION_START, "ogem.admission", 1),
    (PRE_START, "ogem.guardrails", 2),
    (CACHE_START, "ogem.cache", 3),
    (ROUTING_START, "ogem.routing", 4),
    (POST_START, "ogem.guardrails", 5),
)
ATTEMPT_FIRST = 6  # the first attempt's number
_clock = time.perf_counter  # the marks' clock: ctx.started_at's, so the root's start is free
# An attempt while the request runs (a list; as the record carries it):
# its span id, parent span id, deployment's attributes (shared), start, end marks, the answer's
# facts, its own attributes (content) or None, its failure (`_failure`) or None.
A_ID, A_PARENT, A_SHARED, A_START, A_END, A_ANSWERED, A_ATTRS, A_ERROR = range(8)


def _failure(error: BaseException) -> tuple[str, int | None, str]:
    """A failed span's (error.type, http status or None, description)."""
    status = getattr(error, "status", None)
    return (
        getattr(error, "code", None) or type(error).__name__,
        status if isinstance(status, int) else None,
        str(getattr(error, "message", "") or type(error).__name__)[:300],
    )


class RequestTrace:
    """A /v1 request's trace while it runs (the flat record's parts). Attributes not set on an
    instance read the class's defaults: a trace sets only what its request did."""

    trace_id = 0
    span_id = 0  # the root span's
    parent = 0  # the client's span, 0 when Ogem started the trace
    operation = ""
    constants: Any = None  # the request span's attributes of its endpoint and caller (shared)
    marks: list[float]
    attempts: list[list[Any]] | None = None
    attempt: list[Any] | None = None  # the one in flight
    answered: tuple[Any, ...] | None = None  # the answered attempt's facts (`_answered`)
    routing: tuple[Any, ...] | None = None  # the routing's facts
    cache: tuple[str, float | None] | None = None  # what the cache lookup found
    extra: dict[int, dict[str, Any]] | None = None  # a stage's own attributes, by start mark
    errors: dict[int, tuple[Any, ...]] | None = None  # a stage's failure, by start mark
    first_token: float | None = None  # a stream's time to first token, seconds
    capture = False
    output: list[str] | None = None  # a stream's generated text, when captured
    finish_reasons: list[str] | tuple[str, ...] = ()
    response_model = ""
    response_id = ""
    handed_off = False  # a stream: the trace ends when it does
    traceparent: list[str | None]  # the upstream_traceparent variable's list (trace_begin's)
    ended = False


class SessionTrace:
    """A Realtime session's trace (or a refused request's) while it runs: its root span and the
    spans under it, as span lists."""

    __slots__ = ("ended", "root", "spans", "trace_id")

    def __init__(self, trace_id: int, root: SpanRecord, ended: bool = False) -> None:
        self.trace_id = trace_id
        self.root = root
        self.spans: list[SpanRecord] = []
        self.ended = ended


@dataclass(slots=True)
class Tracing:
    """The configured pipeline: where spans go, and what is recorded."""

    pipe: SpanPipe
    capture_content: bool = False
    ratio: float = 1.0
    protocol: str = "http/protobuf"
    endpoint: str = ""


_active: Tracing | None = None
_START = object()
# The configuration file's `tracing:` section last applied (gateway/config): a reload that
# changes it reconfigures; another source (the environment, tracing_configure) stays otherwise.
# The first request of a process applies the environment's (OGEM_TRACING) when there is none.
_applied_section: Any = _START


def tracing_active(section: Any = None) -> Tracing | None:
    """The pipeline when tracing is on, else None: the hot path's one check. `section` is the
    current configuration's `tracing:` settings (None without one)."""
    if section is not _applied_section:
        _section_apply(section)
    return _active


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def tracing_configure(
    *,
    enabled: bool = True,
    endpoint: str | None = None,
    protocol: str | None = None,
    service_name: str | None = None,
    capture_content: bool | None = None,
    sample_rate: float | None = None,
) -> Tracing | None:
    """Turn tracing on (or off with `enabled=False`) in this process. What is not given comes from
    the standard variables: OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT),
    OTEL_EXPORTER_OTLP_PROTOCOL (`http/protobuf`, the default, or `grpc`), OTEL_SERVICE_NAME
    (default `ogem`), OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT (content, default off) and
    OTEL_TRACES_SAMPLER_ARG (with a `traceidratio` OTEL_TRACES_SAMPLER). OTEL_SDK_DISABLED=true
    keeps it off. LiteLLM's `callbacks: ["otel"]` and Ogem's `tracing:` section call this."""
    global _active
    previous = _active
    if not enabled or _env_flag("OTEL_SDK_DISABLED"):
        _active = None
    else:
        _active = _pipeline_build(
            endpoint=endpoint,
            protocol=protocol,
            service_name=service_name,
            capture_content=capture_content,
            sample_rate=sample_rate,
        )
    if previous is not None and previous is not _active:
        previous.pipe.close()  # its exporter sends what it holds, then exits
    return _active


@atexit.register
def _flush_at_exit() -> None:
    """A worker that exits sends what it still holds (bounded by a timeout)."""
    if _active is not None:
        _active.pipe.close(wait=10.0)


def _forget_after_fork() -> None:
    """A process forked from a traced worker does not share its pipe (its writes would mix with
    the worker's): it configures tracing afresh, with an exporter of its own."""
    global _active, _applied_section
    _active, _applied_section = None, _START


os.register_at_fork(after_in_child=_forget_after_fork)


def tracing_from_environment() -> None:
    """At startup: OGEM_TRACING=true turns tracing on from the OTEL_* variables."""
    if _env_flag("OGEM_TRACING"):
        tracing_configure()


def _section_apply(section: Any) -> None:
    global _applied_section
    previous, _applied_section = _applied_section, section
    if section is None:
        if previous is not _START:  # the section was removed from the file
            tracing_configure(enabled=False)
        tracing_from_environment()
        return
    tracing_configure(
        enabled=section.enabled,
        endpoint=section.endpoint or None,
        protocol=section.protocol or None,
        service_name=section.service_name or None,
        capture_content=section.capture_content,
        sample_rate=section.sample_rate,
    )


def _pipeline_build(
    *,
    endpoint: str | None,
    protocol: str | None,
    service_name: str | None,
    capture_content: bool | None,
    sample_rate: float | None,
) -> Tracing:
    protocol = (
        protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    target = exporter_target(protocol=protocol, endpoint=endpoint)
    if capture_content is None:
        capture_content = bool(_env_flag("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"))
    if sample_rate is None:
        sample_rate = 1.0
        if "ratio" in os.environ.get("OTEL_TRACES_SAMPLER", ""):
            try:
                sample_rate = float(os.environ.get("OTEL_TRACES_SAMPLER_ARG", "1"))
            except ValueError:
                sample_rate = 1.0
    pipe = SpanPipe(protocol=protocol, target=target, service_name=service_name or "")
    logger.info("tracing on: OTLP %s to %s", protocol, target)
    return Tracing(
        pipe=pipe,
        capture_content=capture_content,
        ratio=min(max(sample_rate, 0.0), 1.0),
        protocol=protocol,
        endpoint=target,
    )


def _sampled(tracing: Tracing, trace_id: int) -> bool:
    if tracing.ratio >= 1.0:
        return True
    # The trace id's low 64 bits against the ratio, as OpenTelemetry's TraceIdRatioBased does.
    return (trace_id & 0xFFFFFFFFFFFFFFFF) < int(tracing.ratio * (1 << 64))


_new_trace = object.__new__


def trace_begin(
    ctx: RequestContext, *, tracing: Tracing, traced: tuple[int, int, int], trace_hex: str
) -> None:
    """Start the request's trace: its record, the ids callbacks read (ctx.trace_id, ctx.span_id)
    and the `traceparent` sent upstream. `traced`: (trace id, the client's span or 0, flags),
    `trace_hex` the trace id's 32 hex digits (gateway/asgi.py made them for its header)."""
    trace_id, parent, flags = traced
    span_id = _getrandbits(64) or 1
    ctx.trace_id = trace_hex
    if not ((flags & 1) if parent else (tracing.ratio >= 1.0 or _sampled(tracing, trace_id))):
        ctx.span_id = "%016x" % span_id  # noqa: UP031
        # Not recorded; upstream hears the trace, not sampled, from the client's own span.
        upstream_traceparent.set([f"00-{trace_hex}-{(parent or span_id):016x}-00"])
        return
    # The traceparent in one %-format, the span's hex its slice: a format and four joins less
    # (an f-string's format spec costs a __format__ call more)
    traceparent = "00-%s-%016x-01" % (trace_hex, span_id)  # noqa: UP031
    ctx.span_id = traceparent[36:52]
    trace = _new_trace(RequestTrace)
    trace.trace_id = trace_id
    trace.span_id = span_id
    if parent:
        trace.parent = parent
    # By identity: an Endpoint's hash is Enum's, a Python call
    endpoint = ctx.endpoint
    trace.operation = operation = _OPERATION_OF[id(endpoint)]
    caller = ctx.caller
    described = ctx.recorded_as or endpoint
    found = _constants.get((id(caller), id(described)))  # _request_constants' lookup, inline
    trace.constants = (
        found[2]
        if found is not None and found[0] is caller
        else _request_constants(described, operation, caller)
    )
    trace.marks = [ctx.started_at, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    if tracing.capture_content:
        trace.capture = True
    ctx.trace = trace
    # One variable's setting a request: its attempts and its end rewrite the list's item
    trace.traceparent = held = [traceparent]
    upstream_traceparent.set(held)


# identity of what they describe (a configuration's deployment, a resolver's cached caller);
# bounded: emptied when full.
_constants: dict[Any, tuple[Any, Any, dict[str, Any]]] = {}
_CONSTANTS_MAX = 4096


def _request_constants(endpoint: Endpoint, operation: str, caller: Caller) -> dict[str, Any]:
    """The request span's attributes of its endpoint and caller."""
    key = (id(caller), id(endpoint))
    found = _constants.get(key)
    if found is not None and found[0] is caller:
        return found[2]
    attributes = {
        "gen_ai.operation.name": operation,
        "http.request.method": "POST",
        "url.path": "/v1/" + endpoint.value,
    }
    _caller_attributes(attributes, caller)
    if len(_constants) >= _CONSTANTS_MAX:
        _constants.clear()
    _constants[key] = (caller, endpoint, attributes)
    return attributes


def _attempt_constants(deployment: Deployment, operation: str) -> dict[str, Any]:
    """An upstream attempt's attributes of its deployment."""
    found = _constants.get((id(deployment), operation))
    if found is not None and found[0] is deployment:
        return found[2]
    attributes = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": PROVIDER_NAMES.get(deployment.provider, deployment.provider),
        "gen_ai.request.model": deployment.upstream_model,
        "ogem.deployment.id": deployment.id,
        "ogem.model_group": deployment.model_name,
    }
    address = _server_address(deployment.api_base)
    if address:
        attributes["server.address"] = address
    if len(_constants) >= _CONSTANTS_MAX:
        _constants.clear()
    _constants[(id(deployment), operation)] = (deployment, operation, attributes)
    return attributes


def trace_refused(
    *,
    tracing: Tracing,
    traced: tuple[int, int, int],
    path: str,
    error: Any,
    started_ns: int,
    method: str = "POST",
) -> None:
    """A request refused before it has a context (authentication, a body too large): its
    request span alone, failed; nothing of its key. `traced` is the edge's (trace id, client's
    span, flags) (gateway/asgi.py)."""
    trace_id, parent, flags = traced
    if not ((flags & 1) if parent else _sampled(tracing, trace_id)):
        return
    try:
        operation = OPERATIONS.get(Endpoint(path.removeprefix("/v1/")), "")
    except ValueError:
        operation = ""
    operation = operation or path.removeprefix("/v1/")
    root = span_new(
        trace_id=trace_id,
        remote=parent != 0,
        name=operation,
        kind=SERVER,
        span_id=_span_id(),
        parent_id=parent,
        start_ns=min(started_ns, time.time_ns()),
        attributes={
            "gen_ai.operation.name": operation,
            "http.request.method": method,
            "url.path": path,
        },
    )
    span_fail(root, error)
    root[END] = time.time_ns()
    trace = SessionTrace(trace_id, root, ended=True)
    try:
        _export(tracing, trace, root[END])
    except Exception:  # never fail a request for its trace
        logger.exception("could not record the trace of a refused request")


def trace_failed(ctx: RequestContext, error: BaseException) -> None:
    """The request failed (or was cancelled) before or without answering: its trace ends."""
    trace: RequestTrace = ctx.trace
    status = getattr(error, "status", None)
    if isinstance(status, int):
        ctx.status_code = status
    elif not ctx.cancelled and ctx.status_code < 400:
        ctx.status_code = 500
    failure = _failure(error)
    errors = trace.errors
    if errors is None:
        errors = trace.errors = {}
    if not ctx.cancelled:  # the request's status is its ended facts'
        errors[ROOT_START] = (failure[0], None, failure[2])
    # The stages in flight when it failed (the admission, the routing) fail with it.
    if trace.marks[ROUTING_START] and not trace.marks[ROUTING_END]:
        trace_routing_end(ctx, None, error)
    marks = trace.marks
    now = _clock()
    for start, _, _ in STAGES:
        if marks[start] and not marks[start + 1]:
            errors[start] = failure
            marks[start + 1] = now
    trace_end(ctx)


_PHASES = {"pre_call": PRE_START, "post_call": POST_START}


async def trace_stage(ctx: RequestContext, name: str, stage: Awaitable[T], *, phase: str = "") -> T:
    """Run `stage` (guardrails: `phase` pre_call or post_call) in a span of its own."""
    trace: RequestTrace = ctx.trace
    start = _PHASES[phase]
    marks = trace.marks
    marks[start] = _clock()
    try:
        return await stage
    except BaseException as error:
        _stage_fail(trace, start, error)
        raise
    finally:
        marks[start + 1] = _clock()
        if ctx.guard is not None:
            actions = sorted({key[2] for key in ctx.guard.decisions if key[1] == phase})
            if actions:
                _stage_attributes(trace, start)["ogem.guardrails.actions"] = tuple(actions)


def _stage_fail(trace: RequestTrace, start: int, error: BaseException) -> None:
    if trace.errors is None:
        trace.errors = {}
    trace.errors[start] = _failure(error)


def _stage_attributes(trace: RequestTrace, start: int) -> dict[str, Any]:
    if trace.extra is None:
        trace.extra = {}
    return trace.extra.setdefault(start, {})


async def trace_cache(ctx: RequestContext, lookup: Awaitable[T]) -> T:
    """The response cache's lookup in a span: what it found (`ogem.cache.status`)."""
    trace: RequestTrace = ctx.trace
    marks = trace.marks
    marks[CACHE_START] = _clock()
    try:
        return await lookup
    except BaseException as error:
        _stage_fail(trace, CACHE_START, error)
        raise
    finally:
        marks[CACHE_END] = _clock()
        trace.cache = (ctx.cache_status or "miss", ctx.cache_similarity)


# A routing span's facts (trace_routing_end), by (candidates, attempts, deployment, group).
_routed: dict[tuple[int, int, int, str], tuple[Any, tuple[Any, ...]]] = {}


def trace_routing_end(
    ctx: RequestContext, response: Any, error: BaseException | None = None
) -> None:
    """The routing answered (`response`) or failed (`error`): its span ends. It began when
    relay.py wrote its start mark (ROUTING_START); its children are the upstream attempts."""
    trace: RequestTrace = ctx.trace
    marks = trace.marks
    if not marks[ROUTING_START] or marks[ROUTING_END]:
        return
    marks[ROUTING_END] = _clock()
    deployment = ctx.deployment
    attempts = len(trace.attempts) if trace.attempts is not None else 0
    if error is not None:
        _stage_fail(trace, ROUTING_START, error)
        trace.routing = ("routing", len(ctx.candidates), attempts,
                         None if deployment is None else deployment.id, None)  # fmt: skip
        return
    # Its facts repeat from request to request: shared, a batch carries them once.
    # The header as gateway/resilience.py set it: Django's case-insensitive read costs more
    # than the rest of this function
    found_group = response.headers._store.get("x-ogem-model-group")
    group = found_group[1] if found_group is not None else ctx.model
    key = (len(ctx.candidates), attempts, id(deployment), group)
    found = _routed.get(key)
    if found is None or found[0] is not deployment:
        facts = ("routing", key[0], attempts,
                 None if deployment is None else deployment.id, group)  # fmt: skip
        if len(_routed) >= _CONSTANTS_MAX:
            _routed.clear()
        found = _routed[key] = (deployment, facts)
    trace.routing = found[1]


def trace_attempt_start(ctx: RequestContext, deployment: Deployment) -> None:
    """An upstream attempt begins: its client span (a child of the routing span), and the
    `traceparent` the adapter sends names it."""
    trace: RequestTrace = ctx.trace
    now = _clock()
    attempts = trace.attempts
    if attempts is None:
        attempts = trace.attempts = []
    else:
        attempt = trace.attempt
        if attempt is not None and not attempt[A_END]:
            attempt[A_END] = now  # a retry after a drop_params resend
    operation = trace.operation
    root_id = trace.span_id
    number = ATTEMPT_FIRST + len(attempts)
    span_id = (root_id + (_STEPS[number] if number < 64 else number * _ID_STEP)) & _MASK64 or 1
    found = _constants.get((id(deployment), operation))  # _attempt_constants' lookup, inline
    constants = (
        found[2]
        if found is not None and found[0] is deployment
        else _attempt_constants(deployment, operation)
    )
    parent = (root_id + _STEPS[4]) & _MASK64 or 1 if trace.marks[ROUTING_START] else root_id
    # (its name, "operation model", is made by the exporter of its shared attributes)
    trace.attempt = attempt = [span_id, parent, constants, now, 0.0, None, None, None]
    attempts.append(attempt)
    trace.traceparent[0] = "00-%s-%016x-01" % (ctx.trace_id, span_id)  # noqa: UP031


def _server_address(api_base: str) -> str:
    if not api_base:
        return ""
    rest = api_base.split("://", 1)[-1]
    return rest.split("/", 1)[0].rsplit("@", 1)[-1]


def trace_attempt_failed(ctx: RequestContext, error: BaseException) -> None:
    attempt = ctx.trace.attempt
    if attempt is None or attempt[A_END]:
        return
    attempt[A_ERROR] = _failure(error)
    attempt[A_END] = _clock()


def trace_answer(
    ctx: RequestContext, result: Any, *, body: dict[str, Any], done: bool = False
) -> None:
    """A non-streamed answer arrived: its model, id and finish reasons (usage is added when the
    attempt ends), its content when captured. `done`: nothing runs between it and the attempt's
    end (no post_call guardrail): the attempt ends here (`trace_attempt_done`'s), a call less."""
    trace: RequestTrace = ctx.trace
    if not isinstance(result, dict):
        if done:
            trace_attempt_done(ctx)
        return
    model = result.get("model")
    trace.response_model = model = model if type(model) is str else str(model or "")
    response_id = result.get("id")
    trace.response_id = response_id = (
        response_id if type(response_id) is str else str(response_id or "")
    )
    choices = result.get("choices")
    reasons: list[str] | tuple[str, ...] = ()
    if type(choices) is list:
        reasons = []  # a loop, not a comprehension: its frame costs more than one choice
        for c in choices:
            if type(c) is dict:
                reason = c.get("finish_reason")
                if reason:
                    reasons.append(reason if type(reason) is str else str(reason))
        trace.finish_reasons = reasons
    attempt = trace.attempt
    if trace.capture and attempt is not None:
        _input_capture(attempt, body)
        if isinstance(choices, list):
            outputs = [_output_message(c) for c in choices if isinstance(c, dict)]
            _attempt_attributes(attempt)["gen_ai.output.messages"] = _json(outputs)
    if done and attempt is not None and not attempt[A_END]:  # trace_attempt_done's, inline
        if ctx.status_code >= 400 or ctx.cancelled:
            answered = _answered(ctx, trace)
        else:
            usage = ctx.usage
            answered = ("answered", model or None, response_id or None,
                        tuple(reasons) if reasons else None, usage.prompt_tokens,
                        usage.completion_tokens, usage.cached_tokens or None,
                        usage.cache_creation_tokens or None, usage.estimated or None)  # fmt: skip
        trace.answered = attempt[A_ANSWERED] = answered
        attempt[A_END] = _clock()


def trace_attempt_done(ctx: RequestContext) -> None:
    """A non-streamed attempt answered: what it used, and its span ends."""
    trace: RequestTrace = ctx.trace
    attempt = trace.attempt
    if attempt is not None and not attempt[A_END]:
        if ctx.status_code >= 400 or ctx.cancelled:
            answered = _answered(ctx, trace)
        else:  # _answered's, inline (every answer's)
            usage = ctx.usage
            reasons = trace.finish_reasons
            answered = ("answered", trace.response_model or None, trace.response_id or None,
                        tuple(reasons) if reasons else None, usage.prompt_tokens,
                        usage.completion_tokens, usage.cached_tokens or None,
                        usage.cache_creation_tokens or None, usage.estimated or None)  # fmt: skip
        trace.answered = attempt[A_ANSWERED] = answered
        attempt[A_END] = _clock()


def _attempt_attributes(attempt: list[Any]) -> dict[str, Any]:
    if attempt[A_ATTRS] is None:
        attempt[A_ATTRS] = {}
    return attempt[A_ATTRS]  # type: ignore[no-any-return]


def _input_capture(attempt: list[Any], body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        messages = body.get("prompt", body.get("input"))
    if messages is not None:
        _attempt_attributes(attempt)["gen_ai.input.messages"] = _json(messages)


def _output_message(choice: dict[str, Any]) -> Any:
    message = choice.get("message")
    if isinstance(message, dict):
        return {"role": message.get("role", "assistant"), "content": message.get("content"),
                "finish_reason": choice.get("finish_reason")}  # fmt: skip
    return {
        "role": "assistant",
        "content": choice.get("text"),
        "finish_reason": choice.get("finish_reason"),
    }


def _json(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = str(value)
    return text[:32768]  # a bound on what one attribute carries


def trace_first_token(ctx: RequestContext, *, body: dict[str, Any]) -> None:
    """The stream's first chunk arrived: the time to first token as an event; the request's
    content when captured (as sent upstream: masked)."""
    trace: RequestTrace = ctx.trace
    if trace.capture and trace.attempt is not None:
        _input_capture(trace.attempt, body)
    trace.marks[FIRST_TOKEN] = _clock()
    trace.first_token = ctx.first_token_seconds or 0.0


class TraceObserver:
    """Sees a traced stream's chunks (gateway/streaming.py's ChunkObserver): its model, id,
    finish reasons and, when captured, its text."""

    __slots__ = ("trace",)

    def __init__(self, trace: RequestTrace) -> None:
        self.trace = trace
        trace.finish_reasons = []
        if trace.capture:
            trace.output = []

    def add(self, chunk: dict[str, Any], usage: dict[str, Any] | None) -> None:
        trace = self.trace
        if not trace.response_model and chunk.get("model"):
            trace.response_model = str(chunk["model"])
            trace.response_id = str(chunk.get("id") or "")
        choices = chunk.get("choices")
        if not choices or type(choices) is not list:
            return
        for choice in choices:
            if type(choice) is not dict:
                continue
            reason = choice.get("finish_reason")
            if reason:
                trace.finish_reasons.append(str(reason))  # type: ignore[union-attr]
            if trace.output is not None:
                delta = choice.get("delta")
                text = delta.get("content") if type(delta) is dict else choice.get("text")
                if type(text) is str:
                    trace.output.append(text)

    def finish(self) -> None:
        pass


def trace_end(ctx: RequestContext) -> None:
    """The request is over (answered, failed or its stream ended): its record (its marks, its
    attempts, the facts of its answer and of how it ended) is handed to the exporter, which
    makes its spans. Once per request."""
    trace: RequestTrace | None = ctx.trace
    if trace is None or trace.ended:
        return
    trace.ended = True
    trace.traceparent[0] = None  # a task that runs more requests starts each afresh
    tracing = _active
    marks = trace.marks
    marks[ROOT_END] = now = _clock()
    deployment = ctx.deployment
    status = ctx.status_code
    # The answered attempt's facts, shared when they still hold (no failure since).
    answered = trace.answered
    if answered is None or status >= 400 or ctx.cancelled:
        answered = _answered(ctx, trace)
    found = _ended.get((id(deployment), status, ctx.cache_status, ctx.cancelled))
    facts = found[1] if found is not None and found[0] is deployment else None
    extra = trace.extra
    if ctx.guard is not None and ctx.guard.decisions:
        decisions = _json(ctx.guard.decisions_list())
        _stage_attributes(trace, ROOT_START)["ogem.guardrails.decisions"] = decisions
        extra = trace.extra
    if status >= 400 and (trace.errors is None or ROOT_START not in trace.errors):
        if trace.errors is None:
            trace.errors = {}
        trace.errors[ROOT_START] = (str(status), None, f"HTTP {status}")
    attempt = trace.attempt
    if attempt is not None and not attempt[A_END]:
        attempt[A_ANSWERED] = answered
        if trace.output is not None:
            text = _remask(ctx, "".join(trace.output))
            reasons = trace.finish_reasons
            _attempt_attributes(attempt)["gen_ai.output.messages"] = _json(
                [{"role": "assistant", "content": text,
                  "finish_reason": reasons[0] if reasons else None}]
            )  # fmt: skip
        if status >= 400 and attempt[A_ERROR] is None:
            attempt[A_ERROR] = (None, None, f"HTTP {status}")
        attempt[A_END] = now
    if tracing is None:
        return  # turned off meanwhile
    # gateway/tracing_export.py's RECORD_FIELDS
    record = (
        trace.trace_id, trace.span_id, trace.parent, trace.operation, trace.constants,
        (ctx.request_id, ctx.model or None, True if ctx.stream else None, ctx.max_tokens),
        answered, facts or _ended_facts(ctx, deployment), marks, trace.attempts, trace.routing,
        trace.cache, extra, trace.errors, trace.first_token,
    )  # fmt: skip
    try:
        tracing.pipe.put(record)
    except Exception:  # never fail a request for its trace
        logger.exception("could not record the trace of request %s", ctx.request_id)


# The request span's facts of how it ended (FACTS["request"]), shared like _constants: they
# repeat from request to request, and a batch then carries them once.
_ended: dict[tuple[int, int, str, bool], tuple[Any, tuple[Any, ...]]] = {}


def _ended_facts(ctx: RequestContext, deployment: Deployment | None) -> tuple[Any, ...]:
    key = (id(deployment), ctx.status_code, ctx.cache_status, ctx.cancelled)
    found = _ended.get(key)
    if found is not None and found[0] is deployment:
        return found[1]
    provider = None if deployment is None else deployment.provider
    facts = (
        "request",
        PROVIDER_NAMES.get(provider, provider) if deployment is not None else None,
        None if deployment is None else deployment.id,
        ctx.status_code,
        ctx.cache_status or None,
        True if ctx.cancelled else None,
    )
    if len(_ended) >= _CONSTANTS_MAX:
        _ended.clear()
    _ended[key] = (deployment, facts)
    return facts


def _remask(ctx: RequestContext, text: str) -> str:
    """A stream's text as the upstream sent it: the values pre_call masked, placeholders again
    (guard_chunks restored them before the observers see the chunks)."""
    masker = ctx.guard.masker if ctx.guard is not None else None
    if masker is None:
        return text
    for (_, value), placeholder in masker.by_value.items():
        text = text.replace(value, f"<{placeholder}>")
    return text


def _caller_attributes(attributes: dict[str, Any], caller: Caller) -> None:
    """Who made the request: the key's prefix (never the key), its team and organization."""
    if caller.key_id is not None:
        attributes["ogem.key.prefix"] = caller.key_prefix
    if caller.team_id is not None:
        attributes["ogem.team.id"] = caller.team_id
    if caller.organization_id is not None:
        attributes["ogem.organization.id"] = caller.organization_id


def _usage_attributes(attributes: dict[str, Any], usage: Usage) -> None:
    """The GenAI conventions' token counts (cached and cache-creation ones when there are)."""
    attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
    attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
    if usage.cached_tokens:
        attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
    if usage.cache_creation_tokens:
        attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_creation_tokens
    if usage.estimated:
        attributes["ogem.usage.estimated"] = True


def _answered(ctx: RequestContext, trace: RequestTrace) -> tuple[Any, ...]:
    """The answer's attributes as facts (gateway/tracing_export.py's FACTS["answered"]): its
    model, id, finish reasons and usage."""
    reasons = trace.finish_reasons
    if ctx.status_code >= 400 or ctx.cancelled:
        return ("answered", trace.response_model or None, trace.response_id or None,
                tuple(reasons) if reasons else None, None, None, None, None, None)  # fmt: skip
    usage = ctx.usage
    return ("answered", trace.response_model or None, trace.response_id or None,
            tuple(reasons) if reasons else None, usage.prompt_tokens, usage.completion_tokens,
            usage.cached_tokens or None, usage.cache_creation_tokens or None,
            usage.estimated or None)  # fmt: skip


_NO_ATTRIBUTES: dict[str, Any] = {}  # a span's without any (never written to)


def _export(tracing: Tracing, trace: SessionTrace, now: int) -> None:
    """A Realtime session's (or a refused request's) spans queued, as the exporter reads them
    (gateway/tracing_export.py's SPAN_FIELDS): those still open ended at `now`, each list's own
    attributes popped and joined to its shared parts. Once a trace."""
    spans = [trace.root, *trace.spans]
    empty = _NO_ATTRIBUTES
    for span in spans:
        if not span[END]:
            span[END] = now
        attributes = span.pop()
        shared = span[SHARED]
        if not shared:
            span[SHARED] = attributes or empty
        elif attributes:
            span[SHARED] = (*shared, attributes)
    tracing.pipe.put(spans)


# A session is a trace: its span (SERVER) is the root, each response (a response.create, or a
# response the upstream started itself, until its response.done) a CLIENT span under it. A
# response's span is exported when it is settled, the session's when the session ends: a session
# may last an hour.


def realtime_trace_begin(
    *,
    tracing: Tracing,
    headers: Any,
    session_id: str,
    model: str,
    deployment: Deployment,
    caller: Any,
) -> SessionTrace | None:
    """A Realtime session's trace, None when it is not sampled. `headers`: the WebSocket
    handshake's (ASGI) headers, for the client's `traceparent`."""
    traced = None
    for name, value in headers:
        if name == b"traceparent":
            traced = trace_context_parse(value)
    trace_id, parent, flags = traced or (trace_id_new(), 0, 1)
    if not ((flags & 1) if parent else _sampled(tracing, trace_id)):
        return None
    root = span_new(
        trace_id=trace_id,
        remote=parent != 0,
        name=f"realtime {model}",
        kind=SERVER,
        span_id=_span_id(),
        parent_id=parent,
        start_ns=time.time_ns(),
        attributes={
            "gen_ai.operation.name": "realtime",
            "gen_ai.request.model": model,
            "gen_ai.provider.name": PROVIDER_NAMES.get(deployment.provider, deployment.provider),
            "ogem.deployment.id": deployment.id,
            "url.path": "/v1/realtime",
            "ogem.realtime.session_id": session_id,
        },
    )
    address = _server_address(deployment.api_base)
    if address:
        root[ATTRS]["server.address"] = address
    _caller_attributes(root[ATTRS], caller)
    return SessionTrace(trace_id, root)


def realtime_response_start(trace: SessionTrace, deployment: Deployment) -> SpanRecord:
    """A response begins (admitted): its span."""
    span = span_new(
        trace_id=trace.trace_id,
        name=f"realtime {deployment.upstream_model}",
        kind=CLIENT,
        span_id=_span_id(),
        parent_id=trace.root[SPAN_ID],
        start_ns=time.time_ns(),
        attributes={
            "gen_ai.operation.name": "realtime",
            "gen_ai.provider.name": PROVIDER_NAMES.get(deployment.provider, deployment.provider),
            "gen_ai.request.model": deployment.upstream_model,
            "ogem.deployment.id": deployment.id,
        },
    )
    trace.spans.append(span)
    return span


def realtime_response_end(
    trace: SessionTrace,
    span: SpanRecord,
    ctx: RequestContext,
    *,
    status: str,
    response_id: str | None,
    error: BaseException | None = None,
) -> None:
    """A response is settled (response.done, an upstream error, the session's end) or was
    refused at admission (`error`): its usage and status on its span, which is exported."""
    attributes = span[ATTRS]
    if response_id:
        attributes["gen_ai.response.id"] = response_id
    if status:
        attributes["ogem.realtime.response.status"] = status
    if error is not None:
        span_fail(span, error)
    elif ctx.status_code >= 400:
        span[ERROR] = f"HTTP {ctx.status_code}"
        attributes["error.type"] = str(ctx.status_code)
        attributes["http.response.status_code"] = ctx.status_code
    else:
        usage = ctx.usage
        _usage_attributes(attributes, usage)
        if usage.audio_prompt_tokens:
            attributes["ogem.usage.audio_input_tokens"] = usage.audio_prompt_tokens
        if usage.audio_completion_tokens:
            attributes["ogem.usage.audio_output_tokens"] = usage.audio_completion_tokens
        trace.root[ATTRS]["gen_ai.usage.input_tokens"] = (
            trace.root[ATTRS].get("gen_ai.usage.input_tokens", 0) + usage.prompt_tokens
        )
        trace.root[ATTRS]["gen_ai.usage.output_tokens"] = (
            trace.root[ATTRS].get("gen_ai.usage.output_tokens", 0) + usage.completion_tokens
        )
    if ctx.cancelled:
        attributes["ogem.cancelled"] = True
    span[END] = time.time_ns()
    tracing = _active
    if span in trace.spans:
        trace.spans.remove(span)
    if tracing is not None:
        span[SHARED] = span.pop()  # its own attributes alone (_export's)
        tracing.pipe.put([span])


def realtime_trace_end(trace: SessionTrace, *, reason: str, responses: int) -> None:
    """The session ended: its span, with why and how many responses, is exported."""
    if trace.ended:
        return
    trace.ended = True
    root = trace.root
    root[ATTRS]["ogem.realtime.close_reason"] = reason
    root[ATTRS]["ogem.realtime.responses"] = responses
    root[END] = time.time_ns()
    tracing = _active
    if tracing is not None:  # responses never settled (should not be): closed with the session
        _export(tracing, trace, root[END])


def tracing_flush(timeout_millis: int = 5000) -> bool:
    """Export what is queued now and wait for the collector to have it (tests, shutdown)."""
    tracing = _active
    return tracing.pipe.flush(timeout_millis / 1000) if tracing is not None else True
