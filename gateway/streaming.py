"""Relaying streams to the client: SSE chunk by chunk, binary bodies as they arrive.

Each relay is an async generator that owns the upstream stream and the settlement: its `finally`
closes the upstream (so a client that goes away cancels the upstream request) and settles
governance exactly once, at the usage the upstream reported or, for what it did not report before
the client left, at Ogem's estimate (docs/governance.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from gateway.context import RequestContext, Usage
from gateway.errors import GatewayError

logger = logging.getLogger(__name__)

DONE = b"data: [DONE]\n\n"
Settle = Callable[[], Awaitable[None]]


def usage_fill(usage: Usage, reported: dict[str, Any]) -> None:
    """Copy an OpenAI usage block into ctx.usage (prompt/completion/total and the details)."""
    prompt = int(reported.get("prompt_tokens") or reported.get("input_tokens") or 0)
    completion = int(reported.get("completion_tokens") or reported.get("output_tokens") or 0)
    usage.prompt_tokens = prompt
    usage.completion_tokens = completion
    usage.total_tokens = int(reported.get("total_tokens") or prompt + completion)
    prompt_details = reported.get("prompt_tokens_details") or {}
    if isinstance(prompt_details, dict):
        usage.cached_tokens = int(prompt_details.get("cached_tokens") or 0)
        usage.cache_creation_tokens = int(prompt_details.get("cache_creation_tokens") or 0)
    completion_details = reported.get("completion_tokens_details") or {}
    if isinstance(completion_details, dict):
        usage.reasoning_tokens = int(completion_details.get("reasoning_tokens") or 0)


def usage_estimate_cancelled(ctx: RequestContext, *, relayed_chunks: int = 0) -> None:
    """Fill what the upstream did not report before the client left, so a cancelled request is
    never recorded at zero: the prompt at Ogem's admission estimate (about 4 bytes a token) and
    the completion at one token per chunk relayed (the OpenAI family streams about a token a
    chunk; the first chunk carries only the role). Reported counts are kept as they are."""
    usage = ctx.usage
    if not usage.prompt_tokens:
        usage.prompt_tokens = ctx.estimated_prompt_tokens
    if not usage.completion_tokens:
        usage.completion_tokens = max(relayed_chunks - 1, 0)
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens


def _event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def sse_relay(
    *,
    ctx: RequestContext,
    first: dict[str, Any] | None,
    upstream: AsyncIterator[dict[str, Any]],
    usage_of: Callable[[dict[str, Any]], dict[str, Any] | None],
    include_usage: bool,
    settle: Settle,
) -> AsyncIterator[bytes]:
    """`first` was already read (to answer upstream errors with a status); the rest follows.

    A client that leaves cancels the upstream (it stops generating, so it stops billing) and the
    request is recorded at the last usage the upstream reported, else at Ogem's estimate (see
    `usage_estimate_cancelled`).
    """
    chunk = first
    relayed = 0  # chunks with choices sent to the client: about a token each in this family
    try:
        while chunk is not None:
            usage = usage_of(chunk)
            if usage:
                usage_fill(ctx.usage, usage)
            if include_usage or not (usage and not chunk.get("choices")):
                yield _event(chunk)
                relayed += 1
            waited = time.perf_counter()
            chunk = await anext(upstream, None)
            ctx.upstream_seconds += time.perf_counter() - waited
        yield f": x-ogem-overhead-ms={_overhead(ctx)}\n\n".encode()
        yield DONE
    except GatewayError as error:
        ctx.status_code = error.status
        yield _event(error.to_body())
        yield DONE
    except GeneratorExit:
        ctx.cancelled = True
        raise
    except BaseException as error:
        if isinstance(error, Exception):
            ctx.status_code = 500
            logger.exception("stream failed (request %s)", ctx.request_id)
            yield _event(_internal_error())
            yield DONE
        else:  # CancelledError: the client went away while we waited on the upstream
            ctx.cancelled = True
            raise
    finally:
        try:
            await upstream.aclose()  # type: ignore[attr-defined]
        finally:
            if ctx.cancelled:
                usage_estimate_cancelled(ctx, relayed_chunks=relayed)
            await settle()


async def binary_relay(
    *, ctx: RequestContext, upstream: AsyncIterator[bytes], settle: Settle
) -> AsyncIterator[bytes]:
    try:
        while True:
            waited = time.perf_counter()
            chunk = await anext(upstream, None)
            ctx.upstream_seconds += time.perf_counter() - waited
            if chunk is None:
                return
            yield chunk
    except GeneratorExit:
        ctx.cancelled = True
        raise
    except GatewayError as error:
        # The status line is gone: abort the connection so the client sees a truncated body.
        ctx.status_code = error.status
        logger.warning("binary stream failed (request %s): %s", ctx.request_id, error.message)
        raise
    except BaseException as error:
        if isinstance(error, Exception):
            ctx.status_code = 500
            logger.exception("binary stream failed (request %s)", ctx.request_id)
        else:
            ctx.cancelled = True
        raise
    finally:
        try:
            await upstream.aclose()  # type: ignore[attr-defined]
        finally:
            await settle()


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
