"""Perplexity's Sonar API (https://api.perplexity.ai/chat/completions, no /v1): bearer auth.

Chat only. Its answers carry ``citations`` and ``search_results`` (in the response and in stream
chunks); both are passed through untouched. Perplexity has no logit bias, log probabilities or
parallel tool calls: those fields are dropped, as are OpenAI-platform-only ones. Its own search
fields (``search_domain_filter``, ``search_recency_filter``, ``return_images``, ...) pass through.
"""

from __future__ import annotations

from typing import ClassVar

from providers.base import Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter


class PerplexityAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "perplexity"
    default_api_base: ClassVar[str] = "https://api.perplexity.ai"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.CHAT})
    rejected_params: ClassVar[frozenset[str]] = frozenset(
        {
            "logit_bias",
            "logprobs",
            "top_logprobs",
            "parallel_tool_calls",
            "service_tier",
            "store",
            "metadata",
            "prediction",
        }
    )
