"""CORS on /v1 for browsers calling the API with a key (OGEM_CORS_ORIGINS, docs/deploy.md).

A pure ASGI wrapper, installed only when origins are configured: without them /v1 pays nothing,
not even a function call. Keys travel in headers, never in cookies, so credentials are not
allowed and a listed origin gets exactly the headers the OpenAI and Anthropic SDKs send.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from gateway.asgi import V1_PREFIX
from gateway.errors import PermissionDeniedError
from ogem_site.asgi_types import ASGIApp, Receive, Scope, Send, asgi_respond

ANY_ORIGIN = "*"
_ALLOWED_HEADERS = frozenset(
    {
        "accept",
        "authorization",
        "api-key",
        "cache-control",  # the response cache's controls (docs/caching.md)
        "content-type",
        "idempotency-key",
        "x-api-key",
        "x-request-id",
        "traceparent",
        "tracestate",
    }
)
# openai-organization, openai-project, openai-beta; anthropic-version, anthropic-beta and
# anthropic-dangerous-direct-browser-access; the SDKs' x-stainless-* telemetry headers.
_ALLOWED_HEADER_PREFIXES = ("openai-", "anthropic-", "x-stainless-")
_ALLOW_METHODS = b"GET, POST, DELETE, OPTIONS"
_EXPOSE_HEADERS = (
    b"x-request-id, x-ogem-overhead-ms, x-ogem-provider, x-ogem-deployment, x-ogem-cache, "
    b"x-ogem-cache-age, x-ogem-debug, x-ogem-trace-id, "
    b"x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, "
    b"x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens, "
    b"retry-after"
)
_MAX_AGE = b"600"


def _allowed_request_headers(requested: bytes) -> bytes:
    names = (name.strip().lower() for name in requested.decode("latin1").split(","))
    return ", ".join(
        name
        for name in names
        if name in _ALLOWED_HEADERS or name.startswith(_ALLOWED_HEADER_PREFIXES)
    ).encode("latin1")


def cors_wrap(app: ASGIApp, *, origins: Iterable[str], prefix: str = V1_PREFIX) -> ASGIApp:
    """`app` itself when `origins` is empty; else `app` answering CORS on paths under `prefix`.

    `origins` are exact `scheme://host[:port]` values, or "*" for any origin.
    """
    listed = frozenset(origin.encode("latin1") for origin in origins)
    if not listed:
        return app
    any_origin = ANY_ORIGIN.encode() in listed
    refusal = orjson.dumps(
        PermissionDeniedError(
            "This origin may not call the API from a browser.", code="cors_origin_not_allowed"
        ).to_body()
    )

    async def cors(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(prefix):
            await app(scope, receive, send)
            return
        origin = requested_method = requested_headers = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                requested_method = value
            elif name == b"access-control-request-headers":
                requested_headers = value
        if origin is None:
            await app(scope, receive, send)
            return
        allowed = any_origin or origin in listed
        if scope["method"] == "OPTIONS" and requested_method is not None:
            if not allowed:
                headers = [(b"content-type", b"application/json"), (b"vary", b"origin")]
                await asgi_respond(send, status=403, body=refusal, headers=headers)
                return
            headers = [
                (b"access-control-allow-origin", b"*" if any_origin else origin),
                (b"access-control-allow-methods", _ALLOW_METHODS),
                (b"access-control-max-age", _MAX_AGE),
                (b"vary", b"origin"),
            ]
            if requested_headers:
                headers.append(
                    (b"access-control-allow-headers", _allowed_request_headers(requested_headers))
                )
            await asgi_respond(send, status=204, headers=headers)
            return
        if not allowed:
            await app(scope, receive, send)
            return
        added = [
            (b"access-control-allow-origin", b"*" if any_origin else origin),
            (b"access-control-expose-headers", _EXPOSE_HEADERS),
            (b"vary", b"origin"),
        ]

        async def send_with_cors(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        await app(scope, receive, send_with_cors)

    return cors
