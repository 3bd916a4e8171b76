"""oobabooga's Text Generation WebUI (http://127.0.0.1:5000/v1), registered as ``oobabooga``
(LiteLLM's prefix; ``text_generation_webui/`` is accepted as an alias in configurations).

It serves whatever model is loaded. Its generation fields (``mode``, ``character``,
``instruction_template``, ``preset``, ...) may be set per deployment in params and are added to
the body unless the client sent them. It does not understand ``stream_options``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import Deployment, Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter

_GENERATION_PARAMS = ("mode", "character", "instruction_template", "preset")


class TextGenerationWebUIAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "oobabooga"
    default_api_base: ClassVar[str] = "http://127.0.0.1:5000/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset({"store", "metadata", "service_tier"})
    stream_usage_option: ClassVar[bool] = False

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        for name in _GENERATION_PARAMS:
            if name in deployment.params and name not in prepared:
                prepared[name] = deployment.params[name]
        return prepared
