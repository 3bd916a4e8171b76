"""A key's debug mode: its metadata's `debug_until`, an ISO 8601 time (docs/debugging.md).

Until then the gateway captures the key's requests and answers for admins to read. Only those
who administer the key write its metadata (keys/permissions.py), so only they switch it on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any


def debug_until_parse(value: Any) -> float | None:
    """The unix time debug mode lasts until; None when unset or unreadable (off)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        until = datetime.fromisoformat(value)
    except ValueError:
        return None
    if until.tzinfo is None:
        return None
    return until.timestamp()


def debug_until_problem(value: Any) -> str | None:
    """Why `debug_until` cannot be stored, or None."""
    if value is None:
        return None
    if debug_until_parse(value) is None:
        return "debug_until must be an ISO 8601 time with its offset, e.g. 2026-12-06T18:00:00Z."
    return None
