"""The Vertex AI adapter: Gemini models (chat, embeddings) and Claude models on Vertex.

Deployment settings: `region` (LiteLLM's `vertex_location`; default `us-central1`; `global`
uses the global endpoint), `api_base` (replaces `https://{region}-aiplatform.googleapis.com`),
`api_version` (default `v1`), and `params`: `vertex_project` (default: the service account's
`project_id`, else `GOOGLE_CLOUD_PROJECT`), `vertex_credentials` (Google credentials JSON as a
dict, a JSON string or a file path; where credentials come from otherwise: auth.py),
`vertex_publisher` (default
`anthropic` for `claude-*` models, else `google`), `anthropic_version` (default
`vertex-2023-10-16`), and Gemini's `safety_settings`, `max_tokens`, `task_type`,
`extra_headers`, `allow_private_urls`, `max_media_bytes`. A deployment `api_key` is used as a
ready OAuth access token when no credentials JSON is configured.

Models live at `/{version}/projects/{project}/locations/{region}/publishers/{publisher}/models/
{model}` (a model that is a resource name, a tuned model's `projects/.../endpoints/{id}`, at
`/{version}/{model}`): Gemini's `:generateContent`, `:streamGenerateContent?alt=sse` and `:predict`
(embeddings); Claude's `:rawPredict` and `:streamRawPredict`, whose body is Anthropic's Messages
request without `model` and with `anthropic_version`, translated by `providers/anthropic`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from providers.adapter import UploadFile, UpstreamRequest, UpstreamResponse
from providers.anthropic.stream import StreamTranslator as ClaudeStreamTranslator
from providers.anthropic.translate import chat_request_to_messages, messages_response_to_chat
from providers.base import Deployment, Endpoint
from providers.errors import InvalidRequestError
from providers.gemini import translate
from providers.gemini.adapter import GeminiAdapter
from providers.http import UpstreamHTTPResponse
from providers.sse import sse_data
from providers.vertex_ai.auth import deployment_credentials, deployment_token

PROVIDER = "vertex_ai"
DEFAULT_REGION = "us-central1"
DEFAULT_API_VERSION = "v1"
ANTHROPIC_VERSION = "vertex-2023-10-16"


def _publisher(deployment: Deployment) -> str:
    explicit = deployment.params.get("vertex_publisher")
    if explicit:
        return str(explicit)
    return "anthropic" if deployment.upstream_model.startswith("claude") else "google"


def _region(deployment: Deployment) -> str:
    return deployment.region or str(deployment.params.get("vertex_location") or DEFAULT_REGION)


class VertexAIAdapter(GeminiAdapter):
    name: ClassVar[str] = PROVIDER
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.EMBEDDINGS, Endpoint.REALTIME}
    )
    kept_media_prefixes: ClassVar[tuple[str, ...]] = ()

    def _project(self, deployment: Deployment) -> str:
        project = deployment.params.get("vertex_project")
        if not project:
            credential = deployment_credentials(deployment)
            project = credential.project_id if credential else ""
        if not project:
            raise InvalidRequestError(
                f"The Vertex AI deployment {deployment.id} names no vertex_project."
            )
        return str(project)

    def _base(self, deployment: Deployment) -> str:
        region = _region(deployment)
        host = (
            "aiplatform.googleapis.com"
            if region == "global"
            else (f"{region}-aiplatform.googleapis.com")
        )
        return (deployment.api_base or f"https://{host}").rstrip("/")

    def _model_path(self, deployment: Deployment) -> str:
        if deployment.upstream_model.startswith("projects/"):
            # A resource name: a tuned model's endpoint (`projects/.../endpoints/{id}`).
            return deployment.upstream_model
        return (
            f"projects/{self._project(deployment)}/locations/{_region(deployment)}/publishers/"
            f"{_publisher(deployment)}/models/{deployment.upstream_model}"
        )

    def resource_url(self, deployment: Deployment, name: str) -> str:
        """The REST URL of a resource name (`projects/...`) at the deployment's endpoint."""
        version = deployment.api_version or DEFAULT_API_VERSION
        return f"{self._base(deployment)}/{version}/{name}"

    def location_name(self, deployment: Deployment) -> str:
        """`projects/{project}/locations/{region}`: the parent of the deployment's resources."""
        return f"projects/{self._project(deployment)}/locations/{_region(deployment)}"

    def model_url(self, deployment: Deployment, method: str) -> str:
        return f"{self.resource_url(deployment, self._model_path(deployment))}:{method}"

    def realtime_target(self, deployment: Deployment) -> tuple[str, dict[str, str]]:
        """Vertex AI's Live API WebSocket (`LlmBidiService/BidiGenerateContent`); the bearer
        token is added by `realtime_address`."""
        version = deployment.api_version or DEFAULT_API_VERSION
        scheme, sep, rest = self._base(deployment).partition("://")
        ws_scheme = {"https": "wss", "http": "ws"}.get(scheme.lower(), scheme)
        service = f"google.cloud.aiplatform.{version}.LlmBidiService"
        url = f"{ws_scheme}{sep}{rest}/ws/{service}/BidiGenerateContent"
        return url, self.headers(deployment)

    async def realtime_address(self, deployment: Deployment) -> tuple[str, dict[str, str]]:
        url, headers = self.realtime_target(deployment)
        return url, {**headers, "Authorization": f"Bearer {await self._token(deployment)}"}

    def realtime_live_model(self, deployment: Deployment) -> str | None:
        return self._model_path(deployment)

    def headers(self, deployment: Deployment) -> dict[str, str]:
        # The Authorization header is added in `_open`, where the token can be awaited.
        return dict(deployment.params.get("extra_headers") or {})

    def embeddings_request(
        self, *, deployment: Deployment, body: dict[str, Any]
    ) -> UpstreamRequest:
        task_type = body.get("task_type") or deployment.params.get("task_type")
        instances = []
        for text in translate.embedding_inputs(body):
            instance: dict[str, Any] = {"content": text}
            if task_type:
                instance["task_type"] = task_type
            instances.append(instance)
        payload: dict[str, Any] = {"instances": instances}
        if body.get("dimensions") is not None:
            payload["parameters"] = {"outputDimensionality": body["dimensions"]}
        return UpstreamRequest(
            method="POST",
            url=self.model_url(deployment, "predict"),
            headers=self.headers(deployment),
            json=payload,
        )

    def embeddings_response(
        self, *, deployment: Deployment, body: dict[str, Any], answer: dict[str, Any]
    ) -> dict[str, Any]:
        vectors: list[list[float]] = []
        tokens = 0
        for prediction in answer.get("predictions") or []:
            embeddings = prediction.get("embeddings") or {}
            vectors.append(embeddings.get("values") or [])
            tokens += int((embeddings.get("statistics") or {}).get("token_count") or 0)
        return translate.embeddings_to_openai(
            vectors, body=body, model=deployment.upstream_model, prompt_tokens=tokens
        )

    def build_request(
        self,
        *,
        endpoint: Endpoint,
        deployment: Deployment,
        body: dict[str, Any],
        stream: bool,
        files: list[UploadFile] | None = None,
    ) -> UpstreamRequest:
        if _publisher(deployment) != "anthropic":
            return super().build_request(
                endpoint=endpoint, deployment=deployment, body=body, stream=stream, files=files
            )
        if endpoint is not Endpoint.CHAT:
            raise InvalidRequestError(f"Claude on Vertex AI does not serve /v1/{endpoint.value}.")
        payload = chat_request_to_messages(body=body, deployment=deployment, stream=stream)
        payload.pop("model", None)
        payload["anthropic_version"] = str(
            deployment.params.get("anthropic_version") or ANTHROPIC_VERSION
        )
        return UpstreamRequest(
            method="POST",
            url=self.model_url(deployment, "streamRawPredict" if stream else "rawPredict"),
            headers=self.headers(deployment),
            json=payload,
        )

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any]:
        if _publisher(deployment) == "anthropic":
            return messages_response_to_chat(self._json(response.body))
        return super().parse_response(endpoint=endpoint, deployment=deployment, response=response)

    def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        if _publisher(deployment) == "anthropic":
            return self._claude_stream(deployment=deployment, chunks=chunks)
        return super().translate_stream(endpoint=endpoint, deployment=deployment, chunks=chunks)

    async def _claude_stream(
        self, *, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        """Anthropic's events through Anthropic's translator; an `error` event is reported as
        this provider's, like the errors of non-streamed calls."""
        translator = ClaudeStreamTranslator(secrets=deployment.secrets, provider=self.name)
        async for data in sse_data(chunks):
            for chunk in translator.feed(self._json(data.encode())):
                yield chunk
            if translator.finished:
                return
        raise translator.premature_end_error()

    async def _open(
        self, request: UpstreamRequest, *, deployment: Deployment
    ) -> UpstreamHTTPResponse:
        request.headers["Authorization"] = f"Bearer {await self._token(deployment)}"
        return await super()._open(request, deployment=deployment)

    async def _token(self, deployment: Deployment) -> str:
        return await deployment_token(deployment)
