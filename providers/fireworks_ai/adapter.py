"""Fireworks AI (https://api.fireworks.ai/inference/v1): OpenAI-compatible, bearer auth.

Fireworks names models ``accounts/<account>/models/<model>``; a short id such as
``llama-v3p1-8b-instruct`` is expanded to ``accounts/fireworks/models/llama-v3p1-8b-instruct``
(what LiteLLM's ``fireworks_ai/`` prefix does), so LiteLLM configurations work unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import Deployment, Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter


def fireworks_model_id(model: str) -> str:
    return model if model.startswith("accounts/") else f"accounts/fireworks/models/{model}"


class FireworksAIAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "fireworks_ai"
    default_api_base: ClassVar[str] = "https://api.fireworks.ai/inference/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset(
        {"store", "metadata", "service_tier", "prediction", "web_search_options"}
    )

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        prepared["model"] = fireworks_model_id(deployment.upstream_model)
        return prepared
