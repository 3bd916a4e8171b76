"""A self-hosted vLLM server's OpenAI-compatible API (LiteLLM's ``hosted_vllm/``).

``api_base`` is required (there is no public default); ``/v1`` is appended when it names the
server root. A key is sent only when configured (vLLM's ``--api-key``). vLLM's own sampling and
guided-decoding fields (``top_k``, ``min_p``, ``repetition_penalty``, ``guided_json``, ...) pass
through.
"""

from __future__ import annotations

from typing import ClassVar

from providers.base import Deployment, Endpoint
from providers.ollama.adapter import api_base_with_v1
from providers.openai_compatible.adapter import OpenAICompatibleAdapter


class HostedVLLMAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "hosted_vllm"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {
            Endpoint.CHAT,
            Endpoint.COMPLETIONS,
            Endpoint.EMBEDDINGS,
            Endpoint.RERANK,
            Endpoint.AUDIO_TRANSCRIPTIONS,
            Endpoint.AUDIO_TRANSLATIONS,
        }
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset({"store", "metadata", "service_tier"})

    def api_base(self, deployment: Deployment) -> str:
        return api_base_with_v1(super().api_base(deployment))
