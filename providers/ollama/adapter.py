"""Ollama's OpenAI-compatible API (http://localhost:11434/v1).

No key is needed (one configured is sent as a bearer token, for Ollama behind an authenticating
proxy or ollama.com). LiteLLM configurations point ``api_base`` at the server root
(``http://localhost:11434``) because LiteLLM's ollama provider speaks Ollama's native API; ``/v1``
is appended when missing. Ollama does not support ``tool_choice``, ``logit_bias``, ``user`` or
``n`` (dropped); since a model offered tools may call them, ``tool_choice: "none"`` is honoured
by not sending the tools.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import Deployment, Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter


def api_base_with_v1(base: str) -> str:
    """Self-hosted servers serve OpenAI's API under /v1; accept the server root too."""
    base = base.rstrip("/")
    return base if base.endswith("/v1") else f"{base}/v1"


class OllamaAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "ollama"
    default_api_base: ClassVar[str] = "http://localhost:11434/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset(
        {"tool_choice", "logit_bias", "user", "n", "store", "metadata", "service_tier"}
    )

    def api_base(self, deployment: Deployment) -> str:
        return api_base_with_v1(super().api_base(deployment))

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        if body.get("tool_choice") == "none":
            prepared.pop("tools", None)
        return prepared
