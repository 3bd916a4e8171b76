"""LiteLLM's pre-call context check (`router_settings.enable_pre_call_checks`): a deployment whose
declared context size (`max_input_tokens`, in `params` or LiteLLM's `model_info`) the prompt
exceeds is not tried; when no deployment of a group fits, the group fails as a context-length
error would, so `context_window_fallbacks` apply without a doomed upstream call.

The prompt is measured as its text's characters / 4, which undercounts rather than overcounts
(code and most other languages have fewer characters per token than English prose): a prompt
near a limit goes to the upstream, whose own context-length error still switches groups.
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequestError
from providers.base import Deployment

CHARS_PER_TOKEN = 4


def deployment_input_limit(deployment: Deployment) -> int | None:
    """The most prompt tokens `deployment` takes, when its configuration says."""
    params = deployment.params
    limit = params.get("max_input_tokens")
    info = params.get("model_info")
    if limit is None and isinstance(info, dict):
        limit = info.get("max_input_tokens")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        return limit
    return None


def _text_length(value: Any) -> int:
    """Characters of text in a request field: strings, and the text of content parts, tool
    definitions and tool calls (the JSON around them is not counted)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list):
        return sum(_text_length(item) for item in value)
    if isinstance(value, dict):
        return sum(
            _text_length(item)
            for key, item in value.items()
            if key not in ("role", "type", "image_url", "input_audio", "file", "cache_control")
        )
    return 0


def prompt_tokens_estimate(body: dict[str, Any]) -> int:
    length = sum(
        _text_length(body.get(field))
        for field in ("messages", "prompt", "input", "system", "tools", "functions")
    )
    return length // CHARS_PER_TOKEN


def precall_fitting(
    pool: tuple[Deployment, ...], *, tokens: int
) -> tuple[tuple[Deployment, ...], InvalidRequestError | None]:
    """The deployments of `pool` whose context size `tokens` fits (one without a declared size
    always fits), and, when none does, the context-length error the group fails with."""
    fitting = tuple(
        d for d in pool if (limit := deployment_input_limit(d)) is None or tokens <= limit
    )
    if fitting or not pool:
        return fitting, None
    largest = max(deployment_input_limit(d) or 0 for d in pool)
    return (), InvalidRequestError(
        f"This model's maximum context length is {largest} tokens. However, your messages "
        f"resulted in about {tokens} tokens (Ogem's estimate before the call).",
        param="messages",
        code="context_length_exceeded",
    )
