"""HTTP errors of the JSON APIs without a typed error envelope (Voyage, Jina, AI21, Deepgram,
AssemblyAI, Hugging Face, Replicate) → Ogem's error hierarchy.

Their bodies carry the message as `detail` (FastAPI-style, possibly a list of validation
problems), `error` (a string or an object with `message`), `err_msg` or `message`. The client's
own mistakes keep their status (400/404/413/422 → 400), rate limits stay 429 with `Retry-After`;
a rejected Ogem credential or payment problem (401/402/403) is 502, timeouts 504, unavailability
503, other failures 502. The deployment's key is scrubbed from any echoed message.
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


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("message", "msg", "detail", "error"):
            if key in value:
                return _text(value[key])
    if isinstance(value, list):
        return "; ".join(part for part in (_text(item) for item in value) if part)
    return ""


def error_message_parse(body: bytes) -> str:
    """The human message of an upstream error body ('' when there is none)."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace").strip()[:500]
    if not isinstance(parsed, dict):
        return _text(parsed)
    for key in ("detail", "error", "err_msg", "message", "title"):
        if parsed.get(key):
            return _text(parsed[key])
    return ""


def http_error_to_gateway(
    *,
    provider: str,
    status: int,
    message: str,
    headers: Mapping[str, str] | None = None,
    secret: str | None = None,
) -> GatewayError:
    if secret and message:
        message = message.replace(secret, "[redacted]")
    text = (
        f"{provider} returned {status}: {message}" if message else f"{provider} returned {status}"
    )
    if status == 429:
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        retry_after = lowered.get("retry-after")
        return RateLimitError(text, headers={"Retry-After": retry_after} if retry_after else None)
    if status == 413:
        return RequestTooLargeError(text)
    if status == 404:
        return NotFoundError(text)
    if status in (401, 402, 403):
        return UpstreamError(text, provider=provider, code="upstream_rejected_credentials")
    if status in (408, 504):
        return UpstreamTimeoutError(text, provider=provider)
    if status == 503:
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
    return http_error_to_gateway(
        provider=provider,
        status=status,
        message=error_message_parse(body),
        headers=headers,
        secret=secret,
    )


def json_parse(raw: bytes, *, provider: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(f"{provider} answered with invalid JSON.", provider=provider) from exc
