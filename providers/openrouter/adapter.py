"""OpenRouter (https://openrouter.ai/api/v1): OpenAI-compatible, bearer auth.

App attribution: deployment params ``site_url`` (or ``http_referer``) and ``app_name`` (or
``x_title``) become the ``HTTP-Referer`` and ``X-Title`` headers OpenRouter ranks apps by.
OpenRouter's routing fields in params (``models``, ``route``, ``provider``, ``transforms``) are
added to the body unless the client sent its own. Responses keep OpenRouter's ``provider`` and
``usage.cost`` fields.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.base import Deployment, Endpoint
from providers.openai_compatible.adapter import OpenAICompatibleAdapter

_ROUTING_PARAMS = ("models", "route", "provider", "transforms")


class OpenRouterAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "openrouter"
    default_api_base: ClassVar[str] = "https://openrouter.ai/api/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )

    def auth_headers(self, deployment: Deployment) -> dict[str, str]:
        headers = super().auth_headers(deployment)
        params = deployment.params
        if referer := params.get("site_url") or params.get("http_referer"):
            headers["HTTP-Referer"] = str(referer)
        if title := params.get("app_name") or params.get("x_title"):
            headers["X-Title"] = str(title)
        return headers

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        for name in _ROUTING_PARAMS:
            if name in deployment.params and name not in prepared:
                prepared[name] = deployment.params[name]
        return prepared
