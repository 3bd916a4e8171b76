"""A LiteLLM config.yaml naming every provider prefix Ogem serves loads with no deployment skipped,
and a request to each, through the live server with the official SDK, reaches its emulator in that
provider's wire format; `model_info` prices are what the request costs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import httpx
import openai
import pytest

from billing.models import RequestLog
from billing.services import usage_drain
from gateway.config import config_check
from gateway.governance import governance_snapshot_flush
from providers.base import Deployment, Endpoint
from providers.bedrock.auth import credentials_forget
from providers.registry import adapter_get
from tests.emulators import (
    ai21_api,
    aleph_alpha_api,
    anthropic_api,
    bedrock_api,
    cloudflare_api,
    cohere_api,
    gemini_api,
    nlp_cloud_api,
    predibase_api,
    sagemaker_api,
    triton_api,
    watsonx_api,
)
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator

pytestmark = pytest.mark.live

HELLO = [{"role": "user", "content": "Hello there"}]
REPLY = "Emulated reply to: Hello there"

# LiteLLM prefix -> the upstream model id in the config (each served over OpenAI's wire format).
OPENAI_WIRE = {
    "cerebras": "llama3.1-8b",
    "sambanova": "Meta-Llama-3.1-8B-Instruct",
    "nvidia_nim": "meta/llama3-70b-instruct",
    "databricks": "databricks-meta-llama-3-3-70b-instruct",
    "azure_ai": "command-r-plus",
    "github": "Llama-3.2-11B-Vision-Instruct",
    "codestral": "codestral-latest",
    "vllm": "facebook/opt-125m",
    "nebius": "Qwen/Qwen3-235B-A22B",
    "novita": "deepseek/deepseek-r1",
    "hyperbolic": "Qwen/Qwen2.5-Coder-32B-Instruct",
    "lambda_ai": "llama3.1-8b-instruct",
    "featherless_ai": "featherless-ai/Qwerky-72B",
    "nscale": "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "dashscope": "qwen-turbo",
    "friendliai": "meta-llama-3.1-8b-instruct",
    "galadriel": "llama3.1",
    "deepinfra": "meta-llama/Meta-Llama-3.1-8B-Instruct",
    "moonshot": "moonshot-v1-8k",
    "meta_llama": "Llama-3.3-70B-Instruct",
    "volcengine": "doubao-pro-32k",
    "xinference": "qwen2.5-instruct",
    "litellm_proxy": "gpt-4o-mini",
    "baseten": "openai/gpt-oss-120b",
    "clarifai": "openai.chat-completion.gpt-oss-20b",
}
# The model id a prefix sends when it is not the config's: Clarifai's OpenAI endpoint takes
# the model's URL, which LiteLLM builds from its `user.app.model` id.
OPENAI_WIRE_SENT = {"clarifai": "https://clarifai.com/openai/chat-completion/models/gpt-oss-20b"}
# The config's model_info prices per token (input, output) of each OpenAI-wire prefix's entry.
OPENAI_WIRE_PRICES = ("0.0000011", "0.0000033")
# ... and of the native-protocol entries (cohere_chat, ai21_chat, anthropic, gemini).
NATIVE_PRICES = ("0.0000021", "0.0000042")
# Prefixes served by one of the family under another name.
CANONICAL = {"vllm": "hosted_vllm"}


def _config_text(*, openai_url: str, cohere_url: str, anthropic_url: str, gemini_url: str,
                 ai21_url: str, watsonx_url: str, sagemaker_url: str,
                 cloudflare_url: str, predibase_url: str,
                 triton_url: str, nlp_cloud_url: str,
                 aleph_alpha_url: str) -> str:  # fmt: skip
    entries = [
        f"""
  - model_name: lp-{prefix}
    litellm_params:
      model: {prefix}/{model}
      api_base: {openai_url}/v1
      api_key: os.environ/LPROV_UPSTREAM_KEY
    model_info:
      input_cost_per_token: {OPENAI_WIRE_PRICES[0]}
      output_cost_per_token: {OPENAI_WIRE_PRICES[1]}"""
        for prefix, model in OPENAI_WIRE.items()
    ]
    entries.append(
        f"""
  - model_name: lp-fim
    litellm_params:
      model: text-completion-codestral/codestral-2405
      api_base: {openai_url}/v1
      api_key: os.environ/LPROV_UPSTREAM_KEY
  - model_name: lp-cohere_chat
    litellm_params:
      model: cohere_chat/command-r-plus
      api_base: {cohere_url}/v1/chat
      api_key: os.environ/LPROV_COHERE_KEY
    model_info:
      input_cost_per_token: {NATIVE_PRICES[0]}
      output_cost_per_token: {NATIVE_PRICES[1]}
  - model_name: lp-ai21_chat
    litellm_params:
      model: ai21_chat/jamba-1.5-mini
      api_base: {ai21_url}/studio/v1
      api_key: os.environ/LPROV_AI21_KEY
    model_info:
      input_cost_per_token: {NATIVE_PRICES[0]}
      output_cost_per_token: {NATIVE_PRICES[1]}
  - model_name: lp-anthropic
    litellm_params:
      model: anthropic/claude-3-5-haiku-20241022
      api_base: {anthropic_url}
      api_key: os.environ/LPROV_ANTHROPIC_KEY
    model_info:
      input_cost_per_token: {NATIVE_PRICES[0]}
      output_cost_per_token: {NATIVE_PRICES[1]}
  - model_name: lp-gemini
    litellm_params:
      model: gemini/gemini-2.0-flash
      api_base: {gemini_url}/v1beta
      api_key: os.environ/LPROV_GEMINI_KEY
    model_info:
      input_cost_per_token: {NATIVE_PRICES[0]}
      output_cost_per_token: {NATIVE_PRICES[1]}
  - model_name: lp-priced
    litellm_params:
      model: cerebras/llama3.1-8b
      api_base: {openai_url}/v1
      api_key: os.environ/LPROV_UPSTREAM_KEY
    model_info:
      input_cost_per_token: 0.001
      output_cost_per_token: 0.002
      max_input_tokens: 8192
  - model_name: lp-watsonx
    litellm_params:
      model: watsonx/ibm/granite-3-8b-instruct
      api_base: {watsonx_url}
      token: os.environ/LPROV_WATSONX_TOKEN
      project_id: {watsonx_api.PROJECT_ID}
    model_info:
      input_cost_per_token: 0.0000002
      output_cost_per_token: 0.0000006
  - model_name: lp-sagemaker_chat
    litellm_params:
      model: sagemaker_chat/tgi-chat
      api_base: {sagemaker_url}
      aws_access_key_id: os.environ/LPROV_AWS_KEY
      aws_secret_access_key: os.environ/LPROV_AWS_SECRET
      aws_region_name: {bedrock_api.REGION}
    model_info:
      input_cost_per_token: 0.000003
      output_cost_per_token: 0.000004
  - model_name: lp-sagemaker
    litellm_params:
      model: sagemaker/tgi-generate
      api_base: {sagemaker_url}
      aws_access_key_id: os.environ/LPROV_AWS_KEY
      aws_secret_access_key: os.environ/LPROV_AWS_SECRET
      aws_region_name: {bedrock_api.REGION}
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000001
  - model_name: lp-cloudflare
    litellm_params:
      model: cloudflare/@cf/meta/llama-3.1-8b-instruct
      api_base: {cloudflare_url}/client/v4/accounts/{cloudflare_api.ACCOUNT_ID}/ai/run/
      api_key: os.environ/LPROV_CLOUDFLARE_KEY
    model_info:
      input_cost_per_token: 0.00000005
      output_cost_per_token: 0.0000001
  - model_name: lp-predibase
    litellm_params:
      model: predibase/llama-3-8b-instruct
      api_base: {predibase_url}
      api_key: os.environ/LPROV_PREDIBASE_KEY
      tenant_id: {predibase_api.TENANT_ID}
    model_info:
      input_cost_per_token: 0.0000002
      output_cost_per_token: 0.0000002
  - model_name: lp-triton
    litellm_params:
      model: triton/ensemble
      api_base: {triton_url}/v2/models/ensemble/generate
    model_info:
      input_cost_per_token: 0.0000001
      output_cost_per_token: 0.0000003
  - model_name: lp-nlp_cloud
    litellm_params:
      model: nlp_cloud/finetuned-llama-3-70b
      api_base: {nlp_cloud_url}/v1/gpu/
      api_key: os.environ/LPROV_NLP_CLOUD_KEY
    model_info:
      input_cost_per_token: 0.000001
      output_cost_per_token: 0.000002
  - model_name: lp-aleph_alpha
    litellm_params:
      model: aleph_alpha/luminous-base
      api_base: {aleph_alpha_url}/complete
      api_key: os.environ/LPROV_ALEPH_ALPHA_KEY
    model_info:
      input_cost_per_token: 0.000003
      output_cost_per_token: 0.000004"""
    )
    return "model_list:" + "".join(entries) + "\n"


@pytest.fixture
def emulators() -> Iterator[dict[str, object]]:
    found = {
        "cohere": cohere_api.cohere_emulator_get(),
        "anthropic": anthropic_api.anthropic_emulator_get(),
        "gemini": gemini_api.gemini_emulator_get(),
        "ai21": ai21_api.ai21_emulator_get(),
        "watsonx": watsonx_api.watsonx_emulator_get(),
        "sagemaker": sagemaker_api.sagemaker_emulator_get(),
        "cloudflare": cloudflare_api.cloudflare_emulator_get(),
        "predibase": predibase_api.predibase_emulator_get(),
        "triton": triton_api.triton_emulator_get(),
        "nlp_cloud": nlp_cloud_api.nlp_cloud_emulator_get(),
        "aleph_alpha": aleph_alpha_api.aleph_alpha_emulator_get(),
    }
    credentials_forget()
    for emulator in found.values():
        emulator.reset()  # type: ignore[attr-defined]
    yield found
    for emulator in found.values():
        emulator.reset()  # type: ignore[attr-defined]


@pytest.fixture
def config_path(
    openai_emulator: OpenAIEmulator,
    emulators: dict[str, object],
    write_config: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    monkeypatch.setenv("LPROV_UPSTREAM_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("LPROV_COHERE_KEY", cohere_api.API_KEY)
    monkeypatch.setenv("LPROV_AI21_KEY", ai21_api.API_KEY)
    monkeypatch.setenv("LPROV_ANTHROPIC_KEY", anthropic_api.API_KEY)
    monkeypatch.setenv("LPROV_GEMINI_KEY", gemini_api.API_KEY)
    monkeypatch.setenv("LPROV_WATSONX_TOKEN", watsonx_api.TOKEN)
    monkeypatch.setenv("LPROV_AWS_KEY", bedrock_api.ACCESS_KEY)
    monkeypatch.setenv("LPROV_AWS_SECRET", bedrock_api.SECRET_KEY)
    monkeypatch.setenv("LPROV_CLOUDFLARE_KEY", cloudflare_api.API_TOKEN)
    monkeypatch.setenv("LPROV_PREDIBASE_KEY", predibase_api.API_TOKEN)
    monkeypatch.setenv("LPROV_NLP_CLOUD_KEY", nlp_cloud_api.API_KEY)
    monkeypatch.setenv("LPROV_ALEPH_ALPHA_KEY", aleph_alpha_api.API_TOKEN)
    return write_config(
        _config_text(
            openai_url=openai_emulator.url,
            cohere_url=emulators["cohere"].url,  # type: ignore[attr-defined]
            anthropic_url=emulators["anthropic"].url,  # type: ignore[attr-defined]
            gemini_url=emulators["gemini"].url,  # type: ignore[attr-defined]
            ai21_url=emulators["ai21"].url,  # type: ignore[attr-defined]
            watsonx_url=emulators["watsonx"].url,  # type: ignore[attr-defined]
            sagemaker_url=emulators["sagemaker"].url,  # type: ignore[attr-defined]
            cloudflare_url=emulators["cloudflare"].url,  # type: ignore[attr-defined]
            predibase_url=emulators["predibase"].url,  # type: ignore[attr-defined]
            triton_url=emulators["triton"].url,  # type: ignore[attr-defined]
            nlp_cloud_url=emulators["nlp_cloud"].url,  # type: ignore[attr-defined]
            aleph_alpha_url=emulators["aleph_alpha"].url,  # type: ignore[attr-defined]
        )
    )


@pytest.fixture
def served(config_path: str, install_deployments: Callable[..., None]) -> list[Deployment]:
    config, problems = config_check(config_path)
    assert [str(p) for p in problems] == []
    assert config is not None
    install_deployments(*config.deployments)
    return list(config.deployments)


def test_every_prefix_loads_with_no_deployment_skipped(served: list[Deployment]) -> None:
    providers = {d.model_name.removeprefix("lp-"): d.provider for d in served}
    assert providers == {
        **{prefix: CANONICAL.get(prefix, prefix) for prefix in OPENAI_WIRE},
        "fim": "text-completion-codestral",
        "cohere_chat": "cohere",
        "ai21_chat": "ai21",
        "anthropic": "anthropic",
        "gemini": "gemini",
        "priced": "cerebras",
        "watsonx": "watsonx",
        "sagemaker_chat": "sagemaker_chat",
        "sagemaker": "sagemaker",
        "cloudflare": "cloudflare",
        "predibase": "predibase",
        "triton": "triton",
        "nlp_cloud": "nlp_cloud",
        "aleph_alpha": "aleph_alpha",
    }


@pytest.mark.parametrize("prefix", list(OPENAI_WIRE))
def test_each_openai_wire_prefix_reaches_its_upstream(
    prefix: str,
    served: list[Deployment],
    live_ogem,  # type: ignore[no-untyped-def]
    make_key: Callable[..., str],
    openai_emulator: OpenAIEmulator,
) -> None:
    governance_snapshot_flush()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=make_key(), max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model=f"lp-{prefix}", messages=HELLO)
    assert raw.headers["x-ogem-provider"] == CANONICAL.get(prefix, prefix)
    reply = raw.parse()
    assert reply.choices[0].message.content == REPLY
    sent = openai_emulator.last
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert sent.json["model"] == OPENAI_WIRE_SENT.get(prefix, OPENAI_WIRE[prefix])
    # Recorded at the config's model_info prices.
    usage_drain()
    assert reply.usage is not None
    inputs, outputs = OPENAI_WIRE_PRICES
    expected = Decimal(reply.usage.prompt_tokens) * Decimal(inputs) + Decimal(
        reply.usage.completion_tokens
    ) * Decimal(outputs)
    assert expected > 0
    assert [row.cost for row in RequestLog.objects.filter(model=f"lp-{prefix}")] == [expected]
    governance_snapshot_flush()
    assert sent.json["messages"] == HELLO


def test_codestral_text_completions_go_to_fill_in_the_middle(
    served: list[Deployment], sdk: openai.OpenAI, openai_emulator: OpenAIEmulator
) -> None:
    completion = sdk.completions.create(
        model="lp-fim", prompt="def is_odd(n):", suffix="return True", max_tokens=10
    )
    assert completion.object == "text_completion"
    assert completion.choices[0].text == "Emulated reply to: def is_odd(n): before return True"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    sent = openai_emulator.last
    assert sent.path == "/v1/fim/completions"
    assert sent.json == {
        "model": "codestral-2405",
        "prompt": "def is_odd(n):",
        "suffix": "return True",
        "max_tokens": 10,
    }


def test_cohere_chat_takes_the_full_endpoint_url(
    served: list[Deployment], sdk: openai.OpenAI, emulators: dict[str, object]
) -> None:
    reply = sdk.chat.completions.create(model="lp-cohere_chat", messages=HELLO)
    assert reply.choices[0].message.content
    cohere = emulators["cohere"]
    assert [r.path for r in cohere.requests] == ["/v2/chat"]  # type: ignore[attr-defined]
    assert cohere.requests[0].body["model"] == "command-r-plus"  # type: ignore[attr-defined]


def test_ai21_chat_anthropic_and_gemini_bases_as_litellm_writes_them(
    served: list[Deployment], sdk: openai.OpenAI, emulators: dict[str, object]
) -> None:
    for name in ("lp-ai21_chat", "lp-anthropic", "lp-gemini"):
        reply = sdk.chat.completions.create(model=name, messages=HELLO, max_tokens=20)
        assert reply.choices[0].message.content is not None
    paths = {
        name: [r.path for r in emulators[name].requests]  # type: ignore[attr-defined]
        for name in ("ai21", "anthropic", "gemini")
    }
    assert paths == {
        "ai21": ["/studio/v1/chat/completions"],
        "anthropic": ["/v1/messages"],
        "gemini": ["/v1beta/models/gemini-2.0-flash:generateContent"],
    }


@pytest.mark.parametrize("name", ["cohere_chat", "ai21_chat", "anthropic", "gemini"])
def test_native_prefixes_are_recorded_at_the_configs_prices(
    name: str,
    served: list[Deployment],
    live_ogem,  # type: ignore[no-untyped-def]
    make_key: Callable[..., str],
) -> None:
    governance_snapshot_flush()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=make_key(), max_retries=0)
    reply = client.chat.completions.create(model=f"lp-{name}", messages=HELLO, max_tokens=20)
    usage_drain()
    assert reply.usage is not None
    inputs, outputs = NATIVE_PRICES
    expected = Decimal(reply.usage.prompt_tokens) * Decimal(inputs) + Decimal(
        reply.usage.completion_tokens
    ) * Decimal(outputs)
    assert expected > 0
    assert [row.cost for row in RequestLog.objects.filter(model=f"lp-{name}")] == [expected]
    governance_snapshot_flush()


def test_model_info_prices_are_what_the_request_costs(
    served: list[Deployment],
    live_ogem,
    make_key: Callable[..., str],  # type: ignore[no-untyped-def]
) -> None:
    governance_snapshot_flush()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=make_key(), max_retries=0)
    reply = client.chat.completions.create(model="lp-priced", messages=HELLO)
    usage_drain()
    assert reply.usage is not None
    expected = Decimal(reply.usage.prompt_tokens) * Decimal("0.001") + Decimal(
        reply.usage.completion_tokens
    ) * Decimal("0.002")
    assert [row.cost for row in RequestLog.objects.filter(model="lp-priced")] == [expected]
    governance_snapshot_flush()


def test_model_info_routes_show_the_configs_prices_and_context_sizes(
    served: list[Deployment],
    live_ogem,  # type: ignore[no-untyped-def]
    master_key: str,
) -> None:
    proxy = httpx.Client(base_url=live_ogem.url, headers={"Authorization": f"Bearer {master_key}"})
    rows = proxy.get("/model/info").json()["data"]
    priced = next(row for row in rows if row["model_name"] == "lp-priced")
    assert priced["litellm_params"]["model"] == "cerebras/llama3.1-8b"
    assert {
        "input_cost_per_token": 0.001,
        "output_cost_per_token": 0.002,
        "max_input_tokens": 8192,
        "mode": "chat",
        "litellm_provider": "cerebras",
    }.items() <= priced["model_info"].items()
    watsonx = next(row for row in rows if row["model_name"] == "lp-watsonx")
    assert watsonx["model_info"]["input_cost_per_token"] == 0.0000002
    assert proxy.get("/v2/model/info").json()["data"] == rows
    groups = proxy.get("/model_group/info").json()["data"]
    group = next(g for g in groups if g["model_group"] == "lp-priced")
    assert {
        "providers": ["cerebras"],
        "input_cost_per_token": 0.001,
        "output_cost_per_token": 0.002,
        "max_input_tokens": 8192,
    }.items() <= group.items()


# Own-protocol prefixes: (emulator, the path each request reaches, the body's tell-tale field).
OWN_PROTOCOL = {
    "watsonx": ("watsonx", "/ml/v1/text/chat", "model_id"),
    "sagemaker_chat": ("sagemaker", "/endpoints/tgi-chat/invocations", "messages"),
    "sagemaker": ("sagemaker", "/endpoints/tgi-generate/invocations", "inputs"),
    "cloudflare": (
        "cloudflare",
        f"/client/v4/accounts/{cloudflare_api.ACCOUNT_ID}/ai/run/@cf/meta/llama-3.1-8b-instruct",
        "messages",
    ),
    "predibase": (
        "predibase",
        f"/{predibase_api.TENANT_ID}/deployments/v2/llms/llama-3-8b-instruct/generate",
        "inputs",
    ),
    "triton": ("triton", "/v2/models/ensemble/generate", "text_input"),
    "nlp_cloud": ("nlp_cloud", "/v1/gpu/finetuned-llama-3-70b/generation", "text"),
    "aleph_alpha": ("aleph_alpha", "/complete", "maximum_tokens"),
}


# The config's model_info prices per token (input, output).
OWN_PROTOCOL_PRICES = {
    "watsonx": ("0.0000002", "0.0000006"),
    "sagemaker_chat": ("0.000003", "0.000004"),
    "sagemaker": ("0.000001", "0.000001"),
    "cloudflare": ("0.00000005", "0.0000001"),
    "predibase": ("0.0000002", "0.0000002"),
    "triton": ("0.0000001", "0.0000003"),
    "nlp_cloud": ("0.000001", "0.000002"),
    "aleph_alpha": ("0.000003", "0.000004"),
}


@pytest.mark.parametrize("prefix", list(OWN_PROTOCOL))
def test_own_protocol_prefixes_reach_their_upstream_priced_by_the_config(
    prefix: str,
    served: list[Deployment],
    emulators: dict[str, object],
    live_ogem,  # type: ignore[no-untyped-def]
    make_key: Callable[..., str],
) -> None:
    governance_snapshot_flush()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=make_key(), max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model=f"lp-{prefix}", messages=HELLO)
    reply = raw.parse()
    assert raw.headers["x-ogem-provider"] == prefix
    assert reply.choices[0].message.content
    name, path, field = OWN_PROTOCOL[prefix]
    [sent] = emulators[name].requests  # type: ignore[attr-defined]
    assert sent.path == path
    assert field in sent.body
    usage_drain()
    assert reply.usage is not None
    inputs, outputs = OWN_PROTOCOL_PRICES[prefix]
    expected = Decimal(reply.usage.prompt_tokens) * Decimal(inputs) + Decimal(
        reply.usage.completion_tokens
    ) * Decimal(outputs)
    assert expected > 0
    assert [row.cost for row in RequestLog.objects.filter(model=f"lp-{prefix}")] == [expected]
    governance_snapshot_flush()


# -- defaults and headers, without a request ------------------------------------------------------

DEFAULT_URLS = {
    "cerebras": "https://api.cerebras.ai/v1/chat/completions",
    "sambanova": "https://api.sambanova.ai/v1/chat/completions",
    "nvidia_nim": "https://integrate.api.nvidia.com/v1/chat/completions",
    "github": "https://models.inference.ai.azure.com/chat/completions",
    "codestral": "https://codestral.mistral.ai/v1/chat/completions",
    "nebius": "https://api.studio.nebius.ai/v1/chat/completions",
    "novita": "https://api.novita.ai/v3/openai/chat/completions",
    "hyperbolic": "https://api.hyperbolic.xyz/v1/chat/completions",
    "lambda_ai": "https://api.lambda.ai/v1/chat/completions",
    "featherless_ai": "https://api.featherless.ai/v1/chat/completions",
    "nscale": "https://inference.api.nscale.com/v1/chat/completions",
    "dashscope": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions",
    "friendliai": "https://api.friendli.ai/serverless/v1/chat/completions",
    "galadriel": "https://api.galadriel.com/v1/chat/completions",
    "deepinfra": "https://api.deepinfra.com/v1/openai/chat/completions",
    "moonshot": "https://api.moonshot.ai/v1/chat/completions",
    "meta_llama": "https://api.llama.com/compat/v1/chat/completions",
    "volcengine": "https://ark.cn-beijing.volces.com/api/v3/chat/completions",
    "baseten": "https://inference.baseten.co/v1/chat/completions",
    "clarifai": "https://api.clarifai.com/v2/ext/openai/v1/chat/completions",
}


@pytest.mark.parametrize("provider", sorted(DEFAULT_URLS))
def test_default_api_base(provider: str) -> None:
    adapter = adapter_get(provider)
    assert adapter is not None and adapter.name == provider
    deployment = Deployment(
        id="x", model_name="x", provider=provider, upstream_model="m", api_key="k"
    )
    request = adapter.build_request(
        endpoint=Endpoint.CHAT, deployment=deployment, body={"messages": HELLO}, stream=False
    )
    assert request.url == DEFAULT_URLS[provider]
    assert request.headers["Authorization"] == "Bearer k"


@pytest.mark.parametrize(
    ("model", "api_base", "url"),
    [
        (
            "abcd1234",
            "",
            "https://model-abcd1234.api.baseten.co/environments/production/sync/v1/chat/completions",
        ),
        ("deepseek-ai/DeepSeek-V3-0324", "", "https://inference.baseten.co/v1/chat/completions"),
        ("abcd1234", "http://127.0.0.1:9/sync/v1", "http://127.0.0.1:9/sync/v1/chat/completions"),
    ],
)
def test_baseten_dedicated_deployments_by_their_id(model: str, api_base: str, url: str) -> None:
    adapter = adapter_get("baseten")
    assert adapter is not None
    deployment = Deployment(
        id="x", model_name="x", provider="baseten", upstream_model=model, api_base=api_base
    )
    request = adapter.build_request(
        endpoint=Endpoint.CHAT, deployment=deployment, body={"messages": HELLO}, stream=False
    )
    assert request.url == url


@pytest.mark.parametrize(
    ("model", "sent"),
    [
        ("meta.Llama-3.Llama-3_2-3B", "https://clarifai.com/meta/Llama-3/models/Llama-3_2-3B"),
        (
            "https://clarifai.com/openai/chat-completion/models/o4-mini",
            "https://clarifai.com/openai/chat-completion/models/o4-mini",
        ),
    ],
)
def test_clarifai_sends_the_model_url(model: str, sent: str) -> None:
    adapter = adapter_get("clarifai")
    assert adapter is not None
    deployment = Deployment(id="x", model_name="x", provider="clarifai", upstream_model=model)
    request = adapter.build_request(
        endpoint=Endpoint.CHAT, deployment=deployment, body={"messages": HELLO}, stream=False
    )
    assert request.json["model"] == sent


@pytest.mark.parametrize(
    ("api_base", "api_version", "url", "headers"),
    [
        (
            "https://acme.services.ai.azure.com/models",
            "2024-05-01-preview",
            "https://acme.services.ai.azure.com/models/chat/completions"
            "?api-version=2024-05-01-preview",
            {"api-key": "k"},
        ),
        (
            "https://Mistral-large-x.eastus2.inference.ai.azure.com/",
            "",
            "https://Mistral-large-x.eastus2.inference.ai.azure.com/chat/completions",
            {"Authorization": "Bearer k"},
        ),
    ],
)
def test_azure_ai_auth_follows_the_resource_kind(
    api_base: str, api_version: str, url: str, headers: dict[str, str]
) -> None:
    adapter = adapter_get("azure_ai")
    assert adapter is not None
    deployment = Deployment(
        id="x",
        model_name="x",
        provider="azure_ai",
        upstream_model="m",
        api_base=api_base,
        api_key="k",
        api_version=api_version,
    )
    request = adapter.build_request(
        endpoint=Endpoint.CHAT, deployment=deployment, body={"messages": HELLO}, stream=False
    )
    assert (request.url, request.headers) == (url, headers)


@pytest.mark.parametrize("provider", ["databricks", "azure_ai", "litellm_proxy", "xinference"])
def test_providers_without_a_public_default_need_an_api_base(provider: str) -> None:
    adapter = adapter_get(provider)
    assert adapter is not None
    deployment = Deployment(id="x", model_name="x", provider=provider, upstream_model="m")
    with pytest.raises(Exception, match="has no api_base"):
        adapter.build_request(endpoint=Endpoint.CHAT, deployment=deployment, body={}, stream=False)


def test_model_info_output_limit_bounds_the_worst_case(db) -> None:  # type: ignore[no-untyped-def]
    from billing.pricing import cost_worst_case, price_resolve

    info = {"input_cost_per_token": 0.001, "output_cost_per_token": 0.002, "max_tokens": 100}
    deployment = Deployment(
        id="x",
        model_name="x",
        provider="cerebras",
        upstream_model="unpriced-model",
        params={"model_info": info, "max_tokens": 5000},  # the params' one is a request default
    )
    price = price_resolve(model="unpriced-model", provider="cerebras", deployment=deployment)
    assert price is not None and price.max_output_tokens == 100
    assert cost_worst_case(price=price, prompt_tokens=10, max_tokens=None) == Decimal("0.21")
    alone = Deployment(
        id="y",
        model_name="y",
        provider="cerebras",
        upstream_model="unpriced-model",
        params={"model_info": {"max_output_tokens": 100}},
    )
    assert price_resolve(model="unpriced-model", provider="cerebras", deployment=alone) is None
