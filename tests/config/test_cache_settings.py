"""The response cache's settings, in LiteLLM's format and in Ogem's (docs/caching.md)."""

from __future__ import annotations

import pytest

from gateway.config import config_check, config_load
from gateway.config.types import (
    CACHE_ENDPOINTS,
    CacheSettings,
    S3CacheSettings,
    SemanticCacheSettings,
)

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


def test_litellm_type_s3_reads_litellm_s3_params(write_config, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("S3T_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("S3T_SECRET", "s3t-secret-value")
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
        litellm_settings:
          cache: true
          cache_params:
            type: s3
            s3_bucket_name: cache-bucket
            s3_region_name: us-west-2
            s3_endpoint_url: http://127.0.0.1:9000
            s3_aws_access_key_id: os.environ/S3T_KEY_ID
            s3_aws_secret_access_key: os.environ/S3T_SECRET
            s3_path: ogem/
            s3_min_bytes: 1024
            s3_timeout: 0.5
            s3_use_ssl: false
        """
    )
    config, problems = config_check(path)
    assert config is not None and config.cache is not None
    assert config.cache.type == "redis"  # Redis stays L2 for the small answers
    assert config.cache.s3 == S3CacheSettings(
        bucket="cache-bucket",
        prefix="ogem/",
        region="us-west-2",
        endpoint_url="http://127.0.0.1:9000",
        access_key_id="AKIDEXAMPLE",
        secret_access_key="s3t-secret-value",
        min_bytes=1024,
        timeout=0.5,
    )
    assert "s3t-secret-value" not in repr(config.cache)
    assert [str(p) for p in problems] == [
        f"{path}:16:5: warning: litellm_settings.cache_params.s3_use_ssl: "
        "ignored: the scheme of s3_endpoint_url decides"
    ]


def test_litellm_s3_params_without_type_s3_are_ignored(write_config, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = ""
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
        litellm_settings:
          cache: true
          cache_params: {type: local, s3_bucket_name: b}
        """
    )
    config, problems = config_check(path)
    assert config is not None and config.cache is not None
    assert config.cache.s3 is None
    assert [str(p) for p in problems] == [
        f"{path}:6:31: warning: litellm_settings.cache_params.s3_bucket_name: "
        "ignored: `type` is not s3"
    ]


def test_ogem_format_s3_tier(write_config, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = ""
    path = write_config(
        """
        version: 1
        models:
          - {name: a, provider: mock, model: a}
        cache:
          type: local
          s3: {bucket: b, endpoint_url: "https://minio.internal:9000", prefix: c/}
        """
    )
    config = config_load(path)
    assert config.cache is not None
    assert config.cache.s3 == S3CacheSettings(
        bucket="b", endpoint_url="https://minio.internal:9000", prefix="c/"
    )
    assert (config.cache.s3.min_bytes, config.cache.s3.timeout) == (65536, 1.0)


def test_bad_s3_values_are_errors(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        version: 1
        models:
          - {name: a, provider: mock, model: a}
        cache:
          s3: {endpoint_url: "m:9", min_bytes: -1, timeout: 0, secret_access_key: os.environ/S3T_N}
        """
    )
    config, problems = config_check(path)
    assert config is None
    assert [str(p) for p in problems] == [
        f"{path}:5:7: error: cache.s3: the S3 tier needs a bucket (`bucket`)",
        f"{path}:5:22: error: cache.s3.endpoint_url: expected an http:// or https:// URL, "
        'got "m:9"',
        f"{path}:5:40: error: cache.s3.min_bytes: must be at least 0, got -1",
        f"{path}:5:53: error: cache.s3.timeout: must be greater than 0, got 0",
        f"{path}:5:75: error: cache.s3.secret_access_key: environment variable S3T_N is not set",
    ]
    litellm = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
        litellm_settings:
          cache: true
          cache_params: {type: s3, s3_min_bytes: -1, s3_timeout: 0}
        """
    )
    config, problems = config_check(litellm)
    assert config is None
    assert [str(p) for p in problems] == [
        f"{litellm}:6:24: error: litellm_settings.cache_params.type: "
        "the S3 tier needs a bucket (`s3_bucket_name`)",
        f"{litellm}:6:42: error: litellm_settings.cache_params.s3_min_bytes: "
        "must be at least 0, got -1",
        f"{litellm}:6:58: error: litellm_settings.cache_params.s3_timeout: "
        "must be greater than 0, got 0",
    ]


def test_litellm_redis_semantic_turns_the_semantic_tier_on(write_config, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
        litellm_settings:
          cache: true
          cache_params:
            type: redis-semantic
            similarity_threshold: 0.85
            redis_semantic_cache_embedding_model: local-embed
            redis_semantic_cache_index_name: mine
            semantic_max_entries: 500
        """
    )
    config, problems = config_check(path)
    assert config is not None
    assert config.cache == CacheSettings(
        type="redis",
        semantic=SemanticCacheSettings(
            model="local-embed",
            similarity_threshold=0.85,
            endpoints=("chat/completions", "completions"),
            max_entries=500,
        ),
    )
    assert [str(p) for p in problems] == [
        f"{path}:10:5: warning: litellm_settings.cache_params.redis_semantic_cache_index_name: "
        "ignored: Ogem keeps semantic entries in its database",
    ]


def test_litellm_qdrant_semantic_without_a_model_uses_litellms_default(  # type: ignore[no-untyped-def]
    write_config, settings
) -> None:
    settings.REDIS_URL = ""
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
        litellm_settings:
          cache: true
          cache_params:
            type: qdrant-semantic
            qdrant_api_base: http://qdrant:6333
        """
    )
    config, problems = config_check(path)
    assert config is not None and config.cache is not None
    assert config.cache.type == "local"
    assert config.cache.semantic == SemanticCacheSettings(model="text-embedding-ada-002")
    assert [str(p) for p in problems] == [
        f"{path}:7:11: warning: litellm_settings.cache_params.type: no embedding model group "
        "named (`redis_semantic_cache_embedding_model`): LiteLLM's default "
        '"text-embedding-ada-002" is used',
        f"{path}:8:5: warning: litellm_settings.cache_params.qdrant_api_base: ignored: Ogem keeps "
        "semantic entries in its database, indexed in each worker",
    ]


def test_ogem_format_semantic_section(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        version: 1
        models:
          - {name: a, provider: mock, model: a}
        cache:
          semantic:
            model: local-embed
            similarity_threshold: 0.93
            endpoints: [chat/completions]
            max_entries: 1000
            timeout: 0.5
        """
    )
    config = config_load(path)
    assert config.cache is not None
    assert config.cache.semantic == SemanticCacheSettings(
        model="local-embed",
        similarity_threshold=0.93,
        endpoints=("chat/completions",),
        max_entries=1000,
        timeout=0.5,
    )


def test_bad_semantic_values_are_errors(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        version: 1
        models:
          - {name: a, provider: mock, model: a}
        cache:
          semantic:
            similarity_threshold: 1.5
            endpoints: [embeddings]
            max_entries: 0
        """
    )
    config, problems = config_check(path)
    assert config is None
    assert [str(p) for p in problems] == [
        f"{path}:6:5: error: cache.semantic: the semantic tier needs an embedding model group "
        "(`model`)",
    ]
    path = write_config(
        """
        version: 1
        models:
          - {name: a, provider: mock, model: a}
        cache:
          semantic:
            model: local-embed
            similarity_threshold: 1.5
            endpoints: [embeddings]
            max_entries: 0
        """
    )
    config, problems = config_check(path)
    assert config is None
    assert [str(p) for p in problems] == [
        f"{path}:7:27: error: cache.semantic.similarity_threshold: "
        "must be above 0 and at most 1, got 1.5",
        f"{path}:8:16: error: cache.semantic.endpoints: "
        '"embeddings" has no prompt to embed (one of chat/completions, completions)',
        f"{path}:9:18: error: cache.semantic.max_entries: must be at least 1, got 0",
    ]


def test_ignore_params_and_sampled_in_both_formats(write_config, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    native = write_config(
        """
        version: 1
        models:
          - {name: a, provider: mock, model: a}
        cache:
          ignore_params: [temperature, seed, temperature]
          sampled: false
        """
    )
    config = config_load(native)
    assert config.cache is not None
    assert config.cache.ignore_params == ("temperature", "seed")
    assert config.cache.sampled is False
    litellm = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
            model_info:
              cache: {ttl: 60, ignore_params: [top_p], sampled: false}
        litellm_settings:
          cache: true
          cache_params: {type: local, ignore_params: [seed]}
        """
    )
    config, problems = config_check(litellm)
    assert config is not None and config.cache is not None
    assert (config.cache.ignore_params, config.cache.sampled) == (("seed",), True)
    assert problems == []
    assert config.deployments[0].params["model_info"]["cache"] == {
        "ttl": 60,
        "ignore_params": ["top_p"],
        "sampled": False,
    }


def test_bad_ignore_params_and_sampled_are_errors(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        model_list:
          - model_name: a
            litellm_params: {model: mock/a}
            model_info:
              cache: {ttl: -1, ignore_params: [model], sampled: 3, size: 2}
        litellm_settings:
          cache: true
          cache_params:
            type: local
            ignore_params: [messages, seed]
            sampled: "yes"
        """
    )
    config, problems = config_check(path)
    assert config is None
    never = "(never: documents, input, messages, model, prompt, query, system)"
    assert [str(p) for p in problems] == [
        f"{path}:5:20: error: model_list[0].model_info.cache.ttl: must be at least 0, got -1",
        f"{path}:5:39: error: model_list[0].model_info.cache.ignore_params: "
        f'"model" cannot be left out of the cache key {never}',
        f"{path}:5:57: error: model_list[0].model_info.cache.sampled: "
        "expected true or false, got an integer (3)",
        f"{path}:5:60: warning: model_list[0].model_info.cache.size: "
        "unknown key in model_info.cache, ignored",
        f"{path}:10:20: error: litellm_settings.cache_params.ignore_params: "
        f'"messages" cannot be left out of the cache key {never}',
        f"{path}:11:14: error: litellm_settings.cache_params.sampled: "
        "expected true or false, got a string ('yes')",
    ]


def test_ogem_format_model_group_cache_is_checked(write_config) -> None:  # type: ignore[no-untyped-def]
    path = write_config(
        """
        version: 1
        models:
          - name: a
            provider: mock
            model: a
            params: {model_info: {cache: {ignore_params: [input]}}}
        """
    )
    config, problems = config_check(path)
    assert config is None
    assert [str(p) for p in problems] == [
        f"{path}:6:50: error: models[0].params.model_info.cache.ignore_params: "
        '"input" cannot be left out of the cache key '
        "(never: documents, input, messages, model, prompt, query, system)"
    ]
