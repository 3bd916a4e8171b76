"""Mistral's La Plateforme (https://api.mistral.ai/v1): OpenAI-shaped with its own names.

Mistral rejects unknown fields (422), spells the seed ``random_seed``, has no ``user``,
``logit_bias``, ``logprobs``, ``stream_options`` (it reports usage in the last chunk anyway) and
calls ``tool_choice: "required"`` ``"any"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import Deployment, Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter


class MistralAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "mistral"
    default_api_base: ClassVar[str] = "https://api.mistral.ai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.MODERATIONS}
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset(
        {
            "user",
            "logit_bias",
            "logprobs",
            "top_logprobs",
            "store",
            "metadata",
            "service_tier",
            "modalities",
            "audio",
        }
    )
    stream_usage_option: ClassVar[bool] = False

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        if "seed" in prepared:
            prepared.setdefault("random_seed", prepared.pop("seed"))
        if "max_completion_tokens" in prepared:
            prepared.setdefault("max_tokens", prepared.pop("max_completion_tokens"))
        if prepared.get("tool_choice") == "required":
            prepared["tool_choice"] = "any"
        return prepared
