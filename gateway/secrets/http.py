"""The blocking HTTP client the secret managers share (secrets are read off the request path)."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from gateway.secrets.reference import SecretReference

_lock = threading.Lock()
_client: httpx.Client | None = None

_REASONS = {
    400: "the request was refused as invalid",
    401: "authentication failed",
    403: "access denied",
    404: "no such secret",
}


def http_client() -> httpx.Client:
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
        return _client


def http_json(
    ref: SecretReference, what: str, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    """(status, JSON body or None). Transport failures become a SecretManagerError naming `what`."""
    try:
        response = http_client().request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise ref.fail(f"{what} is unreachable ({type(exc).__name__})") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    return response.status_code, body


def http_failure(ref: SecretReference, what: str, status: int) -> Exception:
    """A message from the status alone: upstream bodies are not echoed, they may quote secrets."""
    reason = _REASONS.get(status, "an unexpected answer")
    return ref.fail(f"{what} answered {status} ({reason})")
