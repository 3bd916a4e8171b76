"""Building /v1 responses: OpenAI-shaped JSON and errors, with Ogem's headers on every one."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse
from django.http.cookie import SimpleCookie
from django.http.response import ResponseHeaders

from gateway.context import RequestContext
from gateway.errors import GatewayError

_REQUEST_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")
# A random UUID's version (4) and variant (RFC 4122) bits.
_UUID4_KEEP = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_BITS = (0x4000 << 64) | (0x8000 << 48)


def request_id_new() -> str:
    """`uuid.uuid4().hex` without a UUID object, whose checks took half the time (a hundred
    bytecodes a request)."""
    return "%032x" % (int.from_bytes(os.urandom(16)) & _UUID4_KEEP | _UUID4_BITS)


def request_id_for(request: HttpRequest) -> str:
    """The client's x-request-id when it is sane (short, plain characters), else a new one."""
    existing = getattr(request, "ogem_request_id", None)
    if existing:
        return existing
    request_id = request_id_chosen(request.META.get("HTTP_X_REQUEST_ID", ""))
    request.ogem_request_id = request_id  # type: ignore[attr-defined]
    return request_id


def request_id_chosen(sent: str) -> str:
    """The client's x-request-id `sent` when it is sane (short, plain characters), else a new
    one."""
    if sent and len(sent) <= 128 and all(c in _REQUEST_ID_OK for c in sent):
        return sent
    return request_id_new()


def overhead_ms(ctx: RequestContext) -> str:
    spent = time.perf_counter() - ctx.started_at - ctx.upstream_seconds
    return f"{max(spent, 0.0) * 1000:.2f}"


def _header_set(response: HttpResponse, name: str, value: str) -> None:
    """`response[name] = value` without Django's charset conversion when the value is plain
    printable ASCII (every header Ogem sets on a normal answer): a tenth of the header cost."""
    if type(value) is str and value.isascii() and value.isprintable():
        response.headers._store[name.lower()] = (name, value)
    else:
        response[name] = value


class PlainHeaders(dict[str, str]):
    """Headers whose names are lowercase and whose values plain printable ASCII by construction
    (the rate-limit headers, gateway/governance.py): `headers_apply` stores them unchecked."""

    __slots__ = ()


def headers_apply(response: HttpResponse, ctx: RequestContext, extra: dict[str, str]) -> None:
    store = response.headers._store
    _header_set(response, "x-request-id", ctx.request_id)
    if ctx.deployment is not None:
        _header_set(response, "x-ogem-provider", ctx.deployment.provider)
        _header_set(response, "x-ogem-deployment", ctx.deployment.id)
    if type(extra) is PlainHeaders:  # six a request with rate limits
        for name, value in extra.items():
            store[name] = (name, value)
    else:
        for name, value in extra.items():  # `_header_set` inline
            if type(value) is str and value.isascii() and value.isprintable():
                store[name.lower()] = (name, value)
            else:
                response[name] = value
    # Below, Ogem's own names and values made of digits: plain ASCII, nothing to check.
    if ctx.cache_status:  # a response cache is configured (gateway/cache.py)
        store["x-ogem-cache"] = ("x-ogem-cache", ctx.cache_status)  # one of its constants
        if ctx.cache_age is not None:
            store["x-ogem-cache-age"] = ("x-ogem-cache-age", str(int(ctx.cache_age)))
        if ctx.cache_similarity is not None:
            similarity = f"{ctx.cache_similarity:.3f}"
            store["x-ogem-cache-similarity"] = ("x-ogem-cache-similarity", similarity)
    store["x-ogem-overhead-ms"] = ("x-ogem-overhead-ms", overhead_ms(ctx))


def json_response(payload: Any, *, status: int = 200) -> HttpResponse:
    return json_bytes_response(orjson.dumps(payload), status=status)


def json_bytes_response(content: bytes, *, status: int = 200) -> HttpResponse:
    """`HttpResponse(content, status=status, content_type="application/json")`: the same object
    (tests/gateway/test_headers.py compares them), built without Django's generic steps, which
    cost a /v1 answer more than its JSON (a header lookup that raises KeyError, two charset
    conversions, the content setter's type checks)."""
    response = HttpResponse.__new__(HttpResponse)
    headers = ResponseHeaders.__new__(ResponseHeaders)
    headers._store = {"content-type": ("Content-Type", "application/json")}
    response.headers = headers
    response._charset = None
    response._resource_closers = []
    response._handler_class = None
    response.cookies = SimpleCookie()
    response.closed = False
    response.status_code = status
    response._reason_phrase = None
    response._container = [content]
    return response


def error_response(
    error: GatewayError, *, request: HttpRequest, ctx: RequestContext | None = None
) -> HttpResponse:
    response = json_response(error.to_body(), status=error.status)
    if ctx is not None:
        headers_apply(response, ctx, error.headers)
    else:
        response["x-request-id"] = request_id_for(request)
        for name, value in error.headers.items():
            response[name] = value
        started = getattr(request, "ogem_started", None)
        if started is not None:
            response["x-ogem-overhead-ms"] = f"{(time.perf_counter() - started) * 1000:.2f}"
    return response
