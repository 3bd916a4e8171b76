"""Azure OpenAI's batch API for pass-through batches: OpenAI's (providers/openai/batch.py) under
`{api_base}/openai/files` and `/openai/batches` with an `api-version`."""

from __future__ import annotations

from urllib.parse import quote

from providers.azure.adapter import DEFAULT_API_VERSION
from providers.base import Deployment, Endpoint
from providers.openai.batch import OpenAIBatches


class AzureBatches(OpenAIBatches):
    """Azure OpenAI's batch API: `{api_base}/openai/{files,batches}?api-version=...`; a line's
    `model` is the (global batch) deployment's name, its `url` the path without `/v1`."""

    def route(self, deployment: Deployment, path: str) -> str:
        version = quote(deployment.api_version or DEFAULT_API_VERSION, safe="")
        path, _, query = path.partition("?")
        query = f"&{query}" if query else ""
        return f"{self.adapter.api_base(deployment)}/openai/{path}?api-version={version}{query}"

    def line_url(self, endpoint: Endpoint) -> str:
        return f"/{endpoint.value}"

    def model(self, deployment: Deployment) -> str:
        return str(deployment.params.get("deployment") or deployment.upstream_model)
