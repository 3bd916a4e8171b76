"""Per-endpoint rate limits of a key: `endpoint_limits`, e.g. `{"images/generations": {"rpm": 5},
"chat/completions": {"rpm": 100, "tpm": 20000}}`.

Each endpoint is named as its path after `/v1/` (the gateway's `providers.base.Endpoint` values,
which keys may not import: tests/api/test_endpoint_limits.py checks the two lists agree). The
gateway counts them on /v1 beside the key's own rpm/tpm (gateway/governance.py).
"""

from __future__ import annotations

from typing import Any

ENDPOINTS = (
    "chat/completions",
    "completions",
    "embeddings",
    "images/generations",
    "images/edits",
    "images/variations",
    "audio/transcriptions",
    "audio/translations",
    "audio/speech",
    "moderations",
    "rerank",
    "realtime",
    "responses",
)
METRICS = ("rpm", "tpm")
_MAX = 2**31 - 1


def endpoint_limits_problem(value: Any) -> str | None:
    """Why a value is not valid `endpoint_limits`, or None."""
    if not isinstance(value, dict):
        return 'Give an object such as {"images/generations": {"rpm": 5}}.'
    for endpoint, limits in value.items():
        if endpoint not in ENDPOINTS:
            return f"No endpoint is named `{endpoint}`: use one of {', '.join(ENDPOINTS)}."
        if not isinstance(limits, dict) or not limits:
            return f'`{endpoint}`: give an object such as {{"rpm": 5, "tpm": 10000}}.'
        for metric, limit in limits.items():
            if metric not in METRICS:
                return f"`{endpoint}`: `{metric}` is not a limit (rpm or tpm)."
            if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= _MAX:
                return f"`{endpoint}.{metric}`: give a whole number from 0."
    return None
