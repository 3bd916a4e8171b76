"""Provider name (LiteLLM's prefix) -> the adapter singleton. Adding a provider adds one line."""

from __future__ import annotations

from providers.adapter import ProviderAdapter
from providers.anthropic.adapter import AnthropicAdapter
from providers.anyscale.adapter import AnyscaleAdapter
from providers.azure.adapter import AzureOpenAIAdapter
from providers.deepseek.adapter import DeepSeekAdapter
from providers.fireworks_ai.adapter import FireworksAIAdapter
from providers.groq.adapter import GroqAdapter
from providers.hosted_vllm.adapter import HostedVLLMAdapter
from providers.llamafile.adapter import LlamafileAdapter
from providers.lm_studio.adapter import LMStudioAdapter
from providers.mistral.adapter import MistralAdapter
from providers.mock.adapter import MockAdapter
from providers.ollama.adapter import OllamaAdapter
from providers.openai.adapter import OpenAIAdapter
from providers.openai_compatible.adapter import OpenAICompatibleAdapter
from providers.openrouter.adapter import OpenRouterAdapter
from providers.perplexity.adapter import PerplexityAdapter
from providers.text_generation_webui.adapter import TextGenerationWebUIAdapter
from providers.together_ai.adapter import TogetherAIAdapter
from providers.xai.adapter import XAIAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    "mock": MockAdapter(),
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
    "ollama": OllamaAdapter(),
    "hosted_vllm": HostedVLLMAdapter(),
    "lm_studio": LMStudioAdapter(),
    "oobabooga": TextGenerationWebUIAdapter(),
    "llamafile": LlamafileAdapter(),
}


def adapter_get(provider: str) -> ProviderAdapter | None:
    return ADAPTERS.get(provider)
