"""The response cache's settings, in both formats (docs/caching.md).

Ogem's format has a top-level `cache:` mapping; LiteLLM's has `litellm_settings.cache: true` and
`litellm_settings.cache_params`, read with LiteLLM's meaning. Both give a `CacheSettings`, or None
when no cache is configured.
"""

from __future__ import annotations

from django.conf import settings

from gateway.config.fields import Reader
from gateway.config.types import (
    CACHE_ENDPOINTS,
    CACHE_KEY_REQUIRED,
    CACHE_SCOPES,
    SEMANTIC_ENDPOINTS,
    CacheSettings,
    S3CacheSettings,
    SemanticCacheSettings,
)
from gateway.config.yamltree import YNode

# Keys both formats share (LiteLLM's names where LiteLLM has one).
_SHARED_KEYS = (
    "type",
    "ttl",
    "max_ttl",
    "namespace",
    "scope",
    "mode",
    "local_max_bytes",
    "charge_hits",
    "ignore_params",
    "sampled",
)
NATIVE_KEYS = frozenset({*_SHARED_KEYS, "enabled", "endpoints", "s3", "semantic"})
_SEMANTIC_KEYS = frozenset(
    {"enabled", "model", "similarity_threshold", "endpoints", "max_entries", "timeout"}
    | {"max_index_bytes"}
)
# LiteLLM's names for the embedding model group, one per semantic type.
_EMBEDDING_MODEL_KEYS = (
    "redis_semantic_cache_embedding_model",
    "qdrant_semantic_cache_embedding_model",
)
# Ogem's own semantic settings in `cache_params` -> SemanticCacheSettings fields.
_SEMANTIC_PARAMS = {
    "semantic_max_entries": "max_entries",
    "semantic_timeout": "timeout",
    "semantic_max_index_bytes": "max_index_bytes",
}
LITELLM_DEFAULT_EMBEDDING_MODEL = "text-embedding-ada-002"
# Ogem's `cache.s3` mapping -> LiteLLM's `cache_params` names (the last two are Ogem's own).
_S3_KEYS = {
    "bucket": "s3_bucket_name",
    "prefix": "s3_path",
    "region": "s3_region_name",
    "endpoint_url": "s3_endpoint_url",
    "access_key_id": "s3_aws_access_key_id",
    "secret_access_key": "s3_aws_secret_access_key",
    "session_token": "s3_aws_session_token",
    "min_bytes": "s3_min_bytes",
    "timeout": "s3_timeout",
}
_S3_SECRETS = frozenset({"access_key_id", "secret_access_key", "session_token"})
LITELLM_KEYS = frozenset(
    {
        *_SHARED_KEYS,
        "supported_call_types",
        "default_in_memory_ttl",
        "default_in_redis_ttl",
        *_S3_KEYS.values(),
        "similarity_threshold",
        *_EMBEDDING_MODEL_KEYS,
        *_SEMANTIC_PARAMS,
    }
)
# LiteLLM keys Ogem reads elsewhere or does not build: a warning each, never an error.
LITELLM_HINTS = {
    "host": "Ogem's cache uses REDIS_URL",
    "port": "Ogem's cache uses REDIS_URL",
    "password": "Ogem's cache uses REDIS_URL",
    "redis_startup_nodes": "Ogem's cache uses REDIS_URL (redis+cluster://)",
    "service_name": "Ogem's cache uses REDIS_URL (redis+sentinel://)",
    "sentinel_nodes": "Ogem's cache uses REDIS_URL (redis+sentinel://)",
    "max_connections": "Ogem uses OGEM_REDIS_MAX_CONNECTIONS",
    "socket_timeout": "Ogem uses OGEM_REDIS_TIMEOUT",
    "s3_api_version": "Ogem's S3 client uses the current API",
    "s3_use_ssl": "the scheme of s3_endpoint_url decides",
    "s3_verify": "Ogem verifies TLS certificates with the system's CA bundle",
    "s3_config": "Ogem sets the S3 client's timeouts itself (s3_timeout)",
    "redis_semantic_cache_index_name": "Ogem keeps semantic entries in its database",
    "qdrant_api_base": "Ogem keeps semantic entries in its database, indexed in each worker",
    "qdrant_api_key": "Ogem keeps semantic entries in its database, indexed in each worker",
    "qdrant_collection_name": "Ogem keeps semantic entries in its database",
    "qdrant_quantization_config": "Ogem's index keeps full float32 vectors",
}
# LiteLLM's call types -> the /v1 paths Ogem caches.
_CALL_TYPES = {
    "completion": "chat/completions",
    "acompletion": "chat/completions",
    "text_completion": "completions",
    "atext_completion": "completions",
    "embedding": "embeddings",
    "aembedding": "embeddings",
    "moderation": "moderations",
    "amoderation": "moderations",
    "rerank": "rerank",
    "arerank": "rerank",
}
_TYPES = ("redis", "local")
# LiteLLM's semantic types: the exact cache (on Redis when REDIS_URL is set) plus the semantic
# tier, whose entries Ogem keeps in its database whatever the type names (docs/caching.md).
_SEMANTIC_TYPES = ("redis-semantic", "valkey-semantic", "qdrant-semantic")
# LiteLLM's other types: served by the exact cache until their tier exists (a warning says so).
_LATER_TYPES = ("gcs", "disk")


def cache_read_native(reader: Reader, node: YNode | None) -> CacheSettings | None:
    """Ogem's `cache:` mapping; absent, empty or `enabled: false` means no cache."""
    fields = reader.mapping(node)
    if fields is None:
        return None
    reader.unknown_keys(node, NATIVE_KEYS, section="cache")  # type: ignore[arg-type]
    if reader.boolean(fields.get("enabled")) is False:
        return None
    endpoints = CACHE_ENDPOINTS
    endpoints_node = fields.get("endpoints")
    if endpoints_node is not None:
        endpoints = reader.strings(endpoints_node)
        for name in endpoints:
            if name not in CACHE_ENDPOINTS:
                reader.error(
                    endpoints_node,
                    f'"{name}" cannot be cached (one of {", ".join(CACHE_ENDPOINTS)})',
                )
    s3: S3CacheSettings | None = None
    s3_node = fields.get("s3")
    s3_fields = reader.mapping(s3_node)
    if s3_fields is not None:
        reader.unknown_keys(s3_node, _S3_KEYS, section="cache.s3")  # type: ignore[arg-type]
        s3 = _s3_settings(reader, s3_node, s3_fields)  # type: ignore[arg-type]
    semantic = _semantic_native(reader, fields.get("semantic"))
    return _settings(
        reader,
        node,
        fields,  # type: ignore[arg-type]
        endpoints=endpoints,
        s3=s3,
        semantic=semantic,
    )


def _semantic_native(reader: Reader, node: YNode | None) -> SemanticCacheSettings | None:
    """`cache.semantic`: absent, empty or `enabled: false` means no semantic tier."""
    fields = reader.mapping(node)
    if not fields:
        return None
    assert node is not None
    reader.unknown_keys(node, _SEMANTIC_KEYS, section="cache.semantic")
    if reader.boolean(fields.get("enabled")) is False:
        return None
    model = reader.string(fields.get("model"), secret=False)
    if not model:
        reader.error(node, "the semantic tier needs an embedding model group (`model`)")
        return None
    endpoints = SEMANTIC_ENDPOINTS
    endpoints_node = fields.get("endpoints")
    if endpoints_node is not None:
        endpoints = reader.strings(endpoints_node)
        for name in endpoints:
            if name not in SEMANTIC_ENDPOINTS:
                reader.error(
                    endpoints_node,
                    f'"{name}" has no prompt to embed (one of {", ".join(SEMANTIC_ENDPOINTS)})',
                )
    return _semantic_settings(
        reader,
        model=model,
        threshold=fields.get("similarity_threshold"),
        endpoints=endpoints,
        numbers={name: fields.get(name) for name in ("max_entries", "timeout", "max_index_bytes")},
    )


def _semantic_settings(
    reader: Reader,
    *,
    model: str,
    threshold: YNode | None,
    endpoints: tuple[str, ...],
    numbers: dict[str, YNode | None],
) -> SemanticCacheSettings | None:
    defaults = SemanticCacheSettings(model=model)
    similarity = reader.number(threshold, positive=False)
    if similarity is not None and not 0 < similarity <= 1:
        assert threshold is not None
        reader.error(threshold, f"must be above 0 and at most 1, got {similarity:g}")
        similarity = None
    max_entries = reader.integer(numbers.get("max_entries"), minimum=1)
    timeout = reader.number(numbers.get("timeout"))
    max_index_bytes = reader.integer(numbers.get("max_index_bytes"), minimum=1)
    return SemanticCacheSettings(
        model=model,
        similarity_threshold=(
            similarity if similarity is not None else defaults.similarity_threshold
        ),
        endpoints=endpoints,
        max_entries=max_entries if max_entries is not None else defaults.max_entries,
        timeout=timeout if timeout is not None else defaults.timeout,
        max_index_bytes=(
            max_index_bytes if max_index_bytes is not None else defaults.max_index_bytes
        ),
    )


def cache_read_litellm(
    reader: Reader, switch: YNode | None, params_node: YNode | None
) -> CacheSettings | None:
    """`litellm_settings.cache` (true turns the cache on) and `cache_params`."""
    if reader.boolean(switch) is not True:
        if params_node is not None and params_node.value:
            reader.warning(params_node, "ignored: `cache` is not true", at_key=True)
        return None
    params = reader.mapping(params_node) or {}
    if params:
        reader.unknown_keys(
            params_node,  # type: ignore[arg-type]
            LITELLM_KEYS,
            section="cache_params",
            hints=LITELLM_HINTS,
        )
    endpoints = CACHE_ENDPOINTS
    types_node = params.get("supported_call_types")
    if types_node is not None:
        wanted: list[str] = []
        for name in reader.strings(types_node):
            path = _CALL_TYPES.get(name)
            if path is None:
                reader.warning(types_node, f'call type "{name}" is not cached by Ogem yet')
            elif path not in wanted:
                wanted.append(path)
        endpoints = tuple(wanted)
    s3: S3CacheSettings | None = None
    type_node = params.get("type")
    named = {key: params[name] for key, name in _S3_KEYS.items() if name in params}
    if type_node is not None and type_node.value == "s3":
        s3 = _s3_settings(reader, type_node, named)
        params = {name: value for name, value in params.items() if name != "type"}
    elif named:
        for child in named.values():
            reader.warning(child, "ignored: `type` is not s3", at_key=True)
    semantic: SemanticCacheSettings | None = None
    semantic_names = ("similarity_threshold", *_EMBEDDING_MODEL_KEYS, *_SEMANTIC_PARAMS)
    if type_node is not None and type_node.value in _SEMANTIC_TYPES:
        semantic = _semantic_litellm(reader, type_node, params)
        # The exact tier under it: Redis when REDIS_URL is set, else in process.
        params = {name: value for name, value in params.items() if name != "type"}
    else:
        for name in semantic_names:
            if name in params:
                reader.warning(params[name], "ignored: `type` is not a semantic type", at_key=True)
    return _settings(reader, params_node, params, endpoints=endpoints, s3=s3, semantic=semantic)


def _semantic_litellm(
    reader: Reader, type_node: YNode, params: dict[str, YNode]
) -> SemanticCacheSettings | None:
    model = ""
    for name in _EMBEDDING_MODEL_KEYS:
        model = model or (reader.string(params.get(name), secret=False) or "")
    if not model:
        model = LITELLM_DEFAULT_EMBEDDING_MODEL
        reader.warning(
            type_node,
            "no embedding model group named (`redis_semantic_cache_embedding_model`): "
            f'LiteLLM\'s default "{model}" is used',
        )
    # LiteLLM embeds the prompt of completion calls only: so does Ogem's semantic tier.
    return _semantic_settings(
        reader,
        model=model,
        threshold=params.get("similarity_threshold"),
        endpoints=SEMANTIC_ENDPOINTS,
        numbers={field: params.get(name) for name, field in _SEMANTIC_PARAMS.items()},
    )


def _s3_settings(reader: Reader, node: YNode, fields: dict[str, YNode]) -> S3CacheSettings | None:
    """The object-store tier: a bucket is required; the secrets may be `os.environ/NAME`."""
    values: dict[str, str | None] = {}
    for name in ("bucket", "prefix", "region", "endpoint_url", *sorted(_S3_SECRETS)):
        values[name] = reader.string(fields.get(name), secret=name in _S3_SECRETS) or None
    bucket = values.pop("bucket")
    min_bytes = reader.integer(fields.get("min_bytes"), minimum=0)
    timeout = reader.number(fields.get("timeout"))
    endpoint = values["endpoint_url"]
    if endpoint is not None and not endpoint.startswith(("http://", "https://")):
        reader.error(
            fields["endpoint_url"], f'expected an http:// or https:// URL, got "{endpoint}"'
        )
    if not bucket:
        where = "s3_bucket_name" if node.path.endswith(".type") else "bucket"
        reader.error(node, f"the S3 tier needs a bucket (`{where}`)")
        return None
    defaults = S3CacheSettings(bucket=bucket)
    return S3CacheSettings(
        bucket=bucket,
        prefix=values["prefix"] or "",
        region=values["region"],
        endpoint_url=endpoint,
        access_key_id=values["access_key_id"],
        secret_access_key=values["secret_access_key"],
        session_token=values["session_token"],
        min_bytes=min_bytes if min_bytes is not None else defaults.min_bytes,
        timeout=timeout if timeout is not None else defaults.timeout,
    )


def _settings(
    reader: Reader,
    node: YNode | None,
    fields: dict[str, YNode],
    *,
    endpoints: tuple[str, ...],
    s3: S3CacheSettings | None = None,
    semantic: SemanticCacheSettings | None = None,
) -> CacheSettings:
    defaults = CacheSettings()
    kind = reader.string(fields.get("type"), secret=False) or "redis"
    if kind in _LATER_TYPES:
        reader.warning(
            fields["type"], f'type "{kind}" is not built yet: the exact cache serves instead'
        )
        kind = "redis"
    elif kind not in _TYPES:
        reader.error(fields["type"], f'unknown cache type "{kind}" (redis or local)')
    if kind == "redis" and not settings.REDIS_URL:
        where = fields.get("type") or node
        if where is not None and fields.get("type") is not None:
            reader.warning(where, "no REDIS_URL: the cache stays in each process (type local)")
        kind = "local"
    ttl = reader.number(fields.get("ttl"))
    max_ttl = reader.number(fields.get("max_ttl"))
    max_ttl = max_ttl if max_ttl is not None else max(defaults.max_ttl, ttl or 0)
    if ttl is not None and ttl > max_ttl:
        reader.error(fields["ttl"], f"must be at most max_ttl ({max_ttl:g}), got {ttl:g}")
    scope = reader.string(fields.get("scope"), secret=False) or defaults.scope
    if scope not in CACHE_SCOPES:
        reader.error(fields["scope"], f'unknown scope "{scope}" ({", ".join(CACHE_SCOPES)})')
    mode = reader.string(fields.get("mode"), secret=False) or "default_on"
    if mode not in ("default_on", "default_off"):
        reader.error(fields["mode"], f'unknown mode "{mode}" (default_on or default_off)')
    local_max_bytes = reader.integer(fields.get("local_max_bytes"), minimum=0)
    sampled = reader.boolean(fields.get("sampled"))
    return CacheSettings(
        type=kind,
        ttl=ttl if ttl is not None else min(defaults.ttl, max_ttl),
        max_ttl=max_ttl,
        namespace=reader.string(fields.get("namespace"), secret=False) or "",
        scope=scope,
        default_on=mode != "default_off",
        endpoints=endpoints,
        local_max_bytes=(
            local_max_bytes if local_max_bytes is not None else defaults.local_max_bytes
        ),
        charge_hits=bool(reader.boolean(fields.get("charge_hits"))),
        s3=s3,
        ignore_params=_ignore_params(reader, fields.get("ignore_params")),
        sampled=sampled if sampled is not None else defaults.sampled,
        semantic=semantic,
    )


def _ignore_params(reader: Reader, node: YNode | None) -> tuple[str, ...]:
    """A list of body field names; what makes the request (CACHE_KEY_REQUIRED) is an error."""
    if node is None or node.value is None:
        return ()
    if not node.is_list:
        reader.error(node, "expected a list of body field names")
        return ()
    names = reader.strings(node)
    for name in names:
        if name in CACHE_KEY_REQUIRED:
            reader.error(
                node,
                f'"{name}" cannot be left out of the cache key '
                f"(never: {', '.join(sorted(CACHE_KEY_REQUIRED))})",
            )
    return tuple(dict.fromkeys(names))


def cache_setting_valid(name: str, value: object) -> bool:
    """Whether a model group's or an owner's `ignore_params` or `sampled` is one (a bad one is
    ignored, as if that level had not set it); other names are not checked here."""
    if name == "sampled":
        return isinstance(value, bool)
    if name == "ignore_params":
        return isinstance(value, list) and all(
            isinstance(item, str) and item not in CACHE_KEY_REQUIRED for item in value
        )
    return True


# `semantic` and `similarity_threshold` are the semantic tier's (gateway/semantic.py reads them).
_GROUP_KEYS = frozenset(
    {"enabled", "ttl", "ignore_params", "sampled", "semantic", "similarity_threshold"}
)


def cache_check_model_info(reader: Reader, node: YNode | None) -> None:
    """A deployment's `model_info.cache`: false, true, or a mapping of `enabled`, `ttl` (at
    most `max_ttl`, applied when served), `ignore_params` and `sampled`."""
    if node is None or node.value is None or isinstance(node.value, bool):
        return
    fields = reader.mapping(node)
    if fields is None:
        return
    reader.unknown_keys(node, _GROUP_KEYS, section="model_info.cache")  # type: ignore[arg-type]
    reader.boolean(fields.get("enabled"))
    reader.boolean(fields.get("sampled"))
    ttl = reader.number(fields.get("ttl"), positive=False)
    if ttl is not None and ttl < 0:
        reader.error(fields["ttl"], f"must be at least 0, got {ttl:g}")
    _ignore_params(reader, fields.get("ignore_params"))
