"""One exception hierarchy for /v1, mapped to OpenAI's error shape in one place (`to_body`).

The base class and the errors providers raise live in `providers/errors.py` (providers import no
app); this module adds the gateway's own and re-exports them all, so the gateway imports every
error from here.
"""

from __future__ import annotations

from providers.errors import (
    GatewayError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    RequestTooLargeError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "GatewayError",
    "GuardrailBlockedError",
    "InvalidRequestError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestTooLargeError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
]


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDeniedError(GatewayError):
    status = 403
    type = "permission_error"


class BudgetExceededError(RateLimitError):
    code = "budget_exceeded"


class GuardrailBlockedError(InvalidRequestError):
    """A guardrail refused the request or its answer (docs/guardrails.md). The message names the
    guardrail and the category, never the text that matched. Final: no retry, no fallback."""

    code = "content_filter"
