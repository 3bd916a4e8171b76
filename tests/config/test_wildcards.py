"""LiteLLM's wildcard routing (`model_name: "*"`, `"openai/*"`) from a LiteLLM config.yaml,
through the live server with the official SDK: any matching name is served by a deployment built
from the wildcard, exact names win, and key allow-lists still bound what a key may use."""

from __future__ import annotations

from collections.abc import Callable

import openai
import pytest

from gateway.config import config_check
from providers.base import Deployment
from tests.emulators.fixtures import UPSTREAM_KEY
from tests.emulators.openai_api import OpenAIEmulator
from tests.live import LiveServer

pytestmark = pytest.mark.live

HELLO = [{"role": "user", "content": "Hello there"}]


def _load(write_config: Callable[[str], str], text: str) -> list[Deployment]:
    config, problems = config_check(write_config(text))
    assert [str(p) for p in problems] == []
    assert config is not None
    return list(config.deployments)


@pytest.fixture
def wildcards(
    openai_emulator: OpenAIEmulator,
    write_config: Callable[[str], str],
    install_deployments: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> OpenAIEmulator:
    monkeypatch.setenv("WC_UPSTREAM_KEY", UPSTREAM_KEY)
    base = f"{openai_emulator.url}/v1"
    deployments = _load(
        write_config,
        f"""
        model_list:
          - model_name: gpt-4o
            litellm_params:
              model: openai/gpt-4o-2024-08-06
              api_base: {base}
              api_key: os.environ/WC_UPSTREAM_KEY
          - model_name: "*"
            litellm_params:
              model: "*"
              api_base: {base}
              api_key: os.environ/WC_UPSTREAM_KEY
          - model_name: "openai/*"
            litellm_params:
              model: "openai/*"
              api_base: {base}
              api_key: os.environ/WC_UPSTREAM_KEY
        """,
    )
    install_deployments(*deployments)
    return openai_emulator


def _served(sdk: openai.OpenAI, model: str) -> tuple[str, str]:
    raw = sdk.chat.completions.with_raw_response.create(model=model, messages=HELLO)
    raw.parse()
    return raw.headers["x-ogem-provider"], raw.headers["x-ogem-deployment"]


def test_names_route_to_the_most_specific_wildcard(
    wildcards: OpenAIEmulator, sdk: openai.OpenAI
) -> None:
    assert _served(sdk, "gpt-4o") == ("openai", "config:gpt-4o#0")
    assert wildcards.last.json["model"] == "gpt-4o-2024-08-06"
    assert _served(sdk, "openai/gpt-4o-mini") == ("openai", "config:openai/*#0[openai/gpt-4o-mini]")
    assert wildcards.last.json["model"] == "gpt-4o-mini"
    # `*` to `*`: the requested name is LiteLLM's model string, its prefix the provider.
    assert _served(sdk, "cerebras/llama3.1-8b") == (
        "cerebras",
        "config:*#0[cerebras/llama3.1-8b]",
    )
    assert wildcards.last.json["model"] == "llama3.1-8b"
    assert wildcards.last.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert _served(sdk, "my-finetune") == ("openai", "config:*#0[my-finetune]")
    assert wildcards.last.json["model"] == "my-finetune"


def test_a_star_routed_to_one_provider(
    openai_emulator: OpenAIEmulator,
    write_config: Callable[[str], str],
    install_deployments: Callable[..., None],
    sdk: openai.OpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WC_UPSTREAM_KEY", UPSTREAM_KEY)
    install_deployments(
        *_load(
            write_config,
            f"""
            model_list:
              - model_name: "*"
                litellm_params:
                  model: "deepseek/*"
                  api_base: {openai_emulator.url}/v1
                  api_key: os.environ/WC_UPSTREAM_KEY
            """,
        )
    )
    raw = sdk.chat.completions.with_raw_response.create(model="deepseek-chat", messages=HELLO)
    assert raw.headers["x-ogem-provider"] == "deepseek"
    assert openai_emulator.last.json["model"] == "deepseek-chat"
    assert openai_emulator.last.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_allow_lists_still_bound_wildcard_names(
    wildcards: OpenAIEmulator, live_ogem: LiveServer, make_key: Callable[..., str]
) -> None:
    def client(**options: object) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{live_ogem.url}/v1", api_key=make_key(**options), max_retries=0
        )

    only_gpt4o = client(models=["gpt-4o"])
    only_gpt4o.chat.completions.create(model="gpt-4o", messages=HELLO)
    with pytest.raises(openai.PermissionDeniedError) as refused:
        only_gpt4o.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    assert refused.value.code == "model_not_allowed"

    openai_only = client(models=["openai/*"])
    openai_only.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    with pytest.raises(openai.PermissionDeniedError):
        openai_only.chat.completions.create(model="my-finetune", messages=HELLO)
    listed = [m.id for m in openai_only.models.list()]
    assert listed and all(name.startswith("openai/") for name in listed)
    assert openai_only.models.retrieve("openai/my-own-ft").id == "openai/my-own-ft"
    with pytest.raises(openai.NotFoundError):
        openai_only.models.retrieve("gpt-4o")


def test_models_list_shows_the_known_models_of_a_provider_wildcard(
    wildcards: OpenAIEmulator, sdk: openai.OpenAI
) -> None:
    listed = [m.id for m in sdk.models.list()]
    assert "gpt-4o" in listed
    assert "openai/gpt-4o-mini" in listed  # a known OpenAI model, through `openai/*`
    assert "*" not in listed and "openai/*" not in listed
    assert len(listed) == len(set(listed))
    assert sdk.models.retrieve("openai/gpt-4o-mini").owned_by == "openai"
