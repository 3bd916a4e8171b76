"""The errors providers raise, in OpenAI's error shape, and the one map from an upstream's HTTP
error to them (`upstream_error`).

An adapter only says how to read its upstream's error body (`error_body_parse` reads every JSON
shape Ogem's providers use; Google and Bedrock add what their bodies or headers carry); the status
decides the error, the same for every provider. The gateway's own errors (authentication,
permission, budget) are in `gateway/errors.py`, which re-exports these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson


class GatewayError(Exception):
    """An error Ogem answers with: its status, and OpenAI's `{"error": {...}}` body (`to_body`)."""

    status = 500
    type = "api_error"
    code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})

    def to_body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class InvalidRequestError(GatewayError):
    status = 400
    type = "invalid_request_error"


class RequestTooLargeError(InvalidRequestError):
    status = 413
    code = "request_too_large"


class NotFoundError(GatewayError):
    status = 404
    type = "not_found_error"


class RateLimitError(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(GatewayError):
    """An upstream provider failed. The message names the provider and never carries a secret."""

    status = 502
    type = "upstream_error"

    def __init__(self, message: str, *, provider: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.provider = provider


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamUnavailableError(UpstreamError):
    status = 503
    code = "upstream_unavailable"


# -- an upstream's error answer → one of the above ----------------------------------------------


@dataclass(frozen=True, slots=True)
class UpstreamFailure:
    """What an upstream's error answer says, as its provider's parser read it."""

    message: str = ""
    label: str = ""  # the upstream's own name for it: an error type, a status name, an exception
    code: str | None = None  # a string code (OpenAI's `context_length_exceeded`, ...)
    param: str | None = None
    retry_after: str | None = None


# The upstream statuses that are not simply "the client's request" (other 4xx → 400) or "the
# upstream failed" (other 5xx and 499 → 502 `upstream_error`): (error class, code; None keeps
# the class's own). The deployment's credentials or account refused (401/402/403) is Ogem's
# problem, not the client's, so a 502 the router fails over; 529 is Anthropic's "overloaded".
_STATUS_ERRORS: dict[int, tuple[type[GatewayError], str | None]] = {
    401: (UpstreamError, "upstream_rejected_credentials"),
    402: (UpstreamError, "upstream_payment_required"),
    403: (UpstreamError, "upstream_rejected_credentials"),
    404: (NotFoundError, None),
    408: (UpstreamTimeoutError, None),
    413: (RequestTooLargeError, None),
    424: (UpstreamError, "upstream_dependency_failed"),
    429: (RateLimitError, None),
    503: (UpstreamUnavailableError, None),
    504: (UpstreamTimeoutError, None),
    529: (UpstreamUnavailableError, None),
}
# OpenAI answers an exhausted account's credit with 429 `insufficient_quota`: not a rate limit
# that waiting lifts, but the payment problem a 402 is.
_QUOTA_CODES = frozenset({"insufficient_quota"})

REDACTED = "[redacted]"
# Key shapes of the upstreams Ogem talks to, caught even when partly masked (OpenAI's 401 echoes
# `sk-proj-****...abcd`), so that no message shows any part of a key.
_KEY_SHAPES = re.compile(
    r"\b(?:sk|rk|xai)-[\w\-*]{8,}|\bAIza[\w\-]{20,}|\b(?:r8|hf|gsk|jina)_\w{10,}"
    r"|\bBearer\s+[\w\-.~+/*]+=*",
    re.IGNORECASE,
)


def secret_redact(text: str, secrets: Iterable[str]) -> str:
    """`text` without the deployment's secrets (`Deployment.secrets`) nor anything shaped like an
    API key: the one redaction rule for what upstreams say."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(REDACTED, text)


def upstream_error(
    *, provider: str, status: int, failure: UpstreamFailure, secrets: Iterable[str] = ()
) -> GatewayError:
    """The error Ogem answers for an upstream's error `status` (see `_STATUS_ERRORS`), its
    message `<provider> returned <status> [<label>]: <upstream message>` with secrets redacted.
    The client's own mistakes (400, 404) keep the upstream's `param` and `code`."""
    message = secret_redact(failure.message, secrets)
    label = f"{status} {secret_redact(failure.label, secrets)}".rstrip()
    text = f"{provider} returned {label}: {message}" if message else f"{provider} returned {label}"
    if status == 429 and failure.code in _QUOTA_CODES:
        status = 402
    kind, code = _STATUS_ERRORS.get(status) or (
        (UpstreamError, "upstream_error") if status >= 499 else (InvalidRequestError, None)
    )
    if issubclass(kind, UpstreamError):
        return kind(text, provider=provider, code=code)
    if kind is RateLimitError:
        retry = failure.retry_after
        return RateLimitError(text, headers={"Retry-After": retry} if retry else None)
    if kind is RequestTooLargeError:
        return RequestTooLargeError(text, param=failure.param)
    return kind(text, param=failure.param, code=failure.code)


def error_body_parse(body: bytes, headers: Mapping[str, str] | None = None) -> UpstreamFailure:
    """An upstream's error answer → what it says. JSON bodies in any of the shapes Ogem's
    providers use (see `error_object_parse`); a plain-text body's text, cut to 500 characters
    (an HTML error page, a proxy's, says nothing the status does not)."""
    retry_after = header_get(headers, "retry-after")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", errors="replace").strip()
        message = "" if text.startswith("<") else text[:500]
        return UpstreamFailure(message=message, retry_after=retry_after)
    return error_object_parse(parsed, retry_after=retry_after)


def error_object_parse(parsed: Any, *, retry_after: str | None = None) -> UpstreamFailure:
    """A parsed error body or event: `{"error": {"message", "type" or "status", "code",
    "param"}}` (OpenAI, Anthropic, Google; Google's front ends may wrap it in a list), a list of
    `{"code", "message"}` under `errors` (Cloudflare, watsonx: the first), or a message under
    `detail` (FastAPI, RFC 7807), `error`, `err_msg`, `message` or `title`."""
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    if not isinstance(parsed, dict):
        return UpstreamFailure(message=_text(parsed), retry_after=retry_after)
    errors = parsed.get("errors")
    if (
        "error" not in parsed
        and isinstance(errors, list)
        and errors
        and isinstance(errors[0], dict)
    ):
        # `{"errors": [{"code", "message"}]}` (Cloudflare, IBM watsonx): the first one.
        first = errors[0]
        return UpstreamFailure(
            message=_text(first.get("message") or ""),
            label=str(first.get("code") or ""),
            retry_after=retry_after,
        )
    error = parsed.get("error")
    fields = error if isinstance(error, dict) else parsed
    # The upstream's name for the error, from an error object only (a top-level `type` may be an
    # RFC 7807 URI).
    label = (error.get("type") or error.get("status")) if fields is error else ""
    code, param = fields.get("code"), fields.get("param")
    message = ""
    for key in ("message", "detail", "error", "err_msg", "Message", "title"):
        if fields.get(key):
            message = _text(fields[key])
            break
    return UpstreamFailure(
        message=message,
        label=label if isinstance(label, str) else "",
        code=code if isinstance(code, str) else None,
        param=param if isinstance(param, str) else None,
        retry_after=retry_after,
    )


def header_get(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header by its lower-case name, from a case-insensitive mapping or a plain dict."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


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


def embedding_texts(body: Mapping[str, Any], *, provider: str) -> list[str]:
    """`input` as the list of strings an embedding API takes (a single string is a list of one);
    token arrays and other shapes are the request's fault (400)."""
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise InvalidRequestError(
            f"{provider} embeds strings: `input` must be a string or a list of strings.",
            param="input",
        )
    return texts
