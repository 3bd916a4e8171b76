"""Anthropic's mid-stream `error` events → Ogem's errors.

Error answers (an HTTP status with `{"type": "error", "error": {"type", "message"}}`) go through
the one map of providers/errors.py like every provider's. An `error` event arrives after a 200,
so its status is the one Anthropic documents for its type.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from providers.errors import GatewayError, error_object_parse, upstream_error

PROVIDER = "anthropic"

# Anthropic's error types and the HTTP status each comes with.
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


def stream_error(
    *, error: dict[str, Any], secrets: Iterable[str], provider: str = PROVIDER
) -> GatewayError:
    """An `error` event's `error` object → Ogem's error (`provider`: Claude on Vertex AI too)."""
    failure = error_object_parse({"error": error})
    return upstream_error(
        provider=provider,
        status=ERROR_TYPE_STATUS.get(failure.label or "api_error", 500),
        failure=failure,
        secrets=secrets,
    )
