"""The response cache's settings, in both formats (docs/caching.md).

Ogem's format has a top-level `cache:` mapping; LiteLLM's has `litellm_settings.cache: true` and
`litellm_settings.cache_params`, read with LiteLLM's meaning. Both give a `CacheSettings`, or None
when no cache is configured.
"""

from __future__ import annotations

from django.conf import settings

from gateway.config.fields import Reader
from gateway.config.types import CACHE_ENDPOINTS, CACHE_SCOPES, CacheSettings
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
)
NATIVE_KEYS = frozenset({*_SHARED_KEYS, "enabled", "endpoints"})
LITELLM_KEYS = frozenset(
    {*_SHARED_KEYS, "supported_call_types", "default_in_memory_ttl", "default_in_redis_ttl"}
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
    "similarity_threshold": "the semantic cache is not built yet",
    "redis_semantic_cache_embedding_model": "the semantic cache is not built yet",
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
# LiteLLM's other types: served by the exact cache until their tier exists (a warning says so).
_LATER_TYPES = ("redis-semantic", "valkey-semantic", "qdrant-semantic", "s3", "gcs", "disk")


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
    return _settings(reader, node, fields, endpoints=endpoints)  # type: ignore[arg-type]


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
    return _settings(reader, params_node, params, endpoints=endpoints)


def _settings(
    reader: Reader,
    node: YNode | None,
    fields: dict[str, YNode],
    *,
    endpoints: tuple[str, ...],
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
    )
