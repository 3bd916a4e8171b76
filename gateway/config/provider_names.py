"""Provider names a configuration may use, and how LiteLLM's `provider/model` strings split.

Adapters are registered in `providers/registry.py`. LiteLLM prefixes without one (upstreams
that no longer exist) are still recognised, so `palm/chat-bison` is not mistaken for an OpenAI
model id, and the deployment is skipped with a warning saying why.
"""

from __future__ import annotations

import difflib

from providers.base import model_string_split

# The prefixes CONTRACTS.md promises, the rest of the OpenAI-compatible family, and Ogem's own
# in-process `local` provider (not a LiteLLM name).
KNOWN_PROVIDERS = frozenset(
    {
        "openai",
        "azure",
        "anthropic",
        "gemini",
        "vertex_ai",
        "bedrock",
        "cohere",
        "mistral",
        "groq",
        "xai",
        "together_ai",
        "fireworks_ai",
        "deepseek",
        "perplexity",
        "openrouter",
        "anyscale",
        "ollama",
        "hosted_vllm",
        "lm_studio",
        "oobabooga",
        "llamafile",
        "openai_compatible",
        "huggingface",
        "replicate",
        "ai21",
        "voyage",
        "jina_ai",
        "assemblyai",
        "deepgram",
        "mock",
        "local",
        # Hosted OpenAI-compatible upstreams (providers/openai_compatible/hosted.py).
        "cerebras",
        "sambanova",
        "nvidia_nim",
        "databricks",
        "azure_ai",
        "github",
        "codestral",
        "text-completion-codestral",
        "nebius",
        "novita",
        "hyperbolic",
        "lambda_ai",
        "featherless_ai",
        "nscale",
        "dashscope",
        "friendliai",
        "galadriel",
        "deepinfra",
        "moonshot",
        "meta_llama",
        "volcengine",
        "xinference",
        "litellm_proxy",
        "baseten",
        "clarifai",
        # LiteLLM prefixes with protocols of their own (providers/<name>/).
        "watsonx",
        "sagemaker",
        "sagemaker_chat",
        "cloudflare",
        "predibase",
        "triton",
        "nlp_cloud",
        "aleph_alpha",
    }
)

# LiteLLM names that mean the same upstream as one of ours.
PROVIDER_ALIASES = {
    "ollama_chat": "ollama",
    "text-completion-openai": "openai",
    "custom_openai": "openai_compatible",
    "text_generation_webui": "oobabooga",
    # LiteLLM's second names for an upstream Ogem's adapter already speaks.
    "cohere_chat": "cohere",
    "ai21_chat": "ai21",
    "vertex_ai_beta": "vertex_ai",
    "azure_text": "azure",
    # LiteLLM's `vllm/` runs the vllm library in-process; Ogem reaches a vLLM server instead.
    "vllm": "hosted_vllm",
}

# LiteLLM prefixes whose upstream no longer exists: recognised so their model strings split
# correctly; no adapter will come, and a deployment naming one is reported with the reason
# (and what to use instead).
RETIRED_PROVIDERS = {
    "palm": "Google shut the PaLM API down in 2024; use gemini/ (e.g. gemini/gemini-2.0-flash)",
    "petals": "the public Petals swarm no longer runs; serve the model with an OpenAI-compatible "
    "server (hosted_vllm/, ollama/) instead",
}
OTHER_LITELLM_PREFIXES = frozenset(RETIRED_PROVIDERS)

# The params key holding a wildcard deployment's LiteLLM model template (`*`, `openai/*`): the
# registry builds the deployment serving each requested name from it (gateway/registry.py).
WILDCARD_MODEL_PARAM = "wildcard_model"

_SPLIT_NAMES = KNOWN_PROVIDERS | frozenset(PROVIDER_ALIASES) | OTHER_LITELLM_PREFIXES


def provider_adapter_names() -> frozenset[str] | None:
    """Names with an adapter in providers/registry.py, or None while that registry is absent."""
    try:
        # Imported on use: the registry loads every adapter (botocore, aiohttp: about 0.3 s),
        # which config checks and migrations that read provider names would pay at start.
        from providers import registry
    except ImportError:
        return None
    for attribute in ("ADAPTERS", "REGISTRY", "PROVIDERS", "adapters", "registry"):
        table = getattr(registry, attribute, None)
        if isinstance(table, dict):
            return frozenset(table)
    return None


def provider_split(model: str) -> tuple[str, str, bool]:
    """Split `provider/upstream-id`; returns (provider, upstream, prefix_recognised)."""
    provider, upstream = model_string_split(model, known_providers=_SPLIT_NAMES)
    recognised = provider != "openai" or model.startswith("openai/") or "/" not in model
    return PROVIDER_ALIASES.get(provider, provider), upstream, recognised


def provider_suggest(name: str) -> str | None:
    """The known provider prefix `name` most likely misspells (`opnai` -> `openai`), if any."""
    close = difflib.get_close_matches(name.lower(), sorted(_SPLIT_NAMES), n=1, cutoff=0.75)
    return close[0] if close else None


def provider_canonical(name: str) -> str:
    return PROVIDER_ALIASES.get(name, name)


def provider_unservable_reason(name: str) -> str:
    """Why a deployment of provider `name` is skipped (`provider_is_servable` said False)."""
    retired = RETIRED_PROVIDERS.get(name)
    if retired is not None:
        return f'provider "{name}" is not served: {retired}'
    return f'provider "{name}" is not available in this Ogem build'


def provider_is_servable(name: str) -> bool:
    """False for a name Ogem has no adapter for (known LiteLLM prefixes not built yet included)."""
    adapters = provider_adapter_names()
    if adapters is not None:
        return name in adapters
    return name in KNOWN_PROVIDERS


def provider_model_problem(*, provider: str, upstream_model: str) -> str | None:
    """Why a provider cannot serve `upstream_model`, for the providers whose models are a fixed
    set known before any request (the in-process `local` one); None otherwise."""
    if provider != "local":
        return None
    # Imported on use: the model catalogue only, not the models (which load on first embedding).
    from providers.local.models import WORDLLAMA_MODELS

    if upstream_model in WORDLLAMA_MODELS:
        return None
    served = ", ".join(f'"local/{name}"' for name in WORDLLAMA_MODELS)
    return f'the local provider has no model "{upstream_model}"; it serves {served}'
