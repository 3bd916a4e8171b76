"""DeepSeek (https://api.deepseek.com/v1): OpenAI-compatible, bearer auth.

``deepseek-reasoner`` answers 400 to ``logprobs`` and ``top_logprobs`` (dropped for it) and
returns ``reasoning_content`` next to ``content`` (passed through). DeepSeek caches prompt
prefixes by itself and reports ``usage.prompt_cache_hit_tokens`` and
``prompt_cache_miss_tokens``; the hits are copied to OpenAI's
``usage.prompt_tokens_details.cached_tokens`` (in answers and in a stream's usage chunk), so
clients and accounting see them, and DeepSeek's own fields are kept.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
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
    mapped = {**usage, "prompt_tokens_details": details}
    if "prompt_tokens" not in usage and "prompt_cache_miss_tokens" in usage:
        # The prompt is the hits and the misses.
        mapped["prompt_tokens"] = (
            usage["prompt_cache_hit_tokens"] + usage["prompt_cache_miss_tokens"]
        )
    return mapped


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

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        async for chunk in super().translate_stream(
            endpoint=endpoint, deployment=deployment, chunks=chunks
        ):
            if isinstance(chunk.get("usage"), dict):
                chunk["usage"] = deepseek_usage(chunk["usage"])
            yield chunk
