"""What Bedrock's errors say, for the one map of providers/errors.py.

Bedrock answers errors with `{"message": ...}` and names the exception in the `x-amzn-ErrorType`
header (`ThrottlingException:http://internal.amazon.com/...`); mid-stream failures are
eventstream messages of `:message-type` `exception` (`:exception-type` `throttlingException`,
`modelStreamErrorException`, ...), whose status is the one the API reference gives the exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from providers.errors import (
    GatewayError,
    UpstreamFailure,
    error_body_parse,
    header_get,
    upstream_error,
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


def bedrock_error_parse(body: bytes, headers: Mapping[str, str] | None) -> UpstreamFailure:
    """Bedrock's message, labelled with the exception its header names."""
    exception = (header_get(headers, "x-amzn-errortype") or "").split(":", 1)[0]
    return replace(error_body_parse(body, headers), label=exception)


def stream_exception_error(
    *, exception: str, payload: bytes, secrets: Iterable[str]
) -> GatewayError:
    """An eventstream `exception` message (after the 200) → Ogem's error."""
    name = exception[:1].upper() + exception[1:]
    return upstream_error(
        provider=PROVIDER,
        status=EXCEPTION_STATUS.get(name, 500),
        failure=bedrock_error_parse(payload, {"x-amzn-errortype": name}),
        secrets=secrets,
    )
