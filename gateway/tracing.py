"""OpenTelemetry traces of /v1 requests, following the GenAI semantic conventions
(docs/tracing.md).

A request's spans are recorded as small lists while it runs (`SpanRecord`s: a clock read and a
list literal each) and queued as they are once it ends (OpenTelemetry's SDK objects are never
built: its tracer, with its context attach and detach, costs several times as much a span). A
thread of the worker hands the queue to an exporter process (gateway/tracing_pipe.py), which
encodes and sends it over OTLP (gateway/tracing_export.py): neither costs the request path, nor
the worker's CPU beyond a pickling. The queue is bounded and drops (counted) when a collector is
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


class RequestTrace:
    """A request's (or a Realtime session's) trace while it runs: its root span, the spans under
    it, and what the answer said (its model, id, finish reasons)."""

    __slots__ = ("answered", "attempt", "attempts", "capture", "ended", "finish_reasons", "flags",
                 "handed_off", "operation", "output", "remote_parent", "response_id",
                 "response_model", "root", "routing", "spans", "trace_id")  # fmt: skip

    def __init__(
        self,
        trace_id: int,
        flags: int,
        remote_parent: int,  # the client's span, 0 when Ogem started the trace
        root: SpanRecord,
        capture: bool = False,
        operation: str = "",
        ended: bool = False,
    ) -> None:
        self.trace_id = trace_id
        self.flags = flags
        self.remote_parent = remote_parent
        self.root = root
        self.spans: list[SpanRecord] = []
        self.attempt: SpanRecord | None = None  # the upstream attempt in flight (a stream's)
        self.routing: SpanRecord | None = None
        self.capture = capture
        self.output: list[str] | None = None  # a stream's generated text, when captured
        self.finish_reasons: list[str] = []
        self.response_model = ""
        self.response_id = ""
        self.handed_off = False  # a stream: the trace ends when it does
        self.ended = ended
        self.operation = operation
        self.attempts = 0  # upstream attempts begun
        self.answered: tuple[Any, ...] | None = None  # the answered attempt's (`_answered`)

    def span(
        self, name: str, *, kind: int = INTERNAL, parent: SpanRecord | None = None
    ) -> SpanRecord:
        # Its id from the root's (one random a request): a step apart, never zero.
        span_id = (self.root[SPAN_ID] + (len(self.spans) + 1) * _ID_STEP) & _MASK64 or 1
        record = [self.trace_id, span_id, (parent or self.root)[SPAN_ID], False, name, kind,
                  time.time_ns(), 0, (), (), None, {}]  # fmt: skip
        self.spans.append(record)
        return record


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


def trace_begin(
    ctx: RequestContext, *, tracing: Tracing, trace_id: int, parent: int, flags: int
) -> None:
    """Start the request's trace: its root span (the request, as its server), the ids callbacks
    read (ctx.trace_id, ctx.span_id) and the `traceparent` sent upstream."""
    span_id = _getrandbits(64) or 1
    # %-formatting: an f-string's format spec costs a __format__ call more (half again)
    ctx.trace_id = trace_hex = "%032x" % trace_id  # noqa: UP031
    ctx.span_id = span_hex = "%016x" % span_id  # noqa: UP031
    if not ((flags & 1) if parent else (tracing.ratio >= 1.0 or _sampled(tracing, trace_id))):
        # Not recorded; upstream hears the trace, not sampled, from the client's own span.
        upstream_traceparent.set(f"00-{trace_hex}-{(parent or span_id):016x}-00")
        return
    started = time.time_ns() - int((time.perf_counter() - ctx.started_at) * 1e9)
    endpoint = ctx.endpoint
    # By identity: an Endpoint's hash is Enum's, a Python call
    operation = _OPERATION_OF[id(endpoint)]
    recorded_as = ctx.recorded_as
    # span_new's list, inline
    caller = ctx.caller
    described = recorded_as or endpoint
    found = _constants.get((id(caller), id(described)))  # _request_constants' lookup, inline
    constants = (
        found[2]
        if found is not None and found[0] is caller
        else _request_constants(described, operation, caller)
    )
    root = [trace_id, span_id, parent, parent != 0, operation, SERVER, started, 0, (constants,),
            (), None, {"ogem.request_id": ctx.request_id}]  # fmt: skip
    ctx.trace = RequestTrace(trace_id, 1, parent, root, tracing.capture_content, operation)
    upstream_traceparent.set("00-" + trace_hex + "-" + span_hex + "-01")


# Attribute dicts that repeat from request to request, built once (a span's SHARED), by the
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
    trace = RequestTrace(trace_id=trace_id, flags=1, remote_parent=parent, root=root, ended=True)
    try:
        _export(tracing, trace, root[END])
    except Exception:  # never fail a request for its trace
        logger.exception("could not record the trace of a refused request")


def trace_request(ctx: RequestContext) -> None:
    """The request's body is read: the model and parameters on the root span."""
    trace: RequestTrace = ctx.trace
    root = trace.root
    model = ctx.model
    root[NAME] = trace.operation + " " + model
    attributes = root[ATTRS]
    attributes["gen_ai.request.model"] = model
    if ctx.stream:
        attributes["gen_ai.request.stream"] = True
    if ctx.max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = ctx.max_tokens


def trace_failed(ctx: RequestContext, error: BaseException) -> None:
    """The request failed (or was cancelled) before or without answering: its trace ends."""
    trace: RequestTrace = ctx.trace
    status = getattr(error, "status", None)
    if isinstance(status, int):
        ctx.status_code = status
    elif not ctx.cancelled and ctx.status_code < 400:
        ctx.status_code = 500
    if not ctx.cancelled:
        span_fail(trace.root, error)
    # The stages in flight when it failed (trace_span_start's, the routing) fail with it.
    routing = trace.routing
    if routing is not None and not routing[END]:
        trace_routing_end(ctx, None, error)
    attempt = trace.attempt
    for span in trace.spans:
        if not span[END] and span is not attempt:
            span_fail(span, error)
            span[END] = time.time_ns()
    trace_end(ctx)


async def trace_stage(ctx: RequestContext, name: str, stage: Awaitable[T], *, phase: str = "") -> T:
    """Run `stage` (admission, guardrails) in a span of its own."""
    trace: RequestTrace = ctx.trace
    span = trace.span(name)
    if phase:
        span[ATTRS]["ogem.guardrails.phase"] = phase
    try:
        return await stage
    except BaseException as error:
        span_fail(span, error)
        raise
    finally:
        span[END] = time.time_ns()
        if phase and ctx.guard is not None:
            actions = sorted({key[2] for key in ctx.guard.decisions if key[1] == phase})
            if actions:
                span[ATTRS]["ogem.guardrails.actions"] = tuple(actions)


async def trace_cache(ctx: RequestContext, lookup: Awaitable[T]) -> T:
    """The response cache's lookup in a span: what it found (`ogem.cache.status`)."""
    trace: RequestTrace = ctx.trace
    span = trace.span("ogem.cache")
    try:
        return await lookup
    except BaseException as error:
        span_fail(span, error)
        raise
    finally:
        span[END] = time.time_ns()
        span[ATTRS]["ogem.cache.status"] = ctx.cache_status or "miss"
        if ctx.cache_similarity is not None:
            span[ATTRS]["ogem.cache.similarity"] = ctx.cache_similarity


def trace_span_start(ctx: RequestContext, name: str) -> SpanRecord:
    """A stage's span (admission) begins; the caller ends it (`end_ns`) once the stage is done.
    A stage that raises leaves it open: trace_failed fails and ends it. (No coroutine around
    the stage, as trace_stage has: that costs a frame on each of its resumptions.)"""
    trace: RequestTrace = ctx.trace
    spans = trace.spans
    root_id = trace.root[SPAN_ID]
    # RequestTrace.span's work inline: a call fewer
    span = [trace.trace_id, (root_id + (len(spans) + 1) * _ID_STEP) & _MASK64 or 1, root_id,
            False, name, INTERNAL, time.time_ns(), 0, (), (), None, {}]  # fmt: skip
    spans.append(span)
    return span


# A routing span's attributes (trace_routing_end), by (candidates, attempts, deployment, group).
_routed: dict[tuple[int, int, int, str], tuple[Any, dict[str, Any]]] = {}


def trace_routing_start(ctx: RequestContext) -> None:
    """The routing decision (retries, failover and fallbacks) begins: its span, whose children
    are the upstream attempts. It ends at trace_routing_end, or fails at trace_failed."""
    trace: RequestTrace = ctx.trace
    spans = trace.spans
    root_id = trace.root[SPAN_ID]
    trace.routing = span = [
        trace.trace_id, (root_id + (len(spans) + 1) * _ID_STEP) & _MASK64 or 1, root_id, False,
        "ogem.routing", INTERNAL, time.time_ns(), 0, (), (), None,
        {"ogem.routing.candidates": len(ctx.candidates)},
    ]  # fmt: skip
    spans.append(span)


def trace_routing_end(
    ctx: RequestContext, response: Any, error: BaseException | None = None
) -> None:
    """The routing answered (`response`) or failed (`error`): its span ends."""
    trace: RequestTrace = ctx.trace
    span = trace.routing
    if span is None or span[END]:
        return
    span[END] = time.time_ns()
    deployment = ctx.deployment
    if error is None:
        # Its attributes repeat from request to request: shared (a span's SHARED), a batch
        # carries them once.
        group = response.get("x-ogem-model-group") or ctx.model
        key = (len(ctx.candidates), trace.attempts, id(deployment), group)
        found = _routed.get(key)
        if found is None or found[0] is not deployment:
            attributes = {
                "ogem.routing.candidates": key[0],
                "ogem.routing.attempts": key[1],
            }
            if deployment is not None:
                attributes["ogem.deployment.id"] = deployment.id
            attributes["ogem.model_group"] = group
            if len(_routed) >= _CONSTANTS_MAX:
                _routed.clear()
            found = _routed[key] = (deployment, attributes)
        if len(span[ATTRS]) == 1:  # its candidates alone, which the shared part has
            span[SHARED] = (found[1],)
            span[ATTRS] = {}
            return
    else:
        span_fail(span, error)
    attributes = span[ATTRS]
    attributes["ogem.routing.attempts"] = trace.attempts
    if deployment is not None:
        attributes["ogem.deployment.id"] = deployment.id
    if error is None:
        attributes["ogem.model_group"] = found[1]["ogem.model_group"]


def trace_attempt_start(ctx: RequestContext, deployment: Deployment) -> None:
    """An upstream attempt begins: its client span (a child of the routing span), and the
    `traceparent` the adapter sends names it."""
    trace: RequestTrace = ctx.trace
    attempt = trace.attempt
    if attempt is not None and not attempt[END]:
        attempt[END] = time.time_ns()  # a retry after a drop_params resend
    operation = trace.operation
    spans = trace.spans
    # The span inline (RequestTrace.span's): the attempt is every request's
    span_id = (trace.root[SPAN_ID] + (len(spans) + 1) * _ID_STEP) & _MASK64 or 1
    routing = trace.routing
    found = _constants.get((id(deployment), operation))  # _attempt_constants' lookup, inline
    constants = (
        found[2]
        if found is not None and found[0] is deployment
        else _attempt_constants(deployment, operation)
    )
    trace.attempt = span = [
        trace.trace_id, span_id, (routing or trace.root)[SPAN_ID], False,
        operation + " " + deployment.upstream_model, CLIENT, time.time_ns(), 0, (constants,), (),
        None, {},
    ]  # fmt: skip
    spans.append(span)
    trace.attempts += 1
    upstream_traceparent.set("00-" + ctx.trace_id + "-" + "%016x" % span_id + "-01")  # noqa: UP031


def _server_address(api_base: str) -> str:
    if not api_base:
        return ""
    rest = api_base.split("://", 1)[-1]
    return rest.split("/", 1)[0].rsplit("@", 1)[-1]


def trace_attempt_failed(ctx: RequestContext, error: BaseException) -> None:
    trace: RequestTrace = ctx.trace
    span = trace.attempt
    if span is None or span[END]:
        return
    span_fail(span, error)
    span[END] = time.time_ns()


def trace_answer(ctx: RequestContext, result: Any, *, body: dict[str, Any]) -> None:
    """A non-streamed answer arrived: its model, id and finish reasons on the attempt's span
    (usage is added when the request ends), its content when captured."""
    trace: RequestTrace = ctx.trace
    if not isinstance(result, dict):
        return
    model = result.get("model")
    trace.response_model = model if type(model) is str else str(model or "")
    response_id = result.get("id")
    trace.response_id = response_id if type(response_id) is str else str(response_id or "")
    choices = result.get("choices")
    if type(choices) is list:
        reasons = []  # a loop, not a comprehension: its frame costs more than one choice
        for c in choices:
            if type(c) is dict:
                reason = c.get("finish_reason")
                if reason:
                    reasons.append(reason if type(reason) is str else str(reason))
        trace.finish_reasons = reasons
    if trace.capture and trace.attempt is not None:
        _input_capture(trace.attempt, body)
        if isinstance(choices, list):
            outputs = [_output_message(c) for c in choices if isinstance(c, dict)]
            trace.attempt[ATTRS]["gen_ai.output.messages"] = _json(outputs)


def trace_attempt_done(ctx: RequestContext) -> None:
    """A non-streamed attempt answered: what it used, and its span ends."""
    trace: RequestTrace = ctx.trace
    span = trace.attempt
    if span is not None and not span[END]:
        if ctx.status_code >= 400 or ctx.cancelled:
            answered = _answered(ctx, trace)
        else:  # _answered's, inline (every answer's)
            usage = ctx.usage
            reasons = trace.finish_reasons
            answered = ("answered", trace.response_model or None, trace.response_id or None,
                        tuple(reasons) if reasons else None, usage.prompt_tokens,
                        usage.completion_tokens, usage.cached_tokens or None,
                        usage.cache_creation_tokens or None, usage.estimated or None)  # fmt: skip
        trace.answered = answered
        span[SHARED] = (*span[SHARED], answered)
        span[END] = time.time_ns()


def _input_capture(span: SpanRecord, body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        messages = body.get("prompt", body.get("input"))
    if messages is not None:
        span[ATTRS]["gen_ai.input.messages"] = _json(messages)


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
    seconds = ctx.first_token_seconds or 0.0
    now = time.time_ns()
    event = ("gen_ai.first_token", now, {"gen_ai.server.time_to_first_token": seconds})
    trace.root[EVENTS] += (event,)
    trace.root[ATTRS]["gen_ai.server.time_to_first_token"] = seconds
    if trace.attempt is not None:
        trace.attempt[EVENTS] += (event,)


class TraceObserver:
    """Sees a traced stream's chunks (gateway/streaming.py's ChunkObserver): its model, id,
    finish reasons and, when captured, its text."""

    __slots__ = ("trace",)

    def __init__(self, trace: RequestTrace) -> None:
        self.trace = trace
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
                trace.finish_reasons.append(str(reason))
            if trace.output is not None:
                delta = choice.get("delta")
                text = delta.get("content") if type(delta) is dict else choice.get("text")
                if type(text) is str:
                    trace.output.append(text)

    def finish(self) -> None:
        pass


def trace_end(ctx: RequestContext) -> None:
    """The request is over (answered, failed or its stream ended): end its open spans, add what
    it used, and hand every span to the exporter. Once per request."""
    trace: RequestTrace | None = ctx.trace
    if trace is None or trace.ended:
        return
    trace.ended = True
    upstream_traceparent.set(None)  # a task that runs more requests starts each afresh
    tracing = _active
    now = time.time_ns()
    root = trace.root
    attributes = root[ATTRS]
    deployment = ctx.deployment
    # The answered attempt's attributes, shared when they still hold (no failure since).
    answered = trace.answered
    if answered is None or ctx.status_code >= 400 or ctx.cancelled:
        answered = _answered(ctx, trace)
    attributes.pop("http.response.status_code", None)  # a failure's: the request's below
    found = _ended.get((id(deployment), ctx.status_code, ctx.cache_status, ctx.cancelled))
    facts = found[1] if found is not None and found[0] is deployment else None
    if ctx.guard is not None and ctx.guard.decisions:
        attributes["ogem.guardrails.decisions"] = _json(ctx.guard.decisions_list())
    if ctx.status_code >= 400 and root[ERROR] is None:
        root[ERROR] = f"HTTP {ctx.status_code}"
        attributes.setdefault("error.type", str(ctx.status_code))
    attempt = trace.attempt
    if attempt is not None and not attempt[END]:
        attempt[SHARED] = (*attempt[SHARED], answered)
        if trace.output is not None:
            text = _remask(ctx, "".join(trace.output))
            attempt[ATTRS]["gen_ai.output.messages"] = _json(
                [{"role": "assistant", "content": text,
                  "finish_reason": trace.finish_reasons[0] if trace.finish_reasons else None}]
            )  # fmt: skip
        if ctx.status_code >= 400 and attempt[ERROR] is None:
            attempt[ERROR] = f"HTTP {ctx.status_code}"
        attempt[END] = now
    root[END] = now
    root[SHARED] = (*root[SHARED], answered, facts or _ended_facts(ctx, deployment))
    if tracing is None:
        return  # turned off meanwhile
    try:
        _export(tracing, trace, now)
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


def _export(tracing: Tracing, trace: RequestTrace, now: int) -> None:
    """The trace's spans queued, as the exporter reads them (gateway/tracing_export.py's
    SPAN_FIELDS): those still open ended at `now`, each list's own attributes popped and joined
    to its shared parts (a span with shared parts and no attribute of its own is sent its parts
    alone). Once a trace."""
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


# -- Realtime sessions (gateway/realtime/session.py) ------------------------------------------
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
) -> RequestTrace | None:
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
    return RequestTrace(trace_id=trace_id, flags=1, remote_parent=parent, root=root)


def realtime_response_start(trace: RequestTrace, deployment: Deployment) -> SpanRecord:
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
    trace: RequestTrace,
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


def realtime_trace_end(trace: RequestTrace, *, reason: str, responses: int) -> None:
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
