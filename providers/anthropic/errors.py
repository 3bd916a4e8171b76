"""Anthropic's errors → Ogem's error hierarchy.

The client's own mistakes keep their status (400, 404, 413) and rate limits stay 429 with the
upstream's `retry-after`. Failures of the deployment itself are upstream errors: a rejected
Ogem credential (401/403) or a billing problem is 502 (the client's key is fine), an internal
error 502, overload (529) 503, a timeout 504. The upstream's message is kept, prefixed with the
provider's name; the deployment's key is scrubbed from it in case an upstream ever echoes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

PROVIDER = "anthropic"

# Anthropic's error types and the HTTP status each comes with (used for mid-stream errors).
ERROR_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def error_body_parse(body: bytes) -> tuple[str, str]:
    """An Anthropic error body → (error type, message); empty strings when it is not one."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "", ""
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return "", ""
    return str(error.get("type") or ""), str(error.get("message") or "")


def anthropic_error_to_gateway(
    *,
    status: int,
    error_type: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    secret: str | None = None,
) -> GatewayError:
    if secret and message:
        message = message.replace(secret, "[redacted]")
    label = f"{status} {error_type}".strip()
    text = f"{PROVIDER} returned {label}: {message}" if message else f"{PROVIDER} returned {label}"
    upstream: dict[str, Any] = {"provider": PROVIDER}
    if status == 429:
        retry_after = (headers or {}).get("retry-after")
        return RateLimitError(text, headers={"Retry-After": retry_after} if retry_after else None)
    if status == 413:
        return RequestTooLargeError(text)
    if status == 404:
        return NotFoundError(text)
    if status in (401, 402, 403):
        return UpstreamError(text, code="upstream_rejected_credentials", **upstream)
    if status in (408, 504):
        return UpstreamTimeoutError(text, **upstream)
    if status in (503, 529):
        return UpstreamUnavailableError(text, **upstream)
    if status >= 500:
        return UpstreamError(text, code="upstream_error", **upstream)
    return InvalidRequestError(text)


def response_error_to_gateway(
    *, status: int, headers: Mapping[str, str], body: bytes, secret: str | None
) -> GatewayError:
    error_type, message = error_body_parse(body)
    lowered = {k.lower(): v for k, v in headers.items()}
    return anthropic_error_to_gateway(
        status=status, error_type=error_type, message=message, headers=lowered, secret=secret
    )


def stream_error_to_gateway(*, error: dict[str, Any], secret: str | None) -> GatewayError:
    """An `error` SSE event's `error` object (sent after a 200) → a GatewayError."""
    error_type = str(error.get("type") or "api_error")
    return anthropic_error_to_gateway(
        status=ERROR_TYPE_STATUS.get(error_type, 500),
        error_type=error_type,
        message=str(error.get("message") or ""),
        secret=secret,
    )
