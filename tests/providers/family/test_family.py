"""The rest of the OpenAI-compatible family, each through a live Ogem with the official SDK
against the local OpenAI emulator: chat, stream, and each provider's own quirk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway.errors import InvalidRequestError
from providers.base import Deployment, Endpoint
from providers.registry import adapter_get
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator

HELLO = [{"role": "user", "content": "Hello there"}]
REPLY = "Emulated reply to: Hello there"

# provider -> (upstream model id in the deployment, model id the upstream must receive)
FAMILY: dict[str, tuple[str, str]] = {
    "xai": ("grok-3", "grok-3"),
    "together_ai": (
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    ),
    "fireworks_ai": ("llama-v3p1-8b-instruct", "accounts/fireworks/models/llama-v3p1-8b-instruct"),
    "deepseek": ("deepseek-chat", "deepseek-chat"),
    "perplexity": ("sonar", "sonar"),
    "openrouter": ("anthropic/claude-3.5-haiku", "anthropic/claude-3.5-haiku"),
    "anyscale": ("meta-llama/Llama-2-7b-chat-hf", "meta-llama/Llama-2-7b-chat-hf"),
    "ollama": ("llama3.1", "llama3.1"),
    "hosted_vllm": ("Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B-Instruct"),
    "lm_studio": ("qwen2.5-7b-instruct", "qwen2.5-7b-instruct"),
    "oobabooga": ("loaded-model", "loaded-model"),
    "llamafile": ("LLaMA_CPP", "LLaMA_CPP"),
    "openai_compatible": ("any/model", "any/model"),
}

DEFAULT_BASES = {
    "xai": "https://api.x.ai/v1/chat/completions",
    "together_ai": "https://api.together.xyz/v1/chat/completions",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1/chat/completions",
    "deepseek": "https://api.deepseek.com/v1/chat/completions",
    "perplexity": "https://api.perplexity.ai/chat/completions",
    "openrouter": "https://openrouter.ai/api/v1/chat/completions",
    "anyscale": "https://api.endpoints.anyscale.com/v1/chat/completions",
    "ollama": "http://localhost:11434/v1/chat/completions",
    "lm_studio": "http://localhost:1234/v1/chat/completions",
    "oobabooga": "http://127.0.0.1:5000/v1/chat/completions",
    "llamafile": "http://127.0.0.1:8080/v1/chat/completions",
}


def _deployment(provider: str, base: str, **overrides: Any) -> Deployment:
    upstream, _ = FAMILY[provider]
    fields: dict[str, Any] = {
        "id": f"test:{provider}",
        "model_name": f"fam-{provider}",
        "provider": provider,
        "upstream_model": upstream,
        "api_base": base,
        "api_key": UPSTREAM_KEY,
    }
    fields.update(overrides)
    return Deployment(**fields)


@pytest.fixture
def family(openai_emulator, install_deployments) -> OpenAIEmulator:  # type: ignore[no-untyped-def]
    install_deployments(
        *(_deployment(name, f"{openai_emulator.url}/v1") for name in FAMILY),
        _deployment(
            "xai",
            f"{openai_emulator.url}/v1",
            id="test:xai-mini",
            model_name="fam-xai-mini",
            upstream_model="grok-3-mini",
        ),
        _deployment(
            "deepseek",
            f"{openai_emulator.url}/v1",
            id="test:reasoner",
            model_name="fam-reasoner",
            upstream_model="deepseek-reasoner",
        ),
        _deployment(
            "fireworks_ai",
            f"{openai_emulator.url}/v1",
            id="test:fw-full",
            model_name="fam-fw-full",
            upstream_model="accounts/acme/models/tuned",
        ),
        _deployment(
            "openrouter",
            f"{openai_emulator.url}/v1",
            id="test:or-attributed",
            model_name="fam-or-attributed",
            params={
                "site_url": "https://app.example.com",
                "app_name": "Example App",
                "route": "fallback",
                "models": ["a/b", "c/d"],
            },
        ),
        _deployment(
            "ollama", openai_emulator.url, id="test:ollama-root", model_name="fam-ollama-root"
        ),
        _deployment(
            "hosted_vllm",
            f"{openai_emulator.url}/",
            id="test:vllm-root",
            model_name="fam-vllm-root",
        ),
        _deployment(
            "oobabooga",
            f"{openai_emulator.url}/v1",
            id="test:ooba-char",
            model_name="fam-ooba-char",
            params={"mode": "chat", "character": "Assistant"},
        ),
    )
    return openai_emulator


@pytest.mark.parametrize("provider", list(FAMILY))
def test_chat(provider: str, sdk: openai.OpenAI, family: OpenAIEmulator) -> None:
    raw = sdk.chat.completions.with_raw_response.create(
        model=f"fam-{provider}", messages=HELLO, temperature=0.5
    )
    body = raw.http_response.json()
    assert raw.headers["x-ogem-provider"] == provider
    assert raw.headers["x-ogem-deployment"] == f"test:{provider}"
    assert body["choices"][0]["message"]["content"] == REPLY
    assert body["emulator_extra"] == {"kept": True}  # extra response fields survive
    sent = family.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.json["model"] == FAMILY[provider][1]
    assert sent.json["temperature"] == 0.5
    assert sent.json["messages"] == HELLO


@pytest.mark.parametrize("provider", list(FAMILY))
def test_stream(provider: str, sdk: openai.OpenAI, family: OpenAIEmulator) -> None:
    stream = sdk.chat.completions.create(model=f"fam-{provider}", messages=HELLO, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    sent = family.last.json
    assert sent["stream"] is True
    adapter = adapter_get(provider)
    assert adapter is not None
    if adapter.stream_usage_option:
        assert sent["stream_options"] == {"include_usage": True}
    else:
        assert "stream_options" not in sent


@pytest.mark.parametrize("provider", sorted(DEFAULT_BASES))
def test_default_api_base(provider: str) -> None:
    adapter = adapter_get(provider)
    assert adapter is not None and adapter.name == provider
    deployment = Deployment(
        id="x", model_name="x", provider=provider, upstream_model="m", api_key="k"
    )
    request = adapter.build_request(
        endpoint=Endpoint.CHAT, deployment=deployment, body={"messages": HELLO}, stream=False
    )
    assert request.url == DEFAULT_BASES[provider]


def test_hosted_vllm_needs_an_api_base() -> None:
    adapter = adapter_get("hosted_vllm")
    assert adapter is not None
    deployment = Deployment(id="x", model_name="x", provider="hosted_vllm", upstream_model="m")
    with pytest.raises(InvalidRequestError, match="has no api_base"):
        adapter.build_request(endpoint=Endpoint.CHAT, deployment=deployment, body={}, stream=False)


# -- one quirk per provider -----------------------------------------------------------------------


def test_xai_reasoning_models_drop_penalties_and_stop(sdk, family) -> None:  # type: ignore[no-untyped-def]
    extra = {"presence_penalty": 0.1, "frequency_penalty": 0.2, "stop": ["x"]}
    sdk.chat.completions.create(
        model="fam-xai-mini", messages=HELLO, reasoning_effort="low", **extra
    )
    sent = family.last.json
    assert {k: k in sent for k in extra} == {k: False for k in extra}
    assert sent["reasoning_effort"] == "low"
    sdk.chat.completions.create(model="fam-xai", messages=HELLO, **extra)
    assert {k: family.last.json[k] for k in extra} == extra


def test_together_passes_its_sampling_fields(sdk, family) -> None:  # type: ignore[no-untyped-def]
    sdk.chat.completions.create(
        model="fam-together_ai",
        messages=HELLO,
        store=True,
        extra_body={"top_k": 40, "repetition_penalty": 1.1},
    )
    sent = family.last.json
    assert (sent["top_k"], sent["repetition_penalty"], "store" in sent) == (40, 1.1, False)


def test_fireworks_keeps_full_account_paths(sdk, family) -> None:  # type: ignore[no-untyped-def]
    sdk.chat.completions.create(model="fam-fw-full", messages=HELLO)
    assert family.last.json["model"] == "accounts/acme/models/tuned"


def test_deepseek_reasoner_and_cache_hits(sdk, family) -> None:  # type: ignore[no-untyped-def]
    sdk.chat.completions.create(model="fam-reasoner", messages=HELLO, logprobs=True, top_logprobs=2)
    sent = family.last.json
    assert ("logprobs" in sent, "top_logprobs" in sent) == (False, False)
    answer = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "deepseek-chat",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "hi", "reasoning_content": "think"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 1,
            "total_tokens": 11,
            "prompt_cache_hit_tokens": 8,
            "prompt_cache_miss_tokens": 2,
        },
    }
    family.inject(status=200, body=answer)
    body = sdk.chat.completions.with_raw_response.create(
        model="fam-deepseek", messages=HELLO
    ).http_response.json()
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 8}
    assert body["usage"]["prompt_cache_hit_tokens"] == 8
    assert body["choices"][0]["message"]["reasoning_content"] == "think"


def test_perplexity_keeps_citations_and_drops_logit_bias(sdk, family) -> None:  # type: ignore[no-untyped-def]
    answer = {
        "id": "x",
        "object": "chat.completion",
        "created": 1,
        "model": "sonar",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "see [1]"},
                "finish_reason": "stop",
            }
        ],
        "citations": ["https://example.com/a"],
        "search_results": [{"title": "A", "url": "https://example.com/a"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    family.inject(status=200, body=answer)
    body = sdk.chat.completions.with_raw_response.create(
        model="fam-perplexity", messages=HELLO, logit_bias={"1": 1}
    ).http_response.json()
    assert body["citations"] == ["https://example.com/a"]
    assert body["search_results"] == [{"title": "A", "url": "https://example.com/a"}]
    assert "logit_bias" not in family.last.json


def test_openrouter_attribution_headers_and_routing(sdk, family) -> None:  # type: ignore[no-untyped-def]
    sdk.chat.completions.create(model="fam-or-attributed", messages=HELLO)
    sent = family.last
    assert sent.headers["http-referer"] == "https://app.example.com"
    assert sent.headers["x-title"] == "Example App"
    assert (sent.json["route"], sent.json["models"]) == ("fallback", ["a/b", "c/d"])
    sdk.chat.completions.create(model="fam-openrouter", messages=HELLO)
    assert "http-referer" not in family.last.headers


def test_anyscale_streams_without_stream_options(sdk, family) -> None:  # type: ignore[no-untyped-def]
    list(
        sdk.chat.completions.create(
            model="fam-anyscale",
            messages=HELLO,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "stream_options" not in family.last.json


def test_ollama_accepts_the_server_root_and_drops_unsupported(sdk, family) -> None:  # type: ignore[no-untyped-def]
    sdk.chat.completions.create(
        model="fam-ollama-root",
        messages=HELLO,
        user="u1",
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        tool_choice="auto",
    )
    sent = family.last
    assert sent.path == "/v1/chat/completions"
    assert ("user" in sent.json, "tool_choice" in sent.json) == (False, False)
    assert sent.json["tools"][0]["function"]["name"] == "f"


def test_hosted_vllm_root_and_guided_fields(sdk, family) -> None:  # type: ignore[no-untyped-def]
    schema = {"type": "object"}
    sdk.chat.completions.create(
        model="fam-vllm-root", messages=HELLO, extra_body={"guided_json": schema, "min_p": 0.1}
    )
    sent = family.last
    assert sent.path == "/v1/chat/completions"
    assert (sent.json["guided_json"], sent.json["min_p"]) == (schema, 0.1)


def test_lm_studio_json_mode_becomes_a_schema(sdk, family) -> None:  # type: ignore[no-untyped-def]
    sdk.chat.completions.create(
        model="fam-lm_studio", messages=HELLO, response_format={"type": "json_object"}
    )
    assert family.last.json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "json_object", "schema": {"type": "object"}},
    }


def test_oobabooga_generation_params(sdk, family) -> None:  # type: ignore[no-untyped-def]
    sdk.chat.completions.create(model="fam-ooba-char", messages=HELLO)
    sent = family.last.json
    assert (sent["mode"], sent["character"]) == ("chat", "Assistant")
    sdk.chat.completions.create(
        model="fam-ooba-char", messages=HELLO, extra_body={"mode": "instruct"}
    )
    assert family.last.json["mode"] == "instruct"


@pytest.fixture
def keyless_emulator() -> Iterator[OpenAIEmulator]:
    emulator = OpenAIEmulator(api_key="sk-no-key-required").start()
    yield emulator
    emulator.stop()


def test_llamafile_default_key_and_single_choice(
    sdk, install_deployments, keyless_emulator
) -> None:  # type: ignore[no-untyped-def]
    install_deployments(_deployment("llamafile", f"{keyless_emulator.url}/v1", api_key=None))
    reply = sdk.chat.completions.create(model="fam-llamafile", messages=HELLO)
    assert reply.choices[0].message.content == REPLY
    assert keyless_emulator.last.headers["authorization"] == "Bearer sk-no-key-required"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="fam-llamafile", messages=HELLO, n=2)
    assert caught.value.body == {
        "message": "llamafile supports only n=1.",
        "type": "invalid_request_error",
        "param": "n",
        "code": None,
    }
    assert len(keyless_emulator.requests) == 1  # the refused request never went upstream


def test_ollama_honours_tool_choice_none_by_not_sending_the_tools(sdk, family) -> None:  # type: ignore[no-untyped-def]
    completion = sdk.chat.completions.create(
        model="fam-ollama-root",
        messages=HELLO,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        tool_choice="none",
    )
    assert not {"tools", "tool_choice"} & set(family.last.json)
    assert completion.choices[0].message.tool_calls is None
    assert completion.choices[0].finish_reason == "stop"
