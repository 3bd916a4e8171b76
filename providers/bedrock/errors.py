"""Bedrock's errors → Ogem's error hierarchy.

Bedrock answers errors with `{"message": ...}` and names the exception in the
`x-amzn-ErrorType` header (`ThrottlingException:http://internal.amazon.com/...`); mid-stream
failures are eventstream messages of `:message-type` `exception` (`:exception-type`
`throttlingException`, `modelStreamErrorException`, ...). The client's mistakes keep their
status, throttling is 429, a rejected AWS credential or missing model access is 502 (the client's
key is fine), model timeouts 504, unavailability 503. The upstream's message is kept.
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

PROVIDER = "bedrock"

# Exception names (as in the API reference) and the status each comes with.
EXCEPTION_STATUS: dict[str, int] = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "UnrecognizedClientException": 403,
    "InvalidSignatureException": 403,
    "ExpiredTokenException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ServiceQuotaExceededException": 400,
    "ModelErrorException": 424,
    "ModelNotReadyException": 429,
    "ThrottlingException": 429,
    "InternalServerException": 500,
    "ModelStreamErrorException": 424,
    "ServiceUnavailableException": 503,
}


def error_body_message(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(parsed, dict):
        return ""
    return str(parsed.get("message") or parsed.get("Message") or "")


def bedrock_error_to_gateway(
    *, status: int, exception: str, message: str, retry_after: str | None = None
) -> GatewayError:
    label = f"{status} {exception}".strip()
    text = f"{PROVIDER} returned {label}: {message}" if message else f"{PROVIDER} returned {label}"
    if status == 429:
        return RateLimitError(text, headers={"Retry-After": retry_after} if retry_after else None)
    if status == 413:
        return RequestTooLargeError(text)
    if status == 404:
        return NotFoundError(text)
    if status in (401, 403):
        return UpstreamError(text, provider=PROVIDER, code="upstream_rejected_credentials")
    if status in (408, 504):
        return UpstreamTimeoutError(text, provider=PROVIDER)
    if status == 503:
        return UpstreamUnavailableError(text, provider=PROVIDER)
    if status >= 500 or status == 424:
        return UpstreamError(text, provider=PROVIDER, code="upstream_error")
    return InvalidRequestError(text)


def response_error_to_gateway(
    *, status: int, headers: Mapping[str, str], body: bytes
) -> GatewayError:
    lowered = {k.lower(): v for k, v in headers.items()}
    exception = lowered.get("x-amzn-errortype", "").split(":", 1)[0]
    return bedrock_error_to_gateway(
        status=status,
        exception=exception,
        message=error_body_message(body),
        retry_after=lowered.get("retry-after"),
    )


def stream_exception_to_gateway(*, exception: str, payload: bytes) -> GatewayError:
    """An eventstream `exception` message (after the 200) → a GatewayError."""
    name = exception[:1].upper() + exception[1:]
    return bedrock_error_to_gateway(
        status=EXCEPTION_STATUS.get(name, 500), exception=name, message=error_body_message(payload)
    )
