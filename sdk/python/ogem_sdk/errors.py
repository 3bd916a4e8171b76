"""Errors the client raises: each carries the API's own message."""

from __future__ import annotations

from typing import Any


class OgemError(Exception):
    """Base of every error this package raises."""


class OgemConnectionError(OgemError):
    """Ogem could not be reached (after the retries)."""


class OgemAPIError(OgemError):
    """Ogem answered with an error status; `message` is the API's own explanation."""

    def __init__(self, *, status: int, body: Any, request_id: str | None) -> None:
        self.status = status
        self.body = body
        self.request_id = request_id
        self.message = error_message(body) or f"HTTP {status}"
        super().__init__(f"{status}: {self.message}")


def error_message(body: Any) -> str:
    """The message of the management API's error shapes: DRF's `{"detail": ...}`, field errors
    `{"field": ["..."]}`, and OpenAI's `{"error": {"message": ...}}`."""
    if isinstance(body, str):
        return body.strip()
    if not isinstance(body, dict):
        return ""
    error = body.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    detail = body.get("detail")
    if isinstance(detail, str):
        return detail
    parts = []
    for field, problems in body.items():
        texts = problems if isinstance(problems, list) else [problems]
        parts.append(f"{field}: {' '.join(str(text) for text in texts)}")
    return "; ".join(parts)
