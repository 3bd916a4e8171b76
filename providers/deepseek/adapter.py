"""DeepSeek (https://api.deepseek.com/v1): OpenAI-compatible, bearer auth.

``deepseek-reasoner`` answers 400 to ``logprobs`` and ``top_logprobs`` (dropped for it) and
returns ``reasoning_content`` next to ``content`` (passed through). DeepSeek reports cache hits as
``usage.prompt_cache_hit_tokens``; they are copied to OpenAI's
``usage.prompt_tokens_details.cached_tokens`` so accounting sees them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.adapter import UpstreamResponse
from providers.base import Deployment, Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter

_REASONER_REJECTS = frozenset({"logprobs", "top_logprobs"})


def deepseek_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """OpenAI's cached-token field filled from DeepSeek's, when DeepSeek sent one."""
    if not isinstance(usage, dict) or "prompt_cache_hit_tokens" not in usage:
        return usage
    details = dict(usage.get("prompt_tokens_details") or {})
    details.setdefault("cached_tokens", usage["prompt_cache_hit_tokens"])
    return {**usage, "prompt_tokens_details": details}


class DeepSeekAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "deepseek"
    default_api_base: ClassVar[str] = "https://api.deepseek.com/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})
    rejected_params: ClassVar[frozenset[str]] = frozenset(
        {"store", "metadata", "service_tier", "prediction", "web_search_options"}
    )

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        if deployment.upstream_model.startswith("deepseek-reasoner"):
            for name in _REASONER_REJECTS:
                prepared.pop(name, None)
        return prepared

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any] | bytes:
        parsed = super().parse_response(endpoint=endpoint, deployment=deployment, response=response)
        if isinstance(parsed, dict) and "usage" in parsed:
            parsed["usage"] = deepseek_usage(parsed["usage"])
        return parsed

    def stream_usage(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        return deepseek_usage(super().stream_usage(chunk))
