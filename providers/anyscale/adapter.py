"""Anyscale Endpoints (https://api.endpoints.anyscale.com/v1): OpenAI-compatible, bearer auth.

Its vLLM-based server predates ``stream_options``: the option is not sent, and usage is read
from the stream's last chunk when present. OpenAI-platform-only fields are dropped.
"""

from __future__ import annotations

from typing import ClassVar

from providers.base import Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter


class AnyscaleAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "anyscale"
    default_api_base: ClassVar[str] = "https://api.endpoints.anyscale.com/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset(
        {"store", "metadata", "service_tier", "prediction", "web_search_options", "modalities"}
    )
    stream_usage_option: ClassVar[bool] = False
