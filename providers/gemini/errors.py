"""Google's API errors (`{"error": {"code", "message", "status", "details"}}`) → Ogem's errors.

Shared by `gemini` and `vertex_ai`. The client's own mistakes keep their status (400, 404, 413);
429 `RESOURCE_EXHAUSTED` stays 429 with `Retry-After` from the `google.rpc.RetryInfo` detail (or
the header). A refused deployment credential (401/403) is 502, an internal error 502,
`UNAVAILABLE` 503, `DEADLINE_EXCEEDED` 504. The upstream's message is kept, prefixed with the
provider's name and scrubbed of the deployment's secret.
"""

from __future__ import annotations

import math
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

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def google_error_parse(body: bytes | dict[str, Any]) -> tuple[str, str, str | None]:
    """A Google error body → (status name, message, retry delay in seconds or None)."""
    if isinstance(body, dict):
        parsed: Any = body
    else:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return "", "", None
    # Some Google front ends answer a list holding one error object.
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return "", "", None
    retry: str | None = None
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO:
            delay = str(detail.get("retryDelay") or "").removesuffix("s")
            try:
                retry = str(max(1, math.ceil(float(delay))))
            except ValueError:
                retry = None
    return str(error.get("status") or ""), str(error.get("message") or ""), retry


def google_error_to_gateway(
    *,
    provider: str,
    status: int,
    error_status: str,
    message: str,
    retry_after: str | None = None,
    secret: str | None = None,
) -> GatewayError:
    if secret and message:
        message = message.replace(secret, "[redacted]")
    label = f"{status} {error_status}".strip()
    text = f"{provider} returned {label}: {message}" if message else f"{provider} returned {label}"
    if status == 429:
        return RateLimitError(text, headers={"Retry-After": retry_after} if retry_after else None)
    if status == 413:
        return RequestTooLargeError(text)
    if status == 404:
        return NotFoundError(text)
    if status in (401, 403):
        return UpstreamError(text, provider=provider, code="upstream_rejected_credentials")
    if status in (408, 504):
        return UpstreamTimeoutError(text, provider=provider)
    if status in (503, 529):  # 529: Anthropic's "overloaded", for Claude on Vertex AI
        return UpstreamUnavailableError(text, provider=provider)
    if status >= 500:
        return UpstreamError(text, provider=provider, code="upstream_error")
    return InvalidRequestError(text)


def response_error_to_gateway(
    *,
    provider: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    secret: str | None,
) -> GatewayError:
    error_status, message, retry = google_error_parse(body)
    lowered = {k.lower(): v for k, v in headers.items()}
    return google_error_to_gateway(
        provider=provider,
        status=status,
        error_status=error_status,
        message=message,
        retry_after=retry or lowered.get("retry-after"),
        secret=secret,
    )


def stream_error_to_gateway(
    *, provider: str, error: dict[str, Any], secret: str | None
) -> GatewayError:
    """An `{"error": {...}}` event sent inside a 200 stream → a GatewayError."""
    error_status, message, retry = google_error_parse({"error": error})
    try:
        status = int(error.get("code") or 500)
    except (TypeError, ValueError):
        status = 500
    return google_error_to_gateway(
        provider=provider,
        status=status,
        error_status=error_status,
        message=message,
        retry_after=retry,
        secret=secret,
    )
