"""Together AI (https://api.together.xyz/v1): OpenAI-compatible, bearer auth.

Model ids carry their organisation (``meta-llama/Llama-3.3-70B-Instruct-Turbo``) and are sent as
written. Together's own sampling fields (``top_k``, ``repetition_penalty``, ``min_p``) pass
through; fields that exist only on OpenAI's platform are dropped.
"""

from __future__ import annotations

from typing import ClassVar

from providers.base import Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter


class TogetherAIAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "together_ai"
    default_api_base: ClassVar[str] = "https://api.together.xyz/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {
            Endpoint.CHAT,
            Endpoint.COMPLETIONS,
            Endpoint.EMBEDDINGS,
            Endpoint.IMAGES_GENERATIONS,
            Endpoint.RERANK,
            Endpoint.AUDIO_SPEECH,
        }
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset(
        {"store", "metadata", "service_tier", "prediction", "web_search_options"}
    )
