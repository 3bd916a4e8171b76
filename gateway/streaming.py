"""Relaying streams to the client: SSE chunk by chunk, binary bodies as they arrive.

Each relay is an async generator that owns the upstream stream and the settlement: its `finally`
closes the upstream (so a client that goes away cancels the upstream request) and settles
governance exactly once, at the usage the upstream reported or, for what it did not report before
the client left, at Ogem's estimate (docs/governance.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import orjson

from gateway.context import RequestContext, Usage
from gateway.errors import GatewayError, UpstreamTimeoutError
from ogem_site.metrics import upstream_error_record, upstream_observe, usage_impossible_record
from providers.base import Endpoint
from providers.events import event_is_final

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
ESTIMATED_MARK = b": x-ogem-usage-estimated=true\n\n"
Settle = Callable[[], Awaitable[None]]


class ChunkObserver(Protocol):
    """Sees every chunk of a stream before it is relayed (with the usage it reported, if any),
    and hears when the stream ended whole: stored completions (gateway/stored.py) and the response
    cache (gateway/cache.py) assemble the answer this way."""

    def add(self, chunk: dict[str, Any], usage: dict[str, Any] | None) -> None: ...

    def finish(self) -> None: ...


# More tokens than any request can carry: a report above it is an upstream's bug, not usage.
MAX_REPORTED_TOKENS = 10**9
# Endpoints charged by tokens: when the upstream reports none, Ogem estimates them.
_ESTIMATED = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})


def _reported_count(value: Any, *, provider: str, field: str) -> int | None:
    """A token count from an upstream's usage block; None when absent or impossible (negative,
    not an integer, absurdly large), which is counted, logged and then estimated like absent."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_REPORTED_TOKENS:
        return value

    usage_impossible_record(provider=provider, field=field)
    logger.warning("%s reported an impossible %s (%.40r): ignored", provider, field, value)
    return None


def usage_fill(usage: Usage, reported: dict[str, Any], *, provider: str) -> None:
    """Copy an OpenAI usage block into ctx.usage (prompt/completion/total and the details).

    The one door upstream usage enters accounting by: impossible counts never reach it."""

    def count(*names: str) -> int | None:
        for name in names:
            value = _reported_count(reported.get(name), provider=provider, field=name)
            if value is not None:
                return value
        return None

    if reported.get("type") == "duration":  # a transcription billed by the second (whisper-1)
        seconds = reported.get("seconds")
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            usage.audio_seconds = float(seconds)
        return
    prompt = count("prompt_tokens", "input_tokens")
    if prompt is not None:
        usage.prompt_tokens = prompt
        usage.prompt_reported = True
    completion = count("completion_tokens", "output_tokens")
    if completion is not None:
        usage.completion_tokens = completion
        usage.completion_reported = True
    total = count("total_tokens")
    usage.total_tokens = total or usage.prompt_tokens + usage.completion_tokens
    # Chat's detail blocks, or the Responses API's (input_/output_tokens_details).
    prompt_details = reported.get("prompt_tokens_details") or reported.get("input_tokens_details")
    prompt_details = prompt_details or {}
    if isinstance(prompt_details, dict):
        usage.cached_tokens = _detail(prompt_details, "cached_tokens", provider)
        usage.cache_creation_tokens = _detail(prompt_details, "cache_creation_tokens", provider)
        usage.cache_creation_1h_tokens = _detail(
            prompt_details, "cache_creation_1h_tokens", provider
        )
    completion_details = reported.get("completion_tokens_details") or reported.get(
        "output_tokens_details"
    )
    completion_details = completion_details or {}
    if isinstance(completion_details, dict):
        usage.reasoning_tokens = _detail(completion_details, "reasoning_tokens", provider)


def _detail(details: dict[str, Any], field: str, provider: str) -> int:
    return _reported_count(details.get(field), provider=provider, field=field) or 0


def _text_bytes(text: Any) -> int:
    if not isinstance(text, str):
        return 0
    return len(text) if text.isascii() else len(text.encode())


def completion_bytes(choices: Any) -> int:
    """UTF-8 bytes of the text generated in an answer's or a stream chunk's choices: content,
    reasoning, tool calls' names and arguments, text completions' text."""
    total = 0
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        total += _text_bytes(choice.get("text"))
        message = choice.get("delta") or choice.get("message")
        if not isinstance(message, dict):
            continue
        total += _text_bytes(message.get("content")) + _text_bytes(message.get("reasoning_content"))
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                total += _text_bytes(function.get("name")) + _text_bytes(function.get("arguments"))
    return total


def usage_estimate_unreported(ctx: RequestContext, *, generated_bytes: int) -> bool:
    """Fill the token counts a finished request's upstream did not report (or reported
    impossibly), so it is never free: the prompt at Ogem's admission estimate
    (`ctx.estimated_prompt_tokens`), the completion at ceil(UTF-8 bytes / 4) of the text
    generated (docs/governance.md). Marks the usage estimated; returns whether it did."""
    usage = ctx.usage
    if ctx.endpoint not in _ESTIMATED:
        return False
    estimated = False
    if not usage.prompt_reported:
        usage.prompt_tokens = ctx.estimated_prompt_tokens
        estimated = True
    if ctx.endpoint != Endpoint.EMBEDDINGS and not usage.completion_reported:
        usage.completion_tokens = -(-generated_bytes // 4)
        estimated = True
    if estimated:
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        usage.estimated = True
    return estimated


def usage_block(usage: Usage) -> dict[str, int]:
    """The OpenAI usage block of what Ogem estimated."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def usage_estimate_cancelled(ctx: RequestContext, *, relayed_chunks: int = 0) -> None:
    """Fill what the upstream did not report before the client left, so a cancelled request is
    never recorded at zero: the prompt at Ogem's admission estimate (about 4 bytes a token) and
    the completion at one token per chunk relayed (the OpenAI family streams about a token a
    chunk; the first chunk carries only the role). Reported counts are kept as they are."""
    usage = ctx.usage
    if not usage.prompt_tokens:
        usage.prompt_tokens = ctx.estimated_prompt_tokens
        usage.estimated = True
    if not usage.completion_tokens:
        usage.completion_tokens = max(relayed_chunks - 1, 0)
        usage.estimated = usage.estimated or relayed_chunks > 1
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens


def upstream_outcome(error: BaseException | None) -> str:
    """The `outcome` label of ogem_upstream_duration_seconds for a call that ended so."""
    if error is None:
        return "ok"
    if isinstance(error, UpstreamTimeoutError | TimeoutError):
        return "timeout"
    if isinstance(error, Exception):
        return "error"
    return "cancelled"  # the client left, or the request's time budget cut the call off


def upstream_record(ctx: RequestContext, *, seconds: float, error: BaseException | None) -> None:
    """One upstream call ended (a response read, a stream finished or failed, `error` None when
    it succeeded) after `seconds` of waiting on it: ogem_upstream_duration_seconds."""
    provider = ctx.deployment.provider if ctx.deployment is not None else ""
    outcome = upstream_outcome(error)
    upstream_observe(provider=provider, outcome=outcome, seconds=seconds)
    if outcome == "error":
        status = getattr(error, "status", None)
        upstream_error_record(provider=provider, status=str(status) if status else "error")
    elif outcome == "timeout":
        upstream_error_record(provider=provider, status="timeout")


def upstream_call_ended(
    ctx: RequestContext, *, started: float, error: BaseException | None
) -> None:
    """A call that began at `started` (perf_counter) ended: its wait counts against the
    overhead, and is recorded as one upstream call."""
    seconds = time.perf_counter() - started
    ctx.upstream_seconds += seconds
    upstream_record(ctx, seconds=seconds, error=error)


def _event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def stream_bounded(
    chunks: AsyncIterator[dict[str, Any]], *, seconds: float, provider: str
) -> AsyncIterator[dict[str, Any]]:
    """`chunks`, each (the first included) within `seconds` of the one before: LiteLLM's
    router_settings.stream_timeout. A stall is an upstream timeout (504): before the first chunk
    the router may retry or fail over; after it, the stream ends with an error event."""
    try:
        while True:
            try:
                async with asyncio.timeout(seconds):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise UpstreamTimeoutError(
                    f"The upstream provider {provider} sent nothing for {seconds:g} s "
                    "(stream_timeout).",
                    provider=provider,
                ) from None
            yield chunk
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


async def sse_relay(
    *,
    ctx: RequestContext,
    first: dict[str, Any] | None,
    upstream: AsyncIterator[dict[str, Any]],
    usage_of: Callable[[dict[str, Any]], dict[str, Any] | None],
    include_usage: bool,
    settle: Settle,
    upstream_since: float = 0.0,
    observers: tuple[ChunkObserver, ...] = (),
) -> AsyncIterator[bytes]:
    """`first` was already read (to answer upstream errors with a status); the rest follows.
    `upstream_since` is `ctx.upstream_seconds` before the stream opened: the stream's wait on
    its upstream, recorded when it ends, is what it added since. `observers` see each chunk, and
    the end of a stream that finished.

    A client that leaves cancels the upstream (it stops generating, so it stops billing) and the
    request is recorded at the last usage the upstream reported, else at Ogem's estimate (see
    `usage_estimate_cancelled`).
    """
    chunk = first
    last = first
    relayed = 0  # chunks with choices sent to the client: about a token each in this family
    generated = 0  # bytes of text relayed, for the estimate when the upstream reports no usage
    provider = ctx.deployment.provider if ctx.deployment is not None else ""
    failure: BaseException | None = None
    try:
        while chunk is not None:
            last = chunk
            usage = usage_of(chunk)
            if usage:
                usage_fill(ctx.usage, usage, provider=provider)
            for observer in observers:
                observer.add(chunk, usage)
            choices = chunk.get("choices")
            if choices:
                generated += completion_bytes(choices)
            usage_only = bool(usage) and not choices
            if usage_only and not (ctx.usage.prompt_reported and ctx.usage.completion_reported):
                pass  # impossible or partial counts: the estimate's usage chunk replaces them
            elif include_usage or not usage_only:
                yield _event(chunk)
                relayed += 1
            waited = time.perf_counter()
            chunk = await anext(upstream, None)
            ctx.upstream_seconds += time.perf_counter() - waited
        estimated = usage_estimate_unreported(ctx, generated_bytes=generated)
        if estimated:
            if include_usage and last is not None:
                yield _event(_usage_chunk(last, ctx.usage))
            yield ESTIMATED_MARK
        for observer in observers:
            observer.finish()
        yield f": x-ogem-overhead-ms={_overhead(ctx)}\n\n".encode()
        yield DONE
    except GatewayError as error:
        failure = error
        ctx.status_code = error.status
        yield _event(error.to_body())
        yield DONE
    except GeneratorExit as error:
        failure = error
        ctx.cancelled = True
        raise
    except BaseException as error:
        failure = error
        if isinstance(error, Exception):
            ctx.status_code = 500
            logger.exception("stream failed (request %s)", ctx.request_id)
            yield _event(_internal_error())
            yield DONE
        else:  # CancelledError: the client went away while we waited on the upstream
            ctx.cancelled = True
            raise
    finally:
        upstream_record(ctx, seconds=ctx.upstream_seconds - upstream_since, error=failure)
        try:
            await upstream.aclose()  # type: ignore[attr-defined]
        finally:
            if ctx.cancelled:
                usage_estimate_cancelled(ctx, relayed_chunks=relayed)
            await settle()


def _typed_event(payload: dict[str, Any]) -> bytes:
    data = b"data: " + orjson.dumps(payload) + b"\n\n"
    kind = payload.get("type")
    if isinstance(kind, str) and kind.isprintable():
        return b"event: " + kind.encode() + b"\n" + data
    return data


async def event_relay(
    *,
    ctx: RequestContext,
    first: dict[str, Any] | None,
    upstream: AsyncIterator[dict[str, Any]],
    settle: Settle,
    upstream_since: float = 0.0,
) -> AsyncIterator[bytes]:
    """The typed events of an image or transcription stream (providers/events.py), each as
    `event: <type>` and its `data:`, as OpenAI sends them; no `[DONE]` follows. Each completed
    image counts one image, and a final event's `usage` is the request's (the last one wins);
    the rest is as `sse_relay`. A Responses stream (passed through) is billed at the usage of its
    final event's `response`."""
    event = first
    images = ctx.endpoint != Endpoint.RESPONSES
    provider = ctx.deployment.provider if ctx.deployment is not None else ""
    failure: BaseException | None = None
    try:
        while event is not None:
            if event_is_final(event):
                if images and str(event.get("type")).endswith(".completed"):
                    ctx.usage.images += 1
                usage = event.get("usage") if images else _response_usage(event)
                if isinstance(usage, dict):
                    usage_fill(ctx.usage, usage, provider=provider)
            yield _typed_event(event)
            waited = time.perf_counter()
            event = await anext(upstream, None)
            ctx.upstream_seconds += time.perf_counter() - waited
        yield f": x-ogem-overhead-ms={_overhead(ctx)}\n\n".encode()
    except GatewayError as error:
        failure = error
        ctx.status_code = error.status
        yield _event(error.to_body())
    except GeneratorExit as error:
        failure = error
        ctx.cancelled = True
        raise
    except BaseException as error:
        failure = error
        if isinstance(error, Exception):
            ctx.status_code = 500
            logger.exception("stream failed (request %s)", ctx.request_id)
            yield _event(_internal_error())
        else:
            ctx.cancelled = True
            raise
    finally:
        upstream_record(ctx, seconds=ctx.upstream_seconds - upstream_since, error=failure)
        try:
            await upstream.aclose()  # type: ignore[attr-defined]
        finally:
            await settle()


async def binary_relay(
    *,
    ctx: RequestContext,
    upstream: AsyncIterator[bytes],
    settle: Settle,
    upstream_since: float = 0.0,
) -> AsyncIterator[bytes]:
    """A binary body chunk by chunk; `upstream_since` as in `sse_relay`."""
    failure: BaseException | None = None
    try:
        while True:
            waited = time.perf_counter()
            chunk = await anext(upstream, None)
            ctx.upstream_seconds += time.perf_counter() - waited
            if chunk is None:
                return
            yield chunk
    except GeneratorExit as error:
        failure = error
        ctx.cancelled = True
        raise
    except GatewayError as error:
        failure = error
        # The status line is gone: abort the connection so the client sees a truncated body.
        ctx.status_code = error.status
        logger.warning("binary stream failed (request %s): %s", ctx.request_id, error.message)
        raise
    except BaseException as error:
        failure = error
        if isinstance(error, Exception):
            ctx.status_code = 500
            logger.exception("binary stream failed (request %s)", ctx.request_id)
        else:
            ctx.cancelled = True
        raise
    finally:
        upstream_record(ctx, seconds=ctx.upstream_seconds - upstream_since, error=failure)
        try:
            await upstream.aclose()  # type: ignore[attr-defined]
        finally:
            await settle()


def _response_usage(event: dict[str, Any]) -> Any:
    response = event.get("response")
    return response.get("usage") if isinstance(response, dict) else None


def _usage_chunk(last: dict[str, Any], usage: Usage) -> dict[str, Any]:
    """The final chunk OpenAI sends for `stream_options.include_usage`, with Ogem's estimate."""
    chunk = {name: last[name] for name in ("id", "object", "created", "model") if name in last}
    chunk["choices"] = []
    chunk["usage"] = usage_block(usage)
    return chunk


def _overhead(ctx: RequestContext) -> str:
    spent = time.perf_counter() - ctx.started_at - ctx.upstream_seconds
    return f"{max(spent, 0.0) * 1000:.2f}"


def _internal_error() -> dict[str, Any]:
    return {
        "error": {
            "message": "The server had an error while processing your request.",
            "type": "api_error",
            "param": None,
            "code": None,
        }
    }
