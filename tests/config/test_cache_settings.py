"""The response cache's settings, in LiteLLM's format and in Ogem's (docs/caching.md)."""

from __future__ import annotations

import pytest

from gateway.config import config_check, config_load
from gateway.config.types import CACHE_ENDPOINTS, CacheSettings

pytestmark = pytest.mark.django_db


def test_litellm_cache_true_and_cache_params(write_config, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
        litellm_settings:
          cache: true
          cache_params:
            type: redis
            ttl: 600
            namespace: prod
            mode: default_off
            supported_call_types: ["acompletion", "aembedding", "atranscription"]
            host: localhost
        """
    )
    config, problems = config_check(path)
    assert config is not None
    assert config.cache == CacheSettings(
        type="redis",
        ttl=600.0,
        namespace="prod",
        default_on=False,
        endpoints=("chat/completions", "embeddings"),
    )
    assert [str(p) for p in problems] == [
        f"{path}:11:27: warning: litellm_settings.cache_params.supported_call_types: "
        'call type "atranscription" is not cached by Ogem yet',
        f"{path}:12:5: warning: litellm_settings.cache_params.host: "
        "ignored: Ogem's cache uses REDIS_URL",
    ]


def test_litellm_without_cache_true_has_no_cache(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
        litellm_settings:
          cache_params: {type: local}
        """
    )
    config, problems = config_check(path)
    assert config is not None and config.cache is None
    assert [str(p) for p in problems] == [
        f"{path}:5:3: warning: litellm_settings.cache_params: ignored: `cache` is not true"
    ]


def test_type_redis_without_redis_falls_back_to_local(write_config, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = ""
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
        litellm_settings:
          cache: true
          cache_params: {type: redis}
        """
    )
    config, problems = config_check(path)
    assert config is not None and config.cache is not None
    assert config.cache.type == "local"
    assert [str(p) for p in problems] == [
        f"{path}:6:24: warning: litellm_settings.cache_params.type: "
        "no REDIS_URL: the cache stays in each process (type local)"
    ]


def test_ogem_format_cache_section(write_config, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    path = write_config(
        """
        version: 1
        models:
          - {name: a, provider: mock, model: a}
        cache:
          ttl: 120
          max_ttl: 3600
          scope: team
          endpoints: [chat/completions]
          local_max_bytes: 1048576
          charge_hits: true
        """
    )
    config = config_load(path)
    assert config.cache == CacheSettings(
        type="redis",
        ttl=120.0,
        max_ttl=3600.0,
        scope="team",
        endpoints=("chat/completions",),
        local_max_bytes=1048576,
        charge_hits=True,
    )
    assert CacheSettings().endpoints == CACHE_ENDPOINTS


def test_ogem_format_bad_cache_values_are_errors(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        version: 1
        models:
          - {name: a, provider: mock, model: a}
        cache:
          type: memcached
          ttl: 7200
          max_ttl: 60
          scope: everyone
          endpoints: [images/generations]
        """
    )
    config, problems = config_check(path)
    assert config is None
    assert [str(p) for p in problems] == [
        f'{path}:5:9: error: cache.type: unknown cache type "memcached" (redis or local)',
        f"{path}:6:8: error: cache.ttl: must be at most max_ttl (60), got 7200",
        f'{path}:8:10: error: cache.scope: unknown scope "everyone" (organization, team, key)',
        f"{path}:9:14: error: cache.endpoints: "
        '"images/generations" cannot be cached '
        "(one of chat/completions, completions, embeddings, moderations, rerank)",
    ]
