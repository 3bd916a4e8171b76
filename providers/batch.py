"""Providers' own batch APIs, for batches Ogem passes through (docs/batches.md).

Each provider that has one (OpenAI, Azure OpenAI, Anthropic Message Batches, Gemini batch mode)
implements `ProviderBatches` in its package (`providers/<name>/batch.py`): send the requests,
read the batch's state, read its results translated to OpenAI's shapes, cancel it. Every round
trip goes through the adapter's `exchange`, so transport failures and error statuses are judged
as for live requests. Like the adapters, these know nothing of tenants or of Ogem's batches: a
request is an OpenAI-shaped body under a key of the caller's choosing, and a result comes back
under that key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from providers.adapter import ProviderAdapter
from providers.base import Deployment, Endpoint


@dataclass(frozen=True, slots=True)
class BatchRequest:
    key: str  # the request's id upstream (Ogem uses "line-<n>"): its result comes back under it
    body: dict[str, Any]  # the OpenAI-shaped request body


@dataclass(slots=True)
class UpstreamBatch:
    """What the provider says of a batch now."""

    # "in_progress", "cancelling", or "ended"
    status: str
    # When ended: "completed", "cancelled", "expired" or "failed".
    outcome: str = ""
    total: int = 0
    completed: int = 0
    failed: int = 0
    message: str = ""  # why it failed, when it did
    # Where the results are: the provider's file ids or URL, or the answer itself (Gemini's
    # inlined responses).
    output_ref: str = ""
    error_ref: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One request's answer, in OpenAI's shapes: a chat completion (or embedding list) with
    status 200, or OpenAI's error body with the status the provider's error means."""

    key: str
    status_code: int
    body: dict[str, Any]


# Status codes of the error types the providers name in a failed request's result.
ERROR_STATUS = {
    "invalid_request_error": 400,
    "INVALID_ARGUMENT": 400,
    "authentication_error": 401,
    "UNAUTHENTICATED": 401,
    "permission_error": 403,
    "PERMISSION_DENIED": 403,
    "not_found_error": 404,
    "NOT_FOUND": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "RESOURCE_EXHAUSTED": 429,
    "overloaded_error": 503,
    "UNAVAILABLE": 503,
}


def error_result(*, key: str, kind: str, message: str, code: str | None = None) -> BatchResult:
    """A failed request's result: OpenAI's error body, with the status its kind means."""
    status = ERROR_STATUS.get(kind, 500)
    openai_type = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "invalid_request_error",
        429: "rate_limit_error",
    }.get(status, "api_error")
    return BatchResult(
        key=key,
        status_code=status,
        body={"error": {"message": message, "type": openai_type, "param": None, "code": code}},
    )


class ProviderBatches:
    """One provider's batch API. Stateless; one instance per provider per process."""

    # The /v1 endpoints whose batches the provider's batch API takes.
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.CHAT})

    def __init__(self, adapter: ProviderAdapter) -> None:
        self.adapter = adapter

    async def submit(
        self,
        *,
        deployment: Deployment,
        endpoint: Endpoint,
        requests: list[BatchRequest],
        marker: str,
    ) -> tuple[str, str]:
        """Send the requests as one batch, marked with `marker` where the provider keeps one
        (metadata, a display name); the provider's batch id and the id of the input file it
        keeps ("" when it takes the requests inline)."""
        raise NotImplementedError

    async def find(self, *, deployment: Deployment, marker: str) -> tuple[str, str] | None:
        """The batch sent earlier with `marker` (as `submit` answers), or None: not found, or a
        provider that keeps no marker (Anthropic)."""
        return None

    async def poll(self, *, deployment: Deployment, batch_id: str) -> UpstreamBatch:
        raise NotImplementedError

    async def results(
        self, *, deployment: Deployment, endpoint: Endpoint, batch: UpstreamBatch
    ) -> list[BatchResult]:
        """The answers of an ended batch (requests not run, cancelled or expired, are absent)."""
        raise NotImplementedError

    async def cancel(self, *, deployment: Deployment, batch_id: str) -> None:
        raise NotImplementedError
