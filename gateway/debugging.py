"""Request debugging (docs/debugging.md): the request as sent upstream and the answer as
returned, kept for a while for admins to read in admin.

A request is captured when its key is in debug mode (metadata `debug_until`, set by whoever
administers the key) or when the proxy admin (the master key) sends `x-ogem-debug: true`; the
header of anyone else is ignored. Off, it costs one attribute check on the Caller.

What is kept: the body after the guardrails' pre-call masking, the answer's body as the client
got it (a stream's bytes as relayed), a few harmless request headers, each body at most
`OGEM_DEBUG_MAX_BYTES`; secrets are redacted (`sk-...` keys, bearer tokens, fields named like
credentials) and never the Authorization headers. The row is written after the answer, by a task
of the event loop in a worker thread, and deleted `OGEM_DEBUG_RETENTION_HOURS` later.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from gateway.context import Caller, RequestContext
from gateway.errors import GatewayError

logger = logging.getLogger(__name__)

HEADER = "x-ogem-debug"
CAPTURED = "captured"
_ON = frozenset({"true", "1", "on", "yes"})
# Request headers worth seeing that never carry a credential.
_KEPT_HEADERS = (
    "content-type",
    "content-length",
    "user-agent",
    "accept",
    "x-request-id",
    "openai-beta",
    "anthropic-version",
    "anthropic-beta",
)
_SECRET_FIELD = re.compile(r"(api[_-]?key|secret|password|token|authorization|credential)", re.I)
_SECRET_TEXT = re.compile(r"(sk-|Bearer\s+)[A-Za-z0-9._~+/=\-]{8,}")
REDACTED = "[redacted]"

_pending: set[asyncio.Task[None]] = set()


@dataclass(slots=True)
class DebugCapture:
    reason: str  # "key" or "header"
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: str = ""
    truncated: bool = False


def debug_start(request: HttpRequest, caller: Caller) -> DebugCapture | None:
    """A capture when this request is to be captured, else None (the caller checked that the
    key has a debug mode or is the master key: the only callers this can be on for)."""
    if caller.debug_until is not None and caller.debug_until > time.time():
        reason = "key"
    elif caller.is_master and request.headers.get(HEADER, "").strip().lower() in _ON:
        reason = "header"
    else:
        return None
    headers = {name: request.headers[name] for name in _KEPT_HEADERS if name in request.headers}
    return DebugCapture(reason=reason, request_headers=headers)


def debug_request_keep(capture: DebugCapture, body: dict[str, Any]) -> None:
    """Keep the request body (the one sent upstream: after pre-call guardrails)."""
    capture.request_body = _bounded(capture, orjson.dumps(_redacted(body)))


def _bounded(capture: DebugCapture, raw: bytes) -> str:
    limit = settings.OGEM_DEBUG_MAX_BYTES
    if len(raw) > limit:
        capture.truncated = True
        raw = raw[:limit]
    text = raw.decode("utf-8", "replace").replace("\x00", "\\u0000")  # PostgreSQL refuses NUL
    return _SECRET_TEXT.sub(lambda m: m.group(1) + REDACTED, text)


def _redacted(value: Any, depth: int = 0) -> Any:
    if depth > 32:
        return value
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(key, str) and _SECRET_FIELD.search(key) and isinstance(item, str)
            else _redacted(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redacted(item, depth + 1) for item in value]
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    if not isinstance(value, str | int | float | bool | type(None)):
        return f"<{type(value).__name__}>"  # an uploaded file of a multipart body
    return value


def debug_answer(
    ctx: RequestContext, response: HttpResponse | StreamingHttpResponse
) -> HttpResponse | StreamingHttpResponse:
    """Mark the answer as captured and keep it: a body at once, a stream once it ended."""
    capture: DebugCapture = ctx.debug
    response[HEADER] = CAPTURED
    if isinstance(response, StreamingHttpResponse):
        if response.is_async:
            response.streaming_content = _tee(ctx, capture, response.streaming_content)
        else:
            _write_later(ctx, capture, body="<a synchronous stream, not captured>")
        return response
    content_type = response.get("Content-Type", "")
    if content_type.startswith(("application/json", "text/")):
        body = _bounded(capture, response.content)
    else:
        body = f"<{len(response.content)} bytes of {content_type or 'binary'}>"
    _write_later(ctx, capture, body=body, status=response.status_code)
    return response


def debug_error(ctx: RequestContext, error: GatewayError, *, body: dict[str, Any] | None) -> None:
    """Keep a refused or failed request with its error, and say so on the error's answer.
    `body`: the request's, when it was refused before its body was kept."""
    capture: DebugCapture = ctx.debug
    if body is not None and not capture.request_body:
        debug_request_keep(capture, body)
    error.headers = {**error.headers, HEADER: CAPTURED}
    _write_later(
        ctx, capture, body=_bounded(capture, orjson.dumps(error.to_body())), status=error.status
    )


async def _tee(
    ctx: RequestContext, capture: DebugCapture, chunks: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    limit = settings.OGEM_DEBUG_MAX_BYTES
    kept = bytearray()
    try:
        async for chunk in chunks:
            if len(kept) <= limit:
                kept += chunk if isinstance(chunk, bytes) else str(chunk).encode()
            yield chunk
    finally:
        _write_later(ctx, capture, body=_bounded(capture, bytes(kept)), stream=True)


def _write_later(
    ctx: RequestContext,
    capture: DebugCapture,
    *,
    body: str,
    status: int | None = None,
    stream: bool = False,
) -> None:
    now = datetime.now(tz=UTC)
    body = _masked_again(ctx, body)
    row = {
        "request_id": ctx.request_id,
        "organization_id": ctx.caller.organization_id,
        "team_id": ctx.caller.team_id,
        "key_id": ctx.caller.key_id,
        "reason": capture.reason,
        "endpoint": ctx.endpoint.value,
        "model": ctx.model or "",
        "deployment": ctx.deployment.id if ctx.deployment is not None else "",
        "status_code": status if status is not None else (ctx.status_code or 200),
        "stream": stream or bool(ctx.stream),
        "request_headers": capture.request_headers,
        "request_body": capture.request_body,
        "response_body": body,
        "truncated": capture.truncated,
        "created_at": now,
        "expires_at": now + timedelta(hours=settings.OGEM_DEBUG_RETENTION_HOURS),
    }
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(_write(row))
    _pending.add(task)
    task.add_done_callback(_pending.discard)


def _masked_again(ctx: RequestContext, body: str) -> str:
    """The answer with the values a guardrail masked in the request put back behind their
    placeholders: the caller got them restored, the capture keeps them masked."""
    masker = getattr(ctx.guard, "masker", None)
    values = getattr(masker, "values", None)
    if not values:
        return body
    for placeholder, original in sorted(values.items(), key=lambda item: -len(item[1])):
        if not original:
            continue
        for form in {original, orjson.dumps(original).decode()[1:-1]}:
            body = body.replace(form, f"<{placeholder}>")
    return body


async def _write(row: dict[str, Any]) -> None:
    try:
        await sync_to_async(_write_sync, thread_sensitive=False)(row)
    except Exception:
        logger.exception("debug capture of request %s could not be written", row["request_id"])


def _write_sync(row: dict[str, Any]) -> None:
    from django.db import connection

    from gateway.services import debug_capture_create, debug_captures_purge

    try:
        debug_capture_create(fields=row)
        if not settings.REDIS_URL:  # no beat in the embedded default: purge here
            debug_captures_purge()
    finally:
        connection.close()


async def debug_writes_wait() -> None:
    """Wait for this process's pending capture writes (tests, shutdown)."""
    if _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)
