"""Ogem's own configuration format: `models`, `router`, `settings` (docs/configuration.md)."""

from __future__ import annotations

from gateway.config.alerting import alerting_read_native
from gateway.config.cache import cache_check_model_info, cache_read_native
from gateway.config.callbacks import callbacks_read_native
from gateway.config.common import (
    DeploymentDraft,
    ParsedFile,
    check_literal_key,
    check_prices,
    groups_check,
    read_aliases,
    read_deployment_flags,
    read_fallbacks,
    read_strategy,
)
from gateway.config.fields import Reader
from gateway.config.guardrails import guardrails_read_native
from gateway.config.provider_names import provider_canonical, provider_split
from gateway.config.types import RouterSettings, TracingSettings
from gateway.config.yamltree import YNode
from providers.base import Timeouts

TOP_LEVEL_KEYS = frozenset(
    {
        "version",
        "models",
        "router",
        "settings",
        "cache",
        "guardrails",
        "callbacks",
        "alerting",
        "tracing",
    }
)
TRACING_KEYS = frozenset(
    {"enabled", "endpoint", "protocol", "service_name", "capture_content", "sample_rate"}
)
TRACING_PROTOCOLS = ("http/protobuf", "grpc")
_MODEL_KEYS = frozenset(
    {
        "id",
        "name",
        "provider",
        "model",
        "api_base",
        "api_key",
        "api_version",
        "weight",
        "priority",
        "region",
        "tags",
        "rpm",
        "tpm",
        "timeouts",
        "proxy",
        "params",
        "access_groups",
        "organization",
        "max_parallel_requests",
        "drop_params",
        "modify_params",
        "guardrails",
    }
)
_TIMEOUT_KEYS = ("connect", "first_byte", "total")
_ROUTER_KEYS = frozenset(
    {
        "strategy",
        "num_retries",
        "timeout",
        "stream_timeout",
        "allowed_fails",
        "cooldown_time",
        "retry_after",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "default_fallbacks",
        "aliases",
        "groups",
        "queue_timeout",
        "queue_depth",
        "pre_call_checks",
    }
)
_SETTINGS_KEYS = frozenset(
    {"drop_params", "modify_params", "max_parallel_requests", "global_max_parallel_requests"}
)


def _tracing(reader: Reader, node: YNode | None) -> TracingSettings | None:
    """`tracing:` (docs/tracing.md); absent: the environment decides."""
    fields = reader.mapping(node)
    if fields is None:
        return None
    reader.unknown_keys(node, TRACING_KEYS, section="tracing")  # type: ignore[arg-type]
    protocol = reader.string(fields.get("protocol"), secret=False) or ""
    if protocol and protocol not in TRACING_PROTOCOLS:
        reader.error(fields["protocol"], f"protocol must be one of {', '.join(TRACING_PROTOCOLS)}")
        protocol = ""
    rate = reader.number(fields.get("sample_rate"), positive=False)
    if rate is not None and not 0.0 <= rate <= 1.0:
        reader.error(fields["sample_rate"], "sample_rate must be between 0 and 1")
        rate = None
    return TracingSettings(
        enabled=reader.boolean(fields.get("enabled")) is not False,
        endpoint=reader.string(fields.get("endpoint")) or "",
        protocol=protocol,
        service_name=reader.string(fields.get("service_name"), secret=False) or "",
        capture_content=reader.boolean(fields.get("capture_content")),
        sample_rate=rate,
    )


def native_parse(reader: Reader, root: YNode) -> ParsedFile:
    parsed = ParsedFile()
    reader.unknown_keys(root, TOP_LEVEL_KEYS, section="the Ogem configuration")
    version = root.get("version")
    if version is not None and version.value != 1:
        reader.error(version, f"unsupported version {version.value!r} (this Ogem reads version 1)")
    for entry in reader.items(root.get("models")):
        draft = _model(reader, entry)
        if draft is not None:
            parsed.drafts.append(draft)
    groups = frozenset(draft.model_name for draft in parsed.drafts)
    parsed.router = _router(reader, root.get("router"), groups=groups)
    parsed.cache = cache_read_native(reader, root.get("cache"))
    parsed.guardrails = guardrails_read_native(reader, root.get("guardrails"), drafts=parsed.drafts)
    parsed.callbacks = callbacks_read_native(reader, root.get("callbacks"))
    parsed.alerting = alerting_read_native(reader, root.get("alerting"))
    parsed.tracing = _tracing(reader, root.get("tracing"))
    settings_node = root.get("settings")
    settings = reader.mapping(settings_node) or {}
    if settings:
        reader.unknown_keys(settings_node, _SETTINGS_KEYS, section="settings")  # type: ignore[arg-type]
    for key in ("drop_params", "modify_params"):
        flag = reader.boolean(settings.get(key))
        if flag is not None:
            parsed.general[key] = flag
    for key in ("max_parallel_requests", "global_max_parallel_requests"):
        limit = reader.integer(settings.get(key), minimum=1)
        if limit is not None:
            parsed.general[key] = limit
    return parsed


def _model(reader: Reader, entry: YNode) -> DeploymentDraft | None:
    fields = reader.mapping(entry)
    if fields is None:
        return None
    reader.unknown_keys(entry, _MODEL_KEYS, section="a model")
    name = reader.string(fields.get("name"), secret=False)
    model_node = fields.get("model")
    model = reader.string(model_node, secret=False)
    provider = reader.string(fields.get("provider"), secret=False)
    if not name:
        reader.error(entry, 'missing required key "name"')
    if not model:
        reader.error(entry, 'missing required key "model"')
    if not name or not model:
        return None
    if provider:
        provider, upstream = provider_canonical(provider), model
    else:
        # Without `provider`, `model` is a LiteLLM-style "provider/upstream-id" string.
        provider, upstream, recognised = provider_split(model)
        if not recognised:
            reader.warning(
                model_node,  # type: ignore[arg-type]
                f'"{model.partition("/")[0]}" is not a known provider; set "provider" '
                f'(treated as the OpenAI model "{model}")',
            )
    check_literal_key(reader, fields.get("api_key"))

    draft = DeploymentDraft(node=entry, model_name=name, provider=provider, upstream_model=upstream)
    draft.explicit_id = reader.string(fields.get("id"), secret=False)
    draft.api_base = reader.string(fields.get("api_base")) or ""
    draft.api_key = reader.string(fields.get("api_key"))
    draft.api_version = reader.string(fields.get("api_version")) or ""
    weight = reader.integer(fields.get("weight"), minimum=1)
    draft.weight = weight if weight is not None else 1
    priority = reader.integer(fields.get("priority"))
    draft.priority = priority if priority is not None else 0
    draft.region = reader.string(fields.get("region"), secret=False) or ""
    draft.tags = reader.strings(fields.get("tags"))
    draft.access_groups = reader.strings(fields.get("access_groups"))
    draft.rpm = reader.integer(fields.get("rpm"))
    draft.tpm = reader.integer(fields.get("tpm"))
    draft.proxy = reader.string(fields.get("proxy"))
    draft.organization_slug = reader.string(fields.get("organization"), secret=False)
    read_deployment_flags(reader, draft, fields)
    draft.guardrails = reader.strings(fields.get("guardrails"))
    timeouts_node = fields.get("timeouts")
    timeouts = reader.mapping(timeouts_node) or {}
    if timeouts:
        reader.unknown_keys(timeouts_node, _TIMEOUT_KEYS, section="timeouts")  # type: ignore[arg-type]
    defaults = Timeouts()
    draft.timeouts = Timeouts(
        **{key: reader.number(timeouts.get(key)) or getattr(defaults, key) for key in _TIMEOUT_KEYS}
    )
    params_node = fields.get("params")
    params = reader.mapping(params_node)
    if params is not None:
        check_prices(reader, params)
        cache_check_model_info(
            reader, (reader.mapping(params.get("model_info")) or {}).get("cache")
        )
        draft.params = reader.resolved(params_node)  # type: ignore[arg-type]
    return draft


def _router(reader: Reader, node: YNode | None, *, groups: frozenset[str]) -> RouterSettings:
    router = reader.mapping(node)
    if not router:
        return RouterSettings()
    reader.unknown_keys(node, _ROUTER_KEYS, section="router")  # type: ignore[arg-type]
    aliases, hidden = read_aliases(reader, router.get("aliases"))
    groups = groups | aliases.keys()
    defaults = router.get("default_fallbacks")
    groups_check(reader, defaults, reader.strings(defaults), groups=groups)
    group_strategy: dict[str, str] = {}
    traffic_split: dict[str, tuple[tuple[str, float], ...]] = {}
    shadow: dict[str, tuple[str, float, float | None]] = {}
    for group, group_node in (reader.mapping(router.get("groups")) or {}).items():
        group_fields = reader.mapping(group_node) or {}
        reader.unknown_keys(group_node, ("strategy", "split", "shadow"), section="a router group")
        strategy = read_strategy(reader, group_fields.get("strategy"))
        if strategy:
            group_strategy[group] = strategy
        # split: {other_group: percent}; shadow: {model, percent, max_budget}
        split = reader.mapping(group_fields.get("split")) or {}
        shares = tuple((name, reader.number(share) or 0.0) for name, share in split.items())
        if shares:
            traffic_split[group] = shares
        mirror = reader.mapping(group_fields.get("shadow")) or {}
        target = reader.string(mirror.get("model"), secret=False)
        if target:
            budget = reader.number(mirror.get("max_budget"))
            shadow[group] = (target, reader.number(mirror.get("percent")) or 0.0, budget)
    return RouterSettings(
        strategy=read_strategy(reader, router.get("strategy")) or "simple-shuffle",
        num_retries=reader.integer(router.get("num_retries")),
        timeout=reader.number(router.get("timeout")),
        stream_timeout=reader.number(router.get("stream_timeout")),
        allowed_fails=reader.integer(router.get("allowed_fails")),
        cooldown_time=reader.number(router.get("cooldown_time"), positive=False),
        retry_after=reader.number(router.get("retry_after"), positive=False),
        fallbacks=read_fallbacks(reader, router.get("fallbacks"), groups=groups),
        context_window_fallbacks=read_fallbacks(
            reader, router.get("context_window_fallbacks"), groups=groups
        ),
        content_policy_fallbacks=read_fallbacks(
            reader, router.get("content_policy_fallbacks"), groups=groups
        ),
        default_fallbacks=reader.strings(router.get("default_fallbacks")),
        model_group_alias=aliases,
        hidden_aliases=hidden,
        group_strategy=group_strategy,
        traffic_split=traffic_split,
        shadow=shadow,
        queue_timeout=reader.number(router.get("queue_timeout"), positive=False) or 0.0,
        queue_depth=reader.integer(router.get("queue_depth"), minimum=1) or 100,
        pre_call_checks=bool(reader.boolean(router.get("pre_call_checks"))),
    )
