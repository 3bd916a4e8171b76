"""Hosted upstreams that speak OpenAI's wire format, under LiteLLM's prefix names.

Each is the shared OpenAI-compatible adapter with the provider's default base URL (the one
LiteLLM uses when a deployment sets no `api_base`), the endpoints it serves and its few quirks.
Auth is a bearer token unless said otherwise. Providers with no public default (Databricks
workspaces, Azure AI resources, a LiteLLM proxy, Xinference servers) need an `api_base`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

from providers.adapter import UpstreamResponse
from providers.base import CHAT_FAMILY_ENDPOINTS, Deployment, Endpoint
from providers.errors import InvalidRequestError
from providers.openai_compatible.adapter import OpenAICompatibleAdapter

CHAT = frozenset({Endpoint.CHAT})
CHAT_AND_EMBEDDINGS = frozenset({Endpoint.CHAT, Endpoint.EMBEDDINGS})
CHAT_AND_COMPLETIONS = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})
# Fields OpenAI alone understands; hosted open-model servers answer 400 to some of them.
OPENAI_ONLY = frozenset({"store", "metadata", "service_tier"})


class CerebrasAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "cerebras"
    default_api_base: ClassVar[str] = "https://api.cerebras.ai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_COMPLETIONS
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class SambaNovaAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "sambanova"
    default_api_base: ClassVar[str] = "https://api.sambanova.ai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_EMBEDDINGS
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class NvidiaNIMAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "nvidia_nim"
    default_api_base: ClassVar[str] = "https://integrate.api.nvidia.com/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class DatabricksAdapter(OpenAICompatibleAdapter):
    """Model serving endpoints: `api_base` is the workspace's `.../serving-endpoints`, the
    upstream model the serving endpoint's name, the key a personal access token."""

    name: ClassVar[str] = "databricks"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class AzureAIAdapter(OpenAICompatibleAdapter):
    """Azure AI Foundry / AI Studio model inference. A `*.services.ai.azure.com` (or
    `*.openai.azure.com`) base takes the key in the `api-key` header, serverless
    `*.inference.ai.azure.com` endpoints as a bearer token; `api_version`, when set, is sent as
    the `api-version` query parameter."""

    name: ClassVar[str] = "azure_ai"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_EMBEDDINGS

    def url(self, *, endpoint: Endpoint, deployment: Deployment) -> str:
        url = super().url(endpoint=endpoint, deployment=deployment)
        if deployment.api_version:
            url = f"{url}?{urlencode({'api-version': deployment.api_version})}"
        return url

    def auth_headers(self, deployment: Deployment) -> dict[str, str]:
        if not deployment.api_key:
            return {}
        host = urlsplit(self.api_base(deployment)).hostname or ""
        if host.endswith((".services.ai.azure.com", ".openai.azure.com")):
            return {"api-key": deployment.api_key}
        return {"Authorization": f"Bearer {deployment.api_key}"}


class GitHubModelsAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "github"
    default_api_base: ClassVar[str] = "https://models.inference.ai.azure.com"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_EMBEDDINGS


class CodestralAdapter(OpenAICompatibleAdapter):
    """Mistral's Codestral endpoint (`codestral/`): chat completions."""

    name: ClassVar[str] = "codestral"
    default_api_base: ClassVar[str] = "https://codestral.mistral.ai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


# The text-completion fields Codestral's fill-in-the-middle endpoint accepts.
_FIM_FIELDS = frozenset(
    {
        "prompt",
        "suffix",
        "max_tokens",
        "min_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "stream",
        "random_seed",
    }
)


def _fim_choice_to_text(choice: dict[str, Any], *, key: str) -> dict[str, Any]:
    """A FIM answer's chat-shaped choice as a text completion's (`message`/`delta` -> `text`)."""
    part = choice.get(key) or {}
    text = part.get("content") if isinstance(part, dict) else None
    return {
        "text": text or "",
        "index": choice.get("index", 0),
        "logprobs": None,
        "finish_reason": choice.get("finish_reason"),
    }


class TextCompletionCodestralAdapter(CodestralAdapter):
    """`text-completion-codestral/`: /v1/completions served by Codestral's fill-in-the-middle
    endpoint (`POST /v1/fim/completions`), whose chat-shaped answers become text completions."""

    name: ClassVar[str] = "text-completion-codestral"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset({Endpoint.COMPLETIONS})
    stream_usage_option: ClassVar[bool] = False

    def url(self, *, endpoint: Endpoint, deployment: Deployment) -> str:
        return f"{self.api_base(deployment)}/fim/completions"

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        if not isinstance(body.get("prompt"), str):
            raise InvalidRequestError(
                "Codestral's fill-in-the-middle completions take one prompt string.",
                param="prompt",
            )
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        return {k: v for k, v in prepared.items() if k in _FIM_FIELDS or k == "model"}

    def parse_response(
        self, *, endpoint: Endpoint, deployment: Deployment, response: UpstreamResponse
    ) -> dict[str, Any] | bytes:
        parsed = super().parse_response(endpoint=endpoint, deployment=deployment, response=response)
        if isinstance(parsed, dict) and isinstance(parsed.get("choices"), list):
            parsed["object"] = "text_completion"
            parsed["choices"] = [
                _fim_choice_to_text(c, key="message") for c in parsed["choices"] if c
            ]
        return parsed

    async def translate_stream(
        self, *, endpoint: Endpoint, deployment: Deployment, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[dict[str, Any]]:
        async for chunk in super().translate_stream(
            endpoint=endpoint, deployment=deployment, chunks=chunks
        ):
            if isinstance(chunk.get("choices"), list):
                chunk["object"] = "text_completion"
                chunk["choices"] = [_fim_choice_to_text(c, key="delta") for c in chunk["choices"]]
            yield chunk


class NebiusAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "nebius"
    default_api_base: ClassVar[str] = "https://api.studio.nebius.ai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class NovitaAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "novita"
    default_api_base: ClassVar[str] = "https://api.novita.ai/v3/openai"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_COMPLETIONS
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class HyperbolicAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "hyperbolic"
    default_api_base: ClassVar[str] = "https://api.hyperbolic.xyz/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_COMPLETIONS
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class LambdaAIAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "lambda_ai"
    default_api_base: ClassVar[str] = "https://api.lambda.ai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_COMPLETIONS
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class FeatherlessAIAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "featherless_ai"
    default_api_base: ClassVar[str] = "https://api.featherless.ai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_COMPLETIONS
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class NscaleAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "nscale"
    default_api_base: ClassVar[str] = "https://inference.api.nscale.com/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.IMAGES_GENERATIONS}
    )
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class DashScopeAdapter(OpenAICompatibleAdapter):
    """Alibaba Cloud Model Studio (Qwen), international endpoint by default; set `api_base` to
    `https://dashscope.aliyuncs.com/compatible-mode/v1` for the mainland China region."""

    name: ClassVar[str] = "dashscope"
    default_api_base: ClassVar[str] = "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_EMBEDDINGS
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class FriendliAIAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "friendliai"
    default_api_base: ClassVar[str] = "https://api.friendli.ai/serverless/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_COMPLETIONS
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class GaladrielAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "galadriel"
    default_api_base: ClassVar[str] = "https://api.galadriel.com/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class DeepInfraAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "deepinfra"
    default_api_base: ClassVar[str] = "https://api.deepinfra.com/v1/openai"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS}
    )
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class MoonshotAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "moonshot"
    default_api_base: ClassVar[str] = "https://api.moonshot.ai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class MetaLlamaAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "meta_llama"
    default_api_base: ClassVar[str] = "https://api.llama.com/compat/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class VolcengineAdapter(OpenAICompatibleAdapter):
    name: ClassVar[str] = "volcengine"
    default_api_base: ClassVar[str] = "https://ark.cn-beijing.volces.com/api/v3"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_EMBEDDINGS
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class XinferenceAdapter(OpenAICompatibleAdapter):
    """A self-hosted Xinference server (`api_base` required, e.g. `http://host:9997/v1`)."""

    name: ClassVar[str] = "xinference"
    endpoints: ClassVar[frozenset[Endpoint]] = frozenset(
        {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.RERANK}
    )
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY


class LiteLLMProxyAdapter(OpenAICompatibleAdapter):
    """Another LiteLLM proxy (or any OpenAI-compatible gateway): `api_base` required, every
    OpenAI endpoint the family serves passed through."""

    name: ClassVar[str] = "litellm_proxy"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_FAMILY_ENDPOINTS


# A Baseten dedicated deployment's id (LiteLLM routes an 8-character alphanumeric model there).
_BASETEN_DEPLOYMENT_ID = re.compile(r"[a-z0-9]{8}")


class BasetenAdapter(OpenAICompatibleAdapter):
    """Baseten Model APIs (`baseten/openai/gpt-oss-120b`), or, as LiteLLM routes an
    8-character model id such as `baseten/abcd1234`, that dedicated deployment's production
    environment (`https://model-<id>.api.baseten.co/environments/production/sync/v1`)."""

    name: ClassVar[str] = "baseten"
    default_api_base: ClassVar[str] = "https://inference.baseten.co/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT_AND_COMPLETIONS
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY

    def api_base(self, deployment: Deployment) -> str:
        model = deployment.upstream_model
        if not deployment.api_base and _BASETEN_DEPLOYMENT_ID.fullmatch(model):
            return f"https://model-{model}.api.baseten.co/environments/production/sync/v1"
        return super().api_base(deployment)


def clarifai_model_url(model: str) -> str:
    """LiteLLM's `user.app.model` Clarifai id as the model URL Clarifai's OpenAI endpoint takes
    (`https://clarifai.com/user/app/models/model`); a URL already is one."""
    parts = model.split(".")
    if "://" in model or len(parts) != 3 or not all(parts):
        return model
    user, app, model_id = parts
    return f"https://clarifai.com/{user}/{app}/models/{model_id}"


class ClarifaiAdapter(OpenAICompatibleAdapter):
    """Clarifai's OpenAI-compatible endpoint; the key is a personal access token (bearer)."""

    name: ClassVar[str] = "clarifai"
    default_api_base: ClassVar[str] = "https://api.clarifai.com/v2/ext/openai/v1"
    endpoints: ClassVar[frozenset[Endpoint]] = CHAT
    rejected_params: ClassVar[frozenset[str]] = OPENAI_ONLY

    def prepare_body(
        self, *, endpoint: Endpoint, deployment: Deployment, body: dict[str, Any], stream: bool
    ) -> dict[str, Any]:
        prepared = super().prepare_body(
            endpoint=endpoint, deployment=deployment, body=body, stream=stream
        )
        prepared["model"] = clarifai_model_url(deployment.upstream_model)
        return prepared


HOSTED_ADAPTERS: tuple[type[OpenAICompatibleAdapter], ...] = (
    CerebrasAdapter,
    SambaNovaAdapter,
    NvidiaNIMAdapter,
    DatabricksAdapter,
    AzureAIAdapter,
    GitHubModelsAdapter,
    CodestralAdapter,
    TextCompletionCodestralAdapter,
    NebiusAdapter,
    NovitaAdapter,
    HyperbolicAdapter,
    LambdaAIAdapter,
    FeatherlessAIAdapter,
    NscaleAdapter,
    DashScopeAdapter,
    FriendliAIAdapter,
    GaladrielAdapter,
    DeepInfraAdapter,
    MoonshotAdapter,
    MetaLlamaAdapter,
    VolcengineAdapter,
    XinferenceAdapter,
    LiteLLMProxyAdapter,
    BasetenAdapter,
    ClarifaiAdapter,
)
