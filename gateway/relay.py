"""The /v1 pipeline, one straight line per request:

authenticate -> resolve the model -> (the response cache's plan) -> governance_admit_start ->
(a cache hit answers here, once admitted; after an exact miss, the semantic tier's) -> choose a
deployment (the admission confirmed meanwhile: gateway.resilience.admitted) and call its adapter
(or open its stream), with retries and fallbacks (gateway.resilience) -> relay (a miss stored) ->
governance_settle and the request's metrics (exactly once, in a finally)
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from gateway.auth import caller_authenticate
from gateway.body import Checked, Inbound, body_check, body_for_upstream, body_read_json
from gateway.cache import (
    HIT,
    LOOKUP,
    PlanMemo,
    cache_answer,
    cache_found,
    cache_hit_count,
    cache_lookup,
    cache_memo_find,
    cache_memo_hit,
    cache_memo_keep,
    cache_memo_plan,
    cache_plan,
    cache_recorder,
    cache_respond,
    cache_store,
    cache_write_flush,
    memo_sizes,
)
from gateway.callbacks.emit import CallbackPlan, StreamText, callbacks_emit, callbacks_plan
from gateway.config import GatewayConfig, config_current
from gateway.context import Caller, RequestContext
from gateway.debugging import debug_answer, debug_error, debug_request_keep, debug_start
from gateway.errors import GatewayError, GuardrailBlockedError, InvalidRequestError
from gateway.governance import (
    Admission,
    admission_complete,
    admission_confirm,
    governance_admit_start,
    governance_settle,
    request_bounds_fill,
    request_cost,
    settle_deferred,
    speech_characters,
)
from gateway.guardrails.stage import (
    guard_answer,
    guard_chunks,
    guard_during,
    guard_input,
    guard_plan,
)
from gateway.metrics import request_metrics_record
from gateway.registry import registry_get
from gateway.resilience import resilience_run
from gateway.responses import headers_apply, json_response, request_id_for
from gateway.router import deployments_for, mock_candidates
from gateway.semantic import semantic_lookup, semantic_plan, semantic_respond
from gateway.stored import StreamKeeper, stored_completion_keep, stored_request_build
from gateway.streaming import (
    ChunkObserver,
    binary_relay,
    completion_bytes,
    event_relay,
    sse_relay,
    stream_bounded,
    upstream_call_ended,
    usage_block,
    usage_estimate_cancelled,
    usage_estimate_unreported,
    usage_fill,
)
from gateway.tracing import (
    ADMISSION_START,
    ADMITTED,
    ROUTING_START,
    TraceObserver,
    trace_answer,
    trace_attempt_done,
    trace_attempt_failed,
    trace_attempt_start,
    trace_begin,
    trace_cache,
    trace_end,
    trace_failed,
    trace_first_token,
    trace_id_new,
    trace_refused,
    trace_routing_end,
    trace_stage,
    tracing_active,
)
from providers.adapter import ProviderAdapter, UploadFile
from providers.base import Deployment, Endpoint
from providers.events import EVENT_STREAM_ENDPOINTS
from providers.registry import adapter_get

Reader = Callable[[HttpRequest], Inbound]


async def relay(
    request: HttpRequest,
    *,
    endpoint: Endpoint,
    reader: Reader,
    default_model: Callable[[RequestContext], str | None] | None = None,
    caller: Caller | None = None,
    recorded_as: Endpoint | None = None,
    batch_id: str = "",
) -> HttpResponse:
    """Answer one /v1 request. `caller` is given for work Ogem does on a caller's behalf
    (gateway/internal.py); otherwise the request's credential says who calls. `recorded_as`
    names the endpoint the client called when Ogem serves it over `endpoint` (the Responses API
    over chat completions). `batch_id` marks a line of that batch (priced and settled as one,
    gateway/governance.py)."""
    started = getattr(request, "ogem_started", None) or time.perf_counter()
    request_id = request_id_for(request)
    # A client's request (not Ogem's own, gateway/internal.py, which may run in a task that
    # outlives the handler whose `settle_deferred` it inherited): its hit may settle after it.
    client = caller is None
    if caller is None:
        try:
            caller = await caller_authenticate(request)
        except GatewayError as error:
            _refusal_trace(request, endpoint=recorded_as or endpoint, error=error, started=started)
            raise
    inbound = reader(request)
    ctx = RequestContext(
        request_id=request_id, endpoint=endpoint, caller=caller, recorded_as=recorded_as
    )
    ctx.started_at = started
    ctx.batch_id = batch_id
    registry_get()  # a process's first request loads the configuration file with its registry
    config = config_current()
    traced = getattr(request, "ogem_trace", None)  # (trace id, client's span, flags): asgi.py
    tracing = tracing_active(config.tracing)
    if tracing is None:
        if traced is not None:
            ctx.trace_id = request.ogem_trace_hex  # type: ignore[attr-defined]  # asgi.py's
        raw = None
        if (
            reader is body_read_json
            and default_model is None
            and recorded_as is None
            and client
            and not batch_id
        ):
            raw = getattr(request, "_body", None)  # in memory, as the reader took it
        return await _relay(ctx, request, inbound, default_model, config, client, raw)
    if traced is None:  # a request Ogem makes itself (gateway/internal.py)
        trace_id = trace_id_new()
        trace_begin(ctx, tracing=tracing, traced=(trace_id, 0, 1), trace_hex="%032x" % trace_id)  # noqa: UP031
    else:
        trace_begin(ctx, tracing=tracing, traced=traced, trace_hex=request.ogem_trace_hex)  # type: ignore[attr-defined]
    if ctx.trace is None:  # not sampled
        return await _relay(ctx, request, inbound, default_model, config, client)
    try:
        response = await _relay(ctx, request, inbound, default_model, config, client)
    except BaseException as error:
        trace_failed(ctx, error)
        raise
    if not ctx.trace.handed_off:  # a stream's trace ends with it (its settle)
        trace_end(ctx)
    return response


def _refusal_trace(
    request: HttpRequest, *, endpoint: Endpoint, error: GatewayError, started: float
) -> None:
    """A request refused at authentication: its request span alone, when tracing is on."""
    traced = getattr(request, "ogem_trace", None)
    if traced is None:
        return
    request.ogem_trace = None  # type: ignore[attr-defined]  # recorded: the edge adds none
    registry_get()  # a process's first request loads the configuration file
    tracing = tracing_active(config_current().tracing)
    if tracing is not None:
        trace_refused(
            tracing=tracing,
            traced=traced,
            path="/v1/" + endpoint.value,
            error=error,
            started_ns=time.time_ns() - int((time.perf_counter() - started) * 1e9),
        )


async def _relay(
    ctx: RequestContext,
    request: HttpRequest,
    inbound: Inbound,
    default_model: Callable[[RequestContext], str | None] | None,
    config: GatewayConfig,
    client: bool,
    raw: bytes | None = None,
) -> HttpResponse:
    """`raw`: the request's body bytes when a plan memo may stand for its checks, routing and
    cache key (a client's JSON body, nothing but the body and the caller deciding them)."""
    endpoint, caller = ctx.endpoint, ctx.caller
    # The exact tier's answer when it was looked up before the admission (an L1 entry):
    # `LOOKUP` while not.
    early: Any = LOOKUP
    early_http = None
    callbacks = None
    if config.callbacks is not None or caller.logging:
        callbacks = callbacks_plan(settings=config.callbacks, caller=caller)
    # Debugging can be on only for a key in debug mode or the master key (x-ogem-debug).
    if caller.debug_until is not None or caller.is_master:
        ctx.debug = debug_start(request, caller)
    cache_config = config.cache
    registry = registry_get()
    memo = None
    if (
        raw is not None
        and cache_config is not None
        and ctx.trace is None
        and config.guardrails is None
        and not caller.guardrails
    ):
        if len(raw) in memo_sizes:  # a body of no kept size (most misses) is not hashed
            # The same body again (a hit's): its checks, routing and cache key as they were,
            # while everything they depend on is the same (gateway/cache.py `PlanMemo`).
            memo = cache_memo_find(
                ctx,
                body=raw,
                header=request.META.get("HTTP_CACHE_CONTROL"),
                config=config,
                registry=registry,
            )
    else:
        raw = None
    try:  # refusals before the call reach the callbacks and the debug capture too
        if memo is not None:
            checked = memo.checked
            _context_fill(ctx, checked, inbound)
            candidates = ctx.candidates = memo.candidates
        else:
            checked = body_check(
                endpoint=endpoint,
                inbound=inbound,
                default_model=default_model(ctx) if default_model else None,
            )
            _context_fill(ctx, checked, inbound)
            candidates = deployments_for(
                caller=caller, model=checked.model, endpoint=endpoint, registry=registry
            )
            if (
                "mock_response" in inbound.body
                and caller.metadata.get("allow_mock_response") is True
            ):
                candidates = mock_candidates(candidates=candidates, endpoint=endpoint)
            ctx.candidates = candidates
            if config.guardrails is not None or caller.guardrails or "guardrails" in inbound.body:
                ctx.guard, body = guard_plan(ctx, settings=config.guardrails, body=inbound.body)
                if body is not inbound.body:
                    inbound = replace(inbound, body=body)
        if cache_config is not None:
            if memo is not None:
                cache_memo_plan(ctx, memo)
            else:
                cache_plan(
                    ctx,
                    config=cache_config,
                    request=request,
                    inbound=inbound,
                    include_usage=checked.include_usage,
                )
            if cache_config.semantic is not None:
                semantic_plan(ctx, settings=cache_config.semantic, body=inbound.body)
            plan = ctx.cache
            if plan is not None and plan.local is not None and ctx.trace is None:
                # An L1 entry: whether it answers is known now, and its answer built before the
                # admission (a free hit's usage event then goes with the admission script: no
                # settle of its own, gateway/governance.py). After any guardrail's plan: a hit
                # that a pre_call guardrail may still refuse is only found once admitted.
                if ctx.guard is None:
                    early = cache_found(ctx)
                    if early is not None:
                        early_http = cache_answer(ctx, early)
        if ctx.trace is None:
            admission = await governance_admit_start(ctx)
        else:
            # The admission's span: its marks (the trace's clock); trace_failed fails and ends
            # it if the admission raises.
            marks = ctx.trace.marks
            marks[ADMISSION_START] = time.perf_counter()
            admission = await governance_admit_start(ctx)
            marks[ADMITTED] = time.perf_counter()
    except BaseException as error:
        if ctx.candidates and isinstance(error, GatewayError):  # refused at admission
            ctx.status_code = error.status
            request_metrics_record(ctx)
        if ctx.debug is not None and isinstance(error, GatewayError):
            # The body is kept only when no guardrail was to mask it first.
            debug_error(ctx, error, body=inbound.body if ctx.guard is None else None)
        if callbacks is not None:  # refused before admission (a bad body, a limit)
            ctx.error = error
            await _callbacks_emit(ctx, callbacks, inbound.body)
        raise
    if admission.pending is not None or admission.rest is not None:
        ctx.admission_wait = functools.partial(admission_complete, ctx, admission)
    handed_off = False

    async def settle() -> None:
        """The settle of an answer sent before it: a stream's or a cache hit's."""
        try:
            await governance_settle(ctx, admission)
        finally:
            if ctx.settle_write is not None:  # the settle did not carry the cache's write
                cache_write_flush(ctx)
            if ctx.trace is not None:
                trace_end(ctx)
            request_metrics_record(ctx)
            if callbacks is not None:
                await _callbacks_emit(ctx, callbacks, inbound.body)

    try:
        if ctx.guard is not None:  # pre_call: before the cache, so a refused prompt is never cached
            _client_watch(request)  # a guardrail may call out
            checking = guard_input(ctx, ctx.guard, inbound.body)
            if ctx.trace is not None:
                checking = trace_stage(ctx, "ogem.guardrails", checking, phase="pre_call")
            inbound = replace(inbound, body=await checking)
        if ctx.debug is not None:
            debug_request_keep(ctx.debug, inbound.body)
        if ctx.cache is not None and ctx.cache.read:
            if ctx.trace is None:
                # `_cache_lookup` inline: a miss found in hand (the common one) awaits nothing
                # more, a coroutine less where a miss may cost only a few percent.
                if ctx.fetch_taken:  # the entry comes with the admission's decision
                    ctx.admission_wait = None
                    await admission_confirm(ctx, admission)
                plan = ctx.cache
                found = cache_found(ctx) if early is LOOKUP else early
                if found is None and plan.semantic is None:
                    hit = None
                else:
                    if found is None or (
                        found is LOOKUP
                        and (plan.semantic is not None or plan.policy.s3 is not None)
                    ):
                        _client_watch(request)  # an embedding, or an S3 read, may follow
                    hit = await _cache_answer(ctx, admission, found, early_http)
            else:
                _client_watch(request)
                hit = await trace_cache(ctx, _cache_lookup(ctx, admission))
            if hit is not None:
                if (
                    raw is not None
                    and memo is None
                    and ctx.guard is None
                    and ctx.cache_status == HIT
                ):
                    # An exact hit (L1 or Redis): the next request with this body may skip what
                    # this one worked out before its admission.
                    cache_memo_keep(
                        ctx,
                        body=raw,
                        header=request.META.get("HTTP_CACHE_CONTROL"),
                        config=config,
                        registry=registry,
                        checked=checked,
                    )
                deferred = settle_deferred.get() if client else None
                if deferred is not None and ctx.debug is None:
                    # The answer leaves first: the lean handler (gateway/asgi.py) runs its
                    # settle, metrics and callbacks once it is sent. A hit waits on no upstream
                    # whose time would hide them, so at concurrency 1 they were its latency.
                    handed_off = True
                    if ctx.trace is not None:
                        ctx.trace.handed_off = True
                    deferred.append(settle())
                return _answered(ctx, hit)

        async def attempt(deployment: Deployment) -> HttpResponse:
            ctx.deployment = deployment
            if ctx.trace is None:
                return await attempt_once(deployment)
            trace_attempt_start(ctx, deployment)
            try:
                return await attempt_once(deployment)
            except BaseException as error:
                trace_attempt_failed(ctx, error)
                raise

        async def attempt_once(deployment: Deployment) -> HttpResponse:
            adapter = adapter_get(deployment.provider)
            if adapter is None:
                raise InvalidRequestError(f"No adapter for provider {deployment.provider}.")
            body = body_for_upstream(
                body=inbound.body, provider=deployment.provider, stored=ctx.stored is not None
            )
            if not deployment.drop_params:
                return await send(adapter, deployment, body)
            while True:  # each refused parameter is dropped once: the body shrinks every turn
                try:
                    return await send(adapter, deployment, body)
                except InvalidRequestError as error:
                    name = param_droppable(error, body)
                    if name is None:
                        raise
                    body = {key: value for key, value in body.items() if key != name}

        async def send(
            adapter: ProviderAdapter, deployment: Deployment, body: dict[str, Any]
        ) -> HttpResponse:
            if ctx.stream:
                if callbacks is not None:
                    StreamText(ctx)  # the answer assembled for the sinks
                return await _open_stream(
                    ctx, adapter, body, checked, admission, settle, files=inbound.files or None
                )
            if endpoint == Endpoint.AUDIO_SPEECH:
                return await _open_binary(ctx, adapter, body, admission, settle)
            waited = time.perf_counter()
            try:
                result = await adapter.call(
                    endpoint=endpoint, deployment=deployment, body=body, files=inbound.files or None
                )
            except BaseException as error:
                upstream_call_ended(ctx, started=waited, error=error)
                raise
            upstream_call_ended(ctx, started=waited, error=None)
            if ctx.guard is not None:
                if ctx.trace is not None:  # before post_call: captured content stays masked
                    trace_answer(ctx, result, body=body)
                if isinstance(result, dict):
                    answering = guard_answer(ctx, ctx.guard, result)  # post_call: restored
                    if ctx.trace is not None:
                        answering = trace_stage(
                            ctx, "ogem.guardrails", answering, phase="post_call"
                        )
                    await answering
            response = _complete(ctx, result, admission)
            if callbacks is not None:
                ctx.callback_output = result
            if ctx.trace is not None:
                if ctx.guard is None:  # no post_call between: the answer and its end in one call
                    trace_answer(ctx, result, body=body, done=True)
                else:
                    trace_attempt_done(ctx)
            if ctx.cache is not None and isinstance(result, dict):
                # The body's one piece (`json_response`'s): `content` would join it again.
                cache_store(ctx, result, encoded=response._container[0])
            return response

        _client_watch(request)  # the upstream's wait
        run = resilience_run(ctx, candidates=candidates, attempt=attempt, body=inbound.body)
        if ctx.trace is not None:  # its span ends below, or fails at trace_failed
            ctx.trace.marks[ROUTING_START] = time.perf_counter()
        if ctx.guard is not None and ctx.guard.during_task is not None:
            response = await guard_during(ctx, ctx.guard, run)
        else:
            response = await run
        if ctx.trace is not None:
            trace_routing_end(ctx, response)
        handed_off = ctx.stream or endpoint == Endpoint.AUDIO_SPEECH
        if handed_off and ctx.trace is not None:
            ctx.trace.handed_off = True
        return _answered(ctx, response)
    except GatewayError as error:
        ctx.status_code = error.status
        ctx.error = error
        if ctx.debug is not None:
            debug_error(ctx, error, body=None)
        if isinstance(error, GuardrailBlockedError) and ctx.deployment is not None:
            usage_estimate_cancelled(ctx)  # an upstream had the prompt: never record zero
        if ctx.cache_status:  # errors say what the cache did too (never stored)
            error.headers = {**error.headers, "x-ogem-cache": ctx.cache_status}
        raise
    except asyncio.CancelledError as error:
        ctx.cancelled = True  # the client went away while we waited on the upstream
        ctx.error = error
        if ctx.deployment is not None:
            usage_estimate_cancelled(ctx)  # the upstream had the prompt: never record zero
        raise
    except BaseException as error:
        ctx.status_code = 500
        ctx.error = error
        raise
    finally:
        if ctx.guard is not None and ctx.guard.during_task is not None:
            ctx.guard.during_task.cancel()  # a request that failed before its call started
        if not handed_off:
            try:
                await governance_settle(ctx, admission)
            finally:
                if ctx.settle_write is not None:  # the settle did not carry the cache's write
                    cache_write_flush(ctx)
                request_metrics_record(ctx)
                if callbacks is not None:
                    if ctx.cost is not None:  # priced by the settle: no coroutine to await
                        callbacks_emit(ctx, callbacks, body=inbound.body, cost=ctx.cost)
                    else:
                        await _callbacks_emit(ctx, callbacks, inbound.body)


async def relay_memo_hit(
    *,
    endpoint: Endpoint,
    caller: Caller,
    memo: PlanMemo,
    request_id: str,
    started: float,
    trace_id: str,
) -> tuple[RequestContext, bytes, dict[str, str]] | None:
    """`_relay` for a client's memo'd request that its L1 entry answers, at the lean edge
    (gateway/asgi.py `memo_answer`) and without a Django request: the edge checked what `relay`
    and `_relay` check before the memo is used (no tracing, guardrails, callbacks nor debug
    capture; the caller from the key cache; the memo's body, key and header), and the same
    steps run on the same context. None, with nothing done, when the entry does not answer
    (the relay's path then counts it). Else the context, the answer's bytes and the admission's
    headers; the hit's settle, metrics included, is appended to `settle_deferred`'s list. A
    refusal raises as `_relay`'s, settled the same way."""
    ctx = RequestContext(request_id=request_id, endpoint=endpoint, caller=caller)
    ctx.started_at = started
    ctx.trace_id = trace_id
    checked = memo.checked  # `_context_fill`, its bounds the memo's
    ctx.model = checked.model
    ctx.stream = checked.stream
    ctx.end_customer = checked.end_customer
    ctx.tags = checked.tags
    ctx.max_tokens = checked.max_tokens
    (
        ctx.estimated_prompt_tokens,
        ctx.prompt_tokens_bound,
        ctx.outputs_bound,
        ctx.images_bound,
        ctx.characters_bound,
        ctx.audio_seconds_bound,
    ) = memo.bounds
    ctx.candidates = memo.candidates
    answer = cache_memo_hit(ctx, memo)
    if answer is None:
        return None
    try:
        admission = await governance_admit_start(ctx)
    except BaseException as error:
        if ctx.candidates and isinstance(error, GatewayError):  # refused at admission
            ctx.status_code = error.status
            request_metrics_record(ctx)
        raise
    if admission.pending is not None or admission.rest is not None:
        ctx.admission_wait = functools.partial(admission_complete, ctx, admission)
    handed_off = False

    async def settle() -> None:  # `_relay`'s, without a trace or callbacks
        try:
            await governance_settle(ctx, admission)
        finally:
            if ctx.settle_write is not None:
                cache_write_flush(ctx)
            request_metrics_record(ctx)

    try:
        await admission_confirm(ctx, admission)  # a hit counts against rate limits
        cache_hit_count(ctx)
        deferred = settle_deferred.get()
        if deferred is not None:
            handed_off = True
            deferred.append(settle())
        return ctx, answer, admission.headers
    except GatewayError as error:
        ctx.status_code = error.status
        ctx.error = error
        if ctx.cache_status:  # errors say what the cache did too (never stored)
            error.headers = {**error.headers, "x-ogem-cache": ctx.cache_status}
        raise
    except asyncio.CancelledError as error:
        ctx.cancelled = True
        ctx.error = error
        raise
    except BaseException as error:
        ctx.status_code = 500
        ctx.error = error
        raise
    finally:
        if not handed_off:
            await settle()


def _client_watch(request: HttpRequest) -> None:
    """From here the request may wait on more than Redis (a guardrail, a cache tier's read, an
    embedding, the upstream): the lean handler starts noticing the client leaving, which
    cancels the work (gateway/asgi.py). A hit answered from memory or Redis never gets here."""
    start = getattr(request, "ogem_watch", None)
    if start is not None:
        start()


def _answered(ctx: RequestContext, response: HttpResponse) -> HttpResponse:
    """The answer, captured first when the request is debugged (gateway/debugging.py)."""
    if ctx.debug is None:
        return response
    return debug_answer(ctx, response)  # type: ignore[return-value]


# OpenAI's optional request parameters, which drop_params may leave out when a provider (its
# adapter, or the upstream's 400) refuses one. Never what makes the request (model, messages,
# input, stream, tools) nor its output bound (max_tokens).
DROPPABLE_PARAMS = frozenset(
    {
        "n",
        "temperature",
        "top_p",
        "top_k",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "seed",
        "stop",
        "user",
        "response_format",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_effort",
        "store",
        "metadata",
        "service_tier",
        "stream_options",
        "modalities",
        "prediction",
        "audio",
        "web_search_options",
        "dimensions",
        "encoding_format",
        "best_of",
        "echo",
        "suffix",
    }
)


async def _cache_lookup(ctx: RequestContext, admission: Admission) -> HttpResponse | None:
    """The response cache's answer (exact, then semantic), once admitted; None on a miss."""
    if ctx.fetch_taken:  # the entry comes with the admission's decision
        ctx.admission_wait = None
        await admission_confirm(ctx, admission)
    return await _cache_answer(ctx, admission, cache_found(ctx))


async def _cache_answer(
    ctx: RequestContext,
    admission: Admission,
    stored: dict[str, Any] | None,
    http: HttpResponse | None = None,
) -> HttpResponse | None:
    """`_cache_lookup` once the exact tier's entry is in hand (`cache_found`'s); `http`: its
    answer (`cache_answer`'s), when built before the admission."""
    if stored is LOOKUP:
        stored = await cache_lookup(ctx)
    if stored is not None:
        if http is None:  # built while the admission's decision is on its way
            http = cache_answer(ctx, stored)
        await admission_confirm(ctx, admission)  # a hit counts against rate limits
        return cache_respond(ctx, stored, admission.headers, http=http)
    if ctx.cache.semantic is not None:
        stored = await semantic_lookup(ctx)
        if stored is not None:
            await admission_confirm(ctx, admission)
            return semantic_respond(ctx, stored, admission.headers)
    return None


def param_droppable(error: InvalidRequestError, body: dict[str, Any]) -> str | None:
    """The parameter of `body` that `error` refuses, when drop_params may leave it out."""
    name = error.param
    if name in DROPPABLE_PARAMS and name in body:
        return name
    return None


def _context_fill(ctx: RequestContext, checked: Checked, inbound: Inbound) -> None:
    ctx.model = checked.model
    ctx.stream = checked.stream
    ctx.end_customer = checked.end_customer
    ctx.tags = checked.tags
    ctx.max_tokens = checked.max_tokens
    if checked.store:
        ctx.stored = stored_request_build(body=inbound.body)
    # A cheap typical estimate (about 4 bytes a token) for TPM reservations before the call.
    ctx.estimated_prompt_tokens = inbound.size // 4
    request_bounds_fill(ctx, inbound=inbound)


def _complete(
    ctx: RequestContext, result: dict[str, Any] | bytes, admission: Admission
) -> HttpResponse:
    if isinstance(result, bytes):
        response = HttpResponse(result, content_type="text/plain; charset=utf-8")
    else:
        usage = result.get("usage")
        if isinstance(usage, dict):
            usage_fill(ctx.usage, usage, provider=ctx.deployment.provider if ctx.deployment else "")
        generated = completion_bytes(result.get("choices"))
        if usage_estimate_unreported(ctx, generated_bytes=generated):
            result["usage"] = usage_block(ctx.usage)
        if ctx.endpoint in (
            Endpoint.IMAGES_GENERATIONS,
            Endpoint.IMAGES_EDITS,
            Endpoint.IMAGES_VARIATIONS,
        ):
            ctx.usage.images = len(result.get("data") or [])
        if ctx.stored is not None:
            stored_completion_keep(ctx, result)
        response = json_response(result)
    headers_apply(response, ctx, admission.headers)
    if ctx.usage.estimated:
        response["x-ogem-usage-estimated"] = "true"
    return response


async def _callbacks_emit(ctx: RequestContext, plan: CallbackPlan, body: dict[str, Any]) -> None:
    """The request's callback event, once it is settled (gateway/callbacks/emit.py): its body is
    the one sent upstream (after the guardrails' masking)."""
    cost = ctx.cost  # the settle's price, most often: no request_cost coroutine
    if cost is None:
        try:
            cost = await request_cost(ctx)
        except Exception:
            cost = Decimal(0)
    callbacks_emit(ctx, plan, body=body, cost=cost)


def _stream_observers(ctx: RequestContext) -> tuple[ChunkObserver, ...]:
    """Who assembles the stream as it passes: a stored completion, the response cache."""
    text = ctx.callback_output
    if ctx.stored is None and ctx.cache is None and ctx.trace is None and text is None:
        return ()
    observers: list[ChunkObserver] = []
    if ctx.trace is not None:
        observers.append(TraceObserver(ctx.trace))
    if text is not None:
        observers.append(text)
    if ctx.stored is not None:
        observers.append(StreamKeeper(ctx))
    if ctx.cache is not None:
        observers.append(cache_recorder(ctx))
    return tuple(observers)


async def _open_stream(
    ctx: RequestContext,
    adapter: ProviderAdapter,
    body: dict[str, Any],
    checked: Checked,
    admission: Admission,
    settle: Callable[[], Any],
    *,
    files: list[UploadFile] | None = None,
) -> HttpResponse:
    assert ctx.deployment is not None
    typed = ctx.endpoint in EVENT_STREAM_ENDPOINTS  # images and transcripts: typed events
    opener = adapter.stream_events if typed else adapter.stream
    upstream = opener(endpoint=ctx.endpoint, deployment=ctx.deployment, body=body, files=files)
    stall = config_current().router.stream_timeout
    if stall:
        upstream = stream_bounded(upstream, seconds=stall, provider=ctx.deployment.provider)
    if ctx.guard is not None:
        upstream = guard_chunks(ctx, ctx.guard, upstream)
    since = ctx.upstream_seconds
    waited = time.perf_counter()
    try:
        # Read the first chunk before answering, so upstream errors get a real status code.
        first = await anext(upstream, None)
    except BaseException as error:
        upstream_call_ended(ctx, started=waited, error=error)
        await upstream.aclose()  # type: ignore[attr-defined]
        raise
    arrived = time.perf_counter()
    ctx.upstream_seconds += arrived - waited
    ctx.first_token_seconds = arrived - ctx.started_at
    if ctx.trace is not None:
        trace_first_token(ctx, body=body)
    if typed:
        relayed = event_relay(
            ctx=ctx, first=first, upstream=upstream, settle=settle, upstream_since=since
        )
    else:
        relayed = sse_relay(
            ctx=ctx,
            first=first,
            upstream=upstream,
            usage_of=adapter.stream_usage,
            include_usage=checked.include_usage,
            settle=settle,
            upstream_since=since,
            observers=_stream_observers(ctx),
        )
    response = StreamingHttpResponse(relayed, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    headers_apply(response, ctx, admission.headers)
    return response


async def _open_binary(
    ctx: RequestContext,
    adapter: ProviderAdapter,
    body: dict[str, Any],
    admission: Admission,
    settle: Callable[[], Any],
) -> HttpResponse:
    assert ctx.deployment is not None
    since = ctx.upstream_seconds
    waited = time.perf_counter()
    try:
        binary = await adapter.open_binary(
            endpoint=ctx.endpoint, deployment=ctx.deployment, body=body
        )
    except BaseException as error:
        upstream_call_ended(ctx, started=waited, error=error)
        raise
    ctx.upstream_seconds += time.perf_counter() - waited
    ctx.usage.characters = speech_characters(body)
    response = StreamingHttpResponse(
        binary_relay(ctx=ctx, upstream=binary.chunks, settle=settle, upstream_since=since),
        content_type=binary.content_type,
    )
    headers_apply(response, ctx, admission.headers)
    return response
