"""Cohere's errors (`{"message": ...}` with an HTTP status) → Ogem's error hierarchy.

422 (unprocessable) and 400 are the client's; 429 keeps `Retry-After`; 401/402/403 mean the
deployment's key was refused (502: the client's key is fine); 499 (cancelled) and 5xx are upstream
failures, 503 unavailability, 504 a timeout. The upstream's message is kept, the key scrubbed.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from gateway.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    RequestTooLargeError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

PROVIDER = "cohere"


def error_message(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    return str(parsed.get("message") or "") if isinstance(parsed, dict) else ""


def cohere_error_to_gateway(
    *, status: int, message: str, retry_after: str | None = None, secret: str | None = None
) -> GatewayError:
    if secret and message:
        message = message.replace(secret, "[redacted]")
    text = (
        f"{PROVIDER} returned {status}: {message}" if message else f"{PROVIDER} returned {status}"
    )
    if status == 429:
        return RateLimitError(text, headers={"Retry-After": retry_after} if retry_after else None)
    if status == 413:
        return RequestTooLargeError(text)
    if status == 404:
        return NotFoundError(text)
    if status in (401, 402, 403):
        return UpstreamError(text, provider=PROVIDER, code="upstream_rejected_credentials")
    if status in (408, 504):
        return UpstreamTimeoutError(text, provider=PROVIDER)
    if status == 503:
        return UpstreamUnavailableError(text, provider=PROVIDER)
    if status >= 499:
        return UpstreamError(text, provider=PROVIDER, code="upstream_error")
    return InvalidRequestError(text)


def response_error_to_gateway(
    *, status: int, headers: Mapping[str, str], body: bytes, secret: str | None
) -> GatewayError:
    lowered = {k.lower(): v for k, v in headers.items()}
    return cohere_error_to_gateway(
        status=status,
        message=error_message(body),
        retry_after=lowered.get("retry-after"),
        secret=secret,
    )
