"""LM Studio's local server (http://localhost:1234/v1): OpenAI-compatible, no key needed.

LM Studio's structured output takes ``response_format`` of type ``json_schema`` only; OpenAI's
JSON mode (``{"type": "json_object"}``) is sent as a schema that accepts any JSON object.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import Deployment, Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter

JSON_OBJECT_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "json_object", "schema": {"type": "object"}},
}


class LMStudioAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "lm_studio"
    default_api_base: ClassVar[str] = "http://localhost:1234/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )
    rejected_params: ClassVar[frozenset[str]] = frozenset({"store", "metadata", "service_tier"})

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        response_format = prepared.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_object":
            prepared["response_format"] = JSON_OBJECT_SCHEMA
        return prepared
