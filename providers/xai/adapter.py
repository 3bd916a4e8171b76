"""xAI's Grok API (https://api.x.ai/v1): OpenAI-compatible, bearer auth.

The reasoning models (grok-3-mini, grok-4, grok-code) answer 400 to ``presence_penalty``,
``frequency_penalty`` and ``stop``, and only grok-3-mini takes ``reasoning_effort``: those are
dropped for them. Live-search ``citations`` and ``usage.num_sources_used`` are passed through.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import Deployment, Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter

_REASONING_PREFIXES = ("grok-3-mini", "grok-4", "grok-code")
_REASONING_REJECTS = frozenset({"presence_penalty", "frequency_penalty", "stop"})


def xai_is_reasoning_model(model: str) -> bool:
    return model.startswith(_REASONING_PREFIXES)


class XAIAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "xai"
    default_api_base: ClassVar[str] = "https://api.x.ai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.IMAGES_GENERATIONS}
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset({"store", "service_tier"})

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        model = deployment.upstream_model
        if xai_is_reasoning_model(model):
            for name in _REASONING_REJECTS:
                prepared.pop(name, None)
            if not model.startswith("grok-3-mini"):
                prepared.pop("reasoning_effort", None)
        return prepared
