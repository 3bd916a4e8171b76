"""OpenAI itself: bearer auth, optional organization and project headers. The Responses API is
passed through, its stored responses' routes too (`response_route`)."""

from __future__ import annotations

from typing import ClassVar

from providers.base import Deployment, Endpoint
from providers.events import EVENT_STREAM_ENDPOINTS
from providers.openai_compatible.adapter import OpenAICompatibleAdapter


class OpenAIAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "openai"
    default_api_base: ClassVar[str] = "https://api.openai.com/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(Endpoint)  # Realtime and Responses too
    event_stream_endpoints: ClassVar[frozenset[Endpoint]] = EVENT_STREAM_ENDPOINTS

    def auth_headers(self, deployment: Deployment) -> dict[str, str]:
        headers = super().auth_headers(deployment)
        if organization := deployment.params.get("organization"):
            headers["OpenAI-Organization"] = str(organization)
        if project := deployment.params.get("project"):
            headers["OpenAI-Project"] = str(project)
        return headers
