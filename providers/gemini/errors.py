"""What Google's API errors say (`{"error": {"code", "message", "status", "details"}}`), for the
one map of providers/errors.py. Shared by `gemini` and `vertex_ai`.

The status name (`RESOURCE_EXHAUSTED`, ...) labels the message; a 429's retry delay comes from
the `google.rpc.RetryInfo` detail when there is one (else the `Retry-After` header). An error
inside a 200 stream carries its HTTP status as `code`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from providers.errors import (
    GatewayError,
    UpstreamFailure,
    error_body_parse,
    error_object_parse,
    header_get,
    upstream_error,
)

RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def google_error_parse(body: bytes, headers: Mapping[str, str] | None = None) -> UpstreamFailure:
    """A Google error answer → what it says, RetryInfo's delay (or the header) its retry_after."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return error_body_parse(body, headers)
    retry = _retry_delay(parsed) or header_get(headers, "retry-after")
    return error_object_parse(parsed, retry_after=retry)


def stream_error(*, provider: str, error: dict[str, Any], secrets: Iterable[str]) -> GatewayError:
    """An `{"error": {...}}` event sent inside a 200 stream → Ogem's error."""
    try:
        status = int(error.get("code") or 500)
    except (TypeError, ValueError):
        status = 500
    failure = error_object_parse({"error": error}, retry_after=_retry_delay({"error": error}))
    return upstream_error(provider=provider, status=status, failure=failure, secrets=secrets)


def _retry_delay(parsed: Any) -> str | None:
    """RetryInfo's `retryDelay` ("7s", "1.5s") in whole seconds, at least 1."""
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]  # some Google front ends answer a list holding one error object
    error = parsed.get("error") if isinstance(parsed, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO:
            delay = str(detail.get("retryDelay") or "").removesuffix("s")
            try:
                return str(max(1, math.ceil(float(delay))))
            except ValueError:
                return None
    return None
