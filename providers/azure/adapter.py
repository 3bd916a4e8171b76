"""Azure OpenAI: per-deployment URLs with an api-version, `api-key` or Entra ID bearer auth.

URL: ``{api_base}/openai/deployments/{deployment}/{endpoint}?api-version={version}``; the
deployment name is ``params["deployment"]`` or else the upstream model id. Auth: the deployment's
``api_key`` in the ``api-key`` header, or an Entra ID token (``params["azure_ad_token"]``) as a
bearer token.

The Responses API is Azure's v1 API, not a deployment path: ``{api_base}/openai/v1/responses``,
with the deployment name as the body's `model`.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError
from providers.openai_compatible.adapter import OpenAICompatibleAdapter

DEFAULT_API_VERSION = "2024-10-21"
# Azure's Realtime API is served under a preview api-version (2024-10-21 has none).
REALTIME_API_VERSION = "2024-10-01-preview"


class AzureOpenAIAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "azure"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(Endpoint)  # Realtime and Responses too

    def api_base(self, deployment: Deployment) -> str:
        if not deployment.api_base:
            raise InvalidRequestError(
                f"The Azure deployment {deployment.id} needs an api_base "
                "(https://<resource>.openai.azure.com)."
            )
        return deployment.api_base.rstrip("/")

    @staticmethod
    def deployment_name(deployment: Deployment) -> str:
        return str(deployment.params.get("deployment") or deployment.upstream_model)

    def url(self, *, endpoint: Endpoint, deployment: Deployment) -> str:
        if endpoint == Endpoint.RESPONSES:
            return f"{self.api_base(deployment)}/openai/v1/responses"
        name = quote(self.deployment_name(deployment), safe="")
        version = quote(deployment.api_version or DEFAULT_API_VERSION, safe="")
        return (
            f"{self.api_base(deployment)}/openai/deployments/{name}/{endpoint.value}"
            f"?api-version={version}"
        )

    def realtime_target(self, deployment: Deployment) -> tuple[str, dict[str, str]]:
        """`wss://<resource>/openai/realtime?api-version=...&deployment=<name>`, `api-key` auth."""
        base = self.api_base(deployment)
        scheme, sep, rest = base.partition("://")
        ws_scheme = {"https": "wss", "http": "ws"}.get(scheme.lower(), scheme)
        name = quote(str(deployment.params.get("deployment") or deployment.upstream_model), safe="")
        version = deployment.params.get("realtime_api_version") or deployment.api_version
        if not version or version == DEFAULT_API_VERSION:
            version = REALTIME_API_VERSION
        url = (
            f"{ws_scheme}{sep}{rest}/openai/realtime"
            f"?api-version={quote(str(version), safe='')}&deployment={name}"
        )
        return url, self.headers(deployment)

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        if endpoint == Endpoint.RESPONSES:
            prepared["model"] = self.deployment_name(deployment)
        return prepared

    def auth_headers(self, deployment: Deployment) -> dict[str, str]:
        if deployment.api_key:
            return {"api-key": deployment.api_key}
        if token := deployment.params.get("azure_ad_token"):
            return {"Authorization": f"Bearer {token}"}
        return {}
