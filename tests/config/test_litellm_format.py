"""LiteLLM's config.yaml, read as it is."""

from __future__ import annotations

import pytest

from gateway.config import GatewayConfig, config_check, config_load
from providers.base import Deployment, Timeouts

pytestmark = pytest.mark.django_db


def _problems(source: str) -> list[str]:
    _, problems = config_check(source)
    return [str(p) for p in problems]


def test_model_list_becomes_deployments(write_config, monkeypatch) -> None:
    monkeypatch.setenv("H3_OPENAI_KEY", "sk-from-env")
    monkeypatch.setenv("H3_AZURE_KEY", "az-from-env")
    path = write_config(
        """
        model_list:
          - model_name: gpt-4o
            litellm_params:
              model: openai/gpt-4o
              api_key: os.environ/H3_OPENAI_KEY
              rpm: 480
              tpm: 100000
              timeout: 300
              stream_timeout: 60
              organization: org-abc
              temperature: 0.2
            model_info:
              id: gpt4o-primary
              access_groups: [beta]
              mode: chat
          - model_name: gpt-4o
            litellm_params:
              model: azure/gpt-4o-eu
              api_base: https://eu.example.openai.azure.com
              api_key: os.environ/H3_AZURE_KEY
              api_version: 2024-02-01
              weight: 3
              order: 2
              region_name: eu
              tags: [eu, paid]
          - model_name: llama
            litellm_params:
              model: openai_compatible/meta-llama/Llama-3-8b
              api_base: http://127.0.0.1:8001/v1
        """
    )
    config = config_load(path)
    assert config.format == "litellm"
    assert config.source == path
    assert config.deployments == (
        Deployment(
            id="config:gpt4o-primary",
            model_name="gpt-4o",
            provider="openai",
            upstream_model="gpt-4o",
            api_key="sk-from-env",
            access_groups=("beta",),
            rpm=480,
            tpm=100000,
            timeouts=Timeouts(connect=5.0, first_byte=60.0, total=300.0),
            params={"organization": "org-abc", "temperature": 0.2, "model_info": {"mode": "chat"}},
        ),
        Deployment(
            id="config:gpt-4o#1",
            model_name="gpt-4o",
            provider="azure",
            upstream_model="gpt-4o-eu",
            api_base="https://eu.example.openai.azure.com",
            api_key="az-from-env",
            api_version="2024-02-01",
            region="eu",
            weight=3,
            priority=2,
            tags=("eu", "paid"),
        ),
        Deployment(
            id="config:llama#0",
            model_name="llama",
            provider="openai_compatible",
            upstream_model="meta-llama/Llama-3-8b",
            api_base="http://127.0.0.1:8001/v1",
        ),
    )
    assert [d.api_key for d in config.deployments] == ["sk-from-env", "az-from-env", None]
    assert {name: len(group) for name, group in config.model_groups().items()} == {
        "gpt-4o": 2,
        "llama": 1,
    }


def test_router_and_litellm_settings(write_config) -> None:
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
        router_settings:
          routing_strategy: latency-based-routing
          num_retries: 3
          timeout: 30
          allowed_fails: 2
          cooldown_time: 15
          model_group_alias:
            gpt-4: a
            legacy: {model: a, hidden: true}
          fallbacks: [{"a": ["b", "c"]}]
        litellm_settings:
          num_retries: 9
          request_timeout: 99
          context_window_fallbacks: [{"a": ["a-long"]}]
          content_policy_fallbacks: [{"a": "b"}]
          default_fallbacks: ["c"]
          drop_params: true
        general_settings:
          max_parallel_requests: 50
        """
    )
    config = config_load(path)
    router = config.router
    assert router.strategy == "latency-based-routing"
    assert router.num_retries == 3  # router_settings wins over litellm_settings
    assert router.timeout == 30.0
    assert router.allowed_fails == 2
    assert router.cooldown_time == 15.0
    assert router.model_group_alias == {"gpt-4": "a", "legacy": "a"}
    assert router.hidden_aliases == frozenset({"legacy"})
    assert router.fallbacks == {"a": ("b", "c")}
    assert router.context_window_fallbacks == {"a": ("a-long",)}
    assert router.content_policy_fallbacks == {"a": ("b",)}
    assert router.default_fallbacks == ("c",)
    assert config.general == {"drop_params": True, "max_parallel_requests": 50}


def test_litellm_settings_used_when_router_settings_silent(write_config) -> None:
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
        litellm_settings:
          num_retries: 4
          request_timeout: 20
          fallbacks: [{"a": ["b"]}]
        """
    )
    router = config_load(path).router
    assert (router.num_retries, router.timeout, router.fallbacks) == (4, 20.0, {"a": ("b",)})
    assert router.strategy == "simple-shuffle"


def test_environment_variables_and_credentials(write_config, monkeypatch) -> None:
    monkeypatch.delenv("H3_FROM_FILE", raising=False)
    monkeypatch.setenv("H3_OVERRIDDEN", "from-process")
    path = write_config(
        """
        environment_variables:
          H3_FROM_FILE: from-file
          H3_OVERRIDDEN: from-file
        credential_list:
          - credential_name: shared
            credential_values:
              api_key: os.environ/H3_FROM_FILE
              api_base: https://shared.example.com/v1
        model_list:
          - model_name: a
            litellm_params:
              model: openai/a
              litellm_credential_name: shared
          - model_name: b
            litellm_params:
              model: openai/b
              litellm_credential_name: shared
              api_key: os.environ/H3_OVERRIDDEN
        """
    )
    a, b = config_load(path).deployments
    assert (a.api_key, a.api_base) == ("from-file", "https://shared.example.com/v1")
    # The file's environment_variables win over the process environment, as in LiteLLM.
    assert (b.api_key, b.api_base) == ("from-file", "https://shared.example.com/v1")
    assert a.params == {} and b.params == {}


def test_unknown_keys_are_warnings_with_locations(write_config) -> None:
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params:
              model: mock/a
            extra: 1
        router_settings:
          redis_host: localhost
          provider_budget_config: {}
        litellm_settings:
          set_verbose: true
          success_callback: ["langfuse"]
        general_settings:
          master_key: sk-1234
        mcp_servers: {}
        """
    )
    config, problems = config_check(path)
    assert isinstance(config, GatewayConfig)
    assert [str(p) for p in problems] == [
        f"{path}:5:5: warning: model_list[0].extra: unknown key in a model_list entry, ignored",
        f"{path}:7:3: warning: router_settings.redis_host: ignored: Ogem uses REDIS_URL",
        f"{path}:8:3: warning: router_settings.provider_budget_config: "
        "unknown key in router_settings, ignored",
        f"{path}:10:3: warning: litellm_settings.set_verbose: ignored: use OGEM_LOG_LEVEL",
        # Without LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY in the environment.
        f"{path}:11:3: warning: litellm_settings.success_callback: "
        'callback "langfuse": langfuse needs LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY; '
        "left out",
        # The master key when OGEM_MASTER_KEY is unset (ogem_site/env.py), written literally.
        f"{path}:13:15: warning: general_settings.master_key: the key is written in the file; "
        "prefer os.environ/NAME or file:///path",
        f"{path}:14:1: warning: mcp_servers: unknown key in the LiteLLM configuration, ignored",
    ]


def test_unknown_prefix_unsupported_provider_and_wildcards(write_config) -> None:
    path = write_config(
        """
        model_list:
          - model_name: llama
            litellm_params:
              model: meta-llama/Llama-3-8b
          - model_name: sm
            litellm_params:
              model: palm/chat-bison
          - model_name: "*"
            litellm_params:
              model: openai/*
          - model_name: instruct
            litellm_params:
              model: text-completion-openai/gpt-3.5-turbo-instruct
        """
    )
    config, problems = config_check(path)
    assert [str(p) for p in problems] == [
        # meta_llama is Meta's Llama API (LiteLLM's prefix), a likely meaning of the typo.
        f'{path}:4:14: warning: model_list[0].litellm_params.model: "meta-llama" is not a known '
        'provider; did you mean "meta_llama/Llama-3-8b"? It is treated as the OpenAI model '
        '"meta-llama/Llama-3-8b"',
        f'{path}:5:5: warning: model_list[1]: provider "palm" is not served: Google shut the '
        "PaLM API down in 2024; use gemini/ (e.g. gemini/gemini-2.0-flash); deployment skipped",
    ]
    assert config is not None
    assert [(d.id, d.provider, d.upstream_model) for d in config.deployments] == [
        ("config:llama#0", "openai", "meta-llama/Llama-3-8b"),
        ("config:*#0", "openai", "*"),  # a wildcard: tests/routing/test_wildcards.py
        ("config:instruct#0", "openai", "gpt-3.5-turbo-instruct"),
    ]


def test_literal_keys_warn(write_config) -> None:
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params:
              model: openai/a
              api_key: sk-not-a-reference
        """
    )
    _, problems = config_check(path)
    assert [str(p) for p in problems] == [
        f"{path}:5:16: warning: model_list[0].litellm_params.api_key: the key is written in the "
        "file; prefer os.environ/NAME or file:///path"
    ]


def test_include_appends_model_lists_with_their_own_locations(write_config, tmp_path) -> None:
    write_config(
        """
        credential_list:
          - credential_name: shared
            credential_values: {api_base: https://shared.example.com/v1}
        model_list:
          - model_name: b
            litellm_params: {model: openai/b, litellm_credential_name: shared, rpm: many}
        router_settings: {}
        """,
        name="models-b.yaml",
    )
    path = write_config(
        """
        include:
          - models-b.yaml
          - absent.yaml
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
        """
    )
    included = str(tmp_path / "models-b.yaml")
    config, problems = config_check(path)
    assert config is None
    assert [str(p) for p in problems] == [
        f"{path}:3:5: error: include[1]: cannot read configuration file: No such file or directory",
        f"{included}:6:77: error: model_list[0].litellm_params.rpm: expected an integer, "
        "got a string ('many')",
        f"{included}:7:1: warning: router_settings: unknown key in an included file, ignored",
    ]
    (tmp_path / "models-b.yaml").write_text(
        (tmp_path / "models-b.yaml").read_text().replace("rpm: many", "rpm: 5")
    )
    (tmp_path / "absent.yaml").write_text("model_list: []\n")
    config = config_load(path)
    assert config.includes == (included, str(tmp_path / "absent.yaml"))
    assert [(d.id, d.api_base, d.rpm) for d in config.deployments] == [
        ("config:a#0", "", None),
        ("config:b#0", "https://shared.example.com/v1", 5),
    ]
