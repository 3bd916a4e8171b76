"""Requests, retries and pages, shared by the sync and the async client.

Retries: a 429 or a 503 is retried whatever the method (Ogem refused it before doing anything),
other 5xx answers and lost connections only for methods that are safe to repeat (GET, PUT,
DELETE, ...), never a POST that may have created something. The wait is the answer's
`Retry-After` when it has one (seconds or an HTTP date, capped), else an exponential backoff with
jitter.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ogem_sdk.errors import OgemAPIError

RETRY_ALWAYS = frozenset({429, 503})
RETRY_IF_IDEMPOTENT = frozenset({500, 502, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
BACKOFF_BASE = 0.5  # seconds: 0.5, 1, 2, ... with up to 25% jitter
PAGE_SIZE = 100


@dataclass(frozen=True)
class Call:
    """One API call: the method, the path under the base URL, query and JSON body."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 2
    max_wait: float = 60.0  # seconds: a longer Retry-After is cut to this

    def wait_for(
        self, *, call: Call, attempt: int, response: httpx.Response | None
    ) -> float | None:
        """Seconds to wait before the next attempt, or None when the call is not retried."""
        if attempt >= self.max_retries:
            return None
        if response is None:  # the connection failed
            if call.method not in IDEMPOTENT:
                return None
        elif response.status_code not in RETRY_ALWAYS:
            if response.status_code not in RETRY_IF_IDEMPOTENT or call.method not in IDEMPOTENT:
                return None
        if response is not None:
            told = retry_after_seconds(response.headers.get("retry-after"))
            if told is not None:
                return min(told, self.max_wait)
        backoff = BACKOFF_BASE * 2**attempt
        return min(backoff * (1 + random.random() / 4), self.max_wait)


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - time.time(), 0.0)


def clean_params(params: dict[str, Any]) -> dict[str, Any]:
    """Query parameters without the unset ones; booleans as the API spells them."""
    cleaned: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        cleaned[name] = str(value).lower() if isinstance(value, bool) else value
    return cleaned


def answer_read(response: httpx.Response) -> Any:
    """The decoded body of a success, or OgemAPIError carrying the API's message."""
    body: Any
    if response.status_code == 204 or not response.content:
        body = None
    elif "json" in response.headers.get("content-type", ""):
        try:
            body = response.json()
        except ValueError:
            body = response.text
    else:
        body = response.text
    if response.status_code >= 400:
        raise OgemAPIError(
            status=response.status_code,
            body=body,
            request_id=response.headers.get("x-request-id"),
        )
    return body


def page_next(call: Call, page: Any, *, offset: int) -> tuple[list[Any], Call | None]:
    """The rows of a limit/offset page and the call for the next page (None after the last)."""
    if not isinstance(page, dict) or "results" not in page:
        rows = page if isinstance(page, list) else []
        return rows, None
    rows = list(page["results"])
    if not page.get("next") or not rows:
        return rows, None
    following = offset + len(rows)
    return rows, Call(call.method, call.path, {**call.params, "offset": following})
