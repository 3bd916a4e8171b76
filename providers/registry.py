"""Provider name (LiteLLM's prefix) -> the adapter singleton. Adding a provider adds one line."""

from __future__ import annotations

from providers.adapter import ProviderAdapter
from providers.ai21.adapter import AI21Adapter
from providers.aleph_alpha.adapter import AlephAlphaAdapter
from providers.anthropic.adapter import AnthropicAdapter
from providers.anthropic.batch import AnthropicBatches
from providers.anyscale.adapter import AnyscaleAdapter
from providers.assemblyai.adapter import AssemblyAIAdapter
from providers.azure.adapter import AzureOpenAIAdapter
from providers.azure.batch import AzureBatches
from providers.base import Deployment
from providers.batch import ProviderBatches
from providers.bedrock.adapter import BedrockAdapter
from providers.cloudflare.adapter import CloudflareAdapter
from providers.cohere.adapter import CohereAdapter
from providers.deepgram.adapter import DeepgramAdapter
from providers.deepseek.adapter import DeepSeekAdapter
from providers.fireworks_ai.adapter import FireworksAIAdapter
from providers.gemini.adapter import GeminiAdapter
from providers.gemini.batch import GeminiBatches
from providers.groq.adapter import GroqAdapter
from providers.hosted_vllm.adapter import HostedVLLMAdapter
from providers.huggingface.adapter import HuggingFaceAdapter
from providers.jina_ai.adapter import JinaAIAdapter
from providers.llamafile.adapter import LlamafileAdapter
from providers.lm_studio.adapter import LMStudioAdapter
from providers.local.adapter import LocalAdapter
from providers.mistral.adapter import MistralAdapter
from providers.mock.adapter import MockAdapter
from providers.nlp_cloud.adapter import NLPCloudAdapter
from providers.ollama.adapter import OllamaAdapter
from providers.openai.adapter import OpenAIAdapter
from providers.openai.batch import OpenAIBatches
from providers.openai.vector_stores import PROVIDERS as VECTOR_STORE_PROVIDERS
from providers.openai.vector_stores import OpenAIVectorStores
from providers.openai_compatible.adapter import OpenAICompatibleAdapter
from providers.openai_compatible.hosted import HOSTED_ADAPTERS
from providers.openrouter.adapter import OpenRouterAdapter
from providers.perplexity.adapter import PerplexityAdapter
from providers.predibase.adapter import PredibaseAdapter
from providers.replicate.adapter import ReplicateAdapter
from providers.sagemaker.adapter import SageMakerAdapter, SageMakerChatAdapter
from providers.text_generation_webui.adapter import TextGenerationWebUIAdapter
from providers.together_ai.adapter import TogetherAIAdapter
from providers.triton.adapter import TritonAdapter
from providers.vertex_ai.adapter import VertexAIAdapter
from providers.voyage.adapter import VoyageAdapter
from providers.watsonx.adapter import WatsonxAdapter
from providers.xai.adapter import XAIAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    "mock": MockAdapter(),
    "local": LocalAdapter(),
    "openai": OpenAIAdapter(),
    "openai_compatible": OpenAICompatibleAdapter(),
    "azure": AzureOpenAIAdapter(),
    "mistral": MistralAdapter(),
    "groq": GroqAdapter(),
    "anthropic": AnthropicAdapter(),
    "xai": XAIAdapter(),
    "together_ai": TogetherAIAdapter(),
    "fireworks_ai": FireworksAIAdapter(),
    "deepseek": DeepSeekAdapter(),
    "perplexity": PerplexityAdapter(),
    "openrouter": OpenRouterAdapter(),
    "anyscale": AnyscaleAdapter(),
    "bedrock": BedrockAdapter(),
    "cohere": CohereAdapter(),
    "ollama": OllamaAdapter(),
    "hosted_vllm": HostedVLLMAdapter(),
    "lm_studio": LMStudioAdapter(),
    "oobabooga": TextGenerationWebUIAdapter(),
    "llamafile": LlamafileAdapter(),
    "gemini": GeminiAdapter(),
    "vertex_ai": VertexAIAdapter(),
    "voyage": VoyageAdapter(),
    "jina_ai": JinaAIAdapter(),
    "ai21": AI21Adapter(),
    "deepgram": DeepgramAdapter(),
    "assemblyai": AssemblyAIAdapter(),
    "huggingface": HuggingFaceAdapter(),
    "replicate": ReplicateAdapter(),
    "watsonx": WatsonxAdapter(),
    "sagemaker": SageMakerAdapter(),
    "sagemaker_chat": SageMakerChatAdapter(),
    "cloudflare": CloudflareAdapter(),
    "predibase": PredibaseAdapter(),
    "triton": TritonAdapter(),
    "nlp_cloud": NLPCloudAdapter(),
    "aleph_alpha": AlephAlphaAdapter(),
    # The hosted OpenAI-compatible upstreams (providers/openai_compatible/hosted.py).
    **{adapter.name: adapter() for adapter in HOSTED_ADAPTERS},
}


def adapter_get(provider: str) -> ProviderAdapter | None:
    return ADAPTERS.get(provider)


# The providers whose own batch API Ogem can pass batches through to (docs/batches.md).
BATCH_APIS: dict[str, ProviderBatches] = {
    "openai": OpenAIBatches(ADAPTERS["openai"]),
    "azure": AzureBatches(ADAPTERS["azure"]),
    "anthropic": AnthropicBatches(ADAPTERS["anthropic"]),
    "gemini": GeminiBatches(ADAPTERS["gemini"]),
}


def batch_api_get(provider: str) -> ProviderBatches | None:
    return BATCH_APIS.get(provider)


def vector_store_api_get(deployment: Deployment) -> OpenAIVectorStores | None:
    """The Vector Stores API of the deployment's account (OpenAI and Azure OpenAI: the ones
    vector stores are passed through to, docs/vector-stores.md), or None."""
    adapter = ADAPTERS.get(deployment.provider)
    if deployment.provider not in VECTOR_STORE_PROVIDERS or adapter is None:
        return None
    return OpenAIVectorStores(deployment, adapter)
